//! An in-process fake Kubernetes API server for unit tests: a kube `Client` whose requests are answered by
//! a closure and recorded.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// A client whose every request goes to `handler` (status code, JSON body).
pub fn client<F>(handler: F) -> (kube::Client, Log)
where
    F: Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let handler = Arc::new(handler);
    let seen = log.clone();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (handler, seen) = (handler.clone(), seen.clone());
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, reply) = handler(&recorded);
            seen.lock().unwrap().push(recorded);
            let response = http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(kube::client::Body::from(
                    serde_json::to_vec(&reply).unwrap(),
                ))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), log)
}

/// A `Status` failure body.
pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code}),
    )
}

pub fn not_found() -> (u16, Value) {
    status(404, "NotFound", "not found")
}

/// A list response of `items`.
pub fn list(kind: &str, items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": items}),
    )
}

/// The requests recorded so far.
pub fn requests(log: &Log) -> Vec<Recorded> {
    log.lock().unwrap().clone()
}
