//! `agent serve ...`: the reference stack's workloads.
//!
//! - `frontend`: HTTPS and plain HTTP; every path echoes the request as JSON, except `/healthz` (200 `ok`)
//!   and `/forbidden` (an application 403 with a JSON body, to tell apart from Cilium's proxy 403).
//! - `api`: `/api/v1/...` echoes the request as JSON for any method, `/api/v1/forbidden` is an
//!   application 403, `/healthz` is 200, everything else 404; a second (admin) port serves `/healthz` and
//!   `/metrics`.
//! - `idle`: only `/healthz`, for pods that exist to run probes.
//!
//! Once every port is bound, one JSON line `{"listening":{"<port name>":"<addr>",...}}` is printed on
//! stdout (ports may be 0 to let the kernel choose). SIGTERM or SIGINT stops accepting and exits 0.

pub mod dns;
mod tls;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Largest request body read by the echo handlers.
const MAX_BODY: usize = 1 << 20;
/// Longest body excerpt echoed back.
const ECHO_BODY: usize = 1024;
/// Bound on a server-side TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Which routes a port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    Frontend,
    Api,
    Admin,
    Health,
}

/// One served port.
struct Port {
    name: &'static str,
    service: &'static str,
    scheme: &'static str,
    routes: Routes,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Request counters, shown on the admin port's `/metrics`.
#[derive(Default)]
struct Counters {
    by_port: BTreeMap<&'static str, AtomicU64>,
}

/// TLS material of the frontend: files, or generated in memory at start.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

async fn bind(addr: IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(addr, port))
        .await
        .with_context(|| format!("cannot listen on {addr} port {port} ({what})"))
}

/// Serves the frontend: HTTPS on `https_port`, HTTP on `http_port`.
///
/// # Errors
/// When a port cannot be bound or the TLS material cannot be read.
pub async fn frontend(
    addr: IpAddr,
    https_port: u16,
    http_port: u16,
    files: TlsFiles,
) -> anyhow::Result<()> {
    let acceptor = tls::acceptor(&files)?;
    let ports = vec![
        Port {
            name: "https",
            service: "frontend",
            scheme: "https",
            routes: Routes::Frontend,
            listener: bind(addr, https_port, "frontend https").await?,
            tls: Some(acceptor),
        },
        Port {
            name: "http",
            service: "frontend",
            scheme: "http",
            routes: Routes::Frontend,
            listener: bind(addr, http_port, "frontend http").await?,
            tls: None,
        },
    ];
    run(ports).await
}

/// Serves the API on `port` and its admin endpoints on `admin_port`.
///
/// # Errors
/// When a port cannot be bound.
pub async fn api(addr: IpAddr, port: u16, admin_port: u16) -> anyhow::Result<()> {
    let ports = vec![
        Port {
            name: "http",
            service: "api",
            scheme: "http",
            routes: Routes::Api,
            listener: bind(addr, port, "api").await?,
            tls: None,
        },
        Port {
            name: "admin",
            service: "api-admin",
            scheme: "http",
            routes: Routes::Admin,
            listener: bind(addr, admin_port, "api admin").await?,
            tls: None,
        },
    ];
    run(ports).await
}

/// Serves only `/healthz` on `health_port`.
///
/// # Errors
/// When the port cannot be bound.
pub async fn idle(addr: IpAddr, health_port: u16) -> anyhow::Result<()> {
    let ports = vec![Port {
        name: "health",
        service: "idle",
        scheme: "http",
        routes: Routes::Health,
        listener: bind(addr, health_port, "health").await?,
        tls: None,
    }];
    run(ports).await
}

async fn run(ports: Vec<Port>) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM right after the listening line must already be ours.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut listening = serde_json::Map::new();
    let mut counters = Counters::default();
    for p in &ports {
        listening.insert(
            p.name.to_owned(),
            json!(p.listener.local_addr()?.to_string()),
        );
        counters.by_port.insert(p.name, AtomicU64::new(0));
    }
    let line = json!({ "listening": listening }).to_string() + "\n";
    let mut stdout = tokio::io::stdout();
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;
    let counters = Arc::new(counters);
    let mut accept_loops = tokio::task::JoinSet::new();
    for p in ports {
        accept_loops.spawn(accept_loop(p, counters.clone()));
    }
    tokio::select! {
        _ = term.recv() => eprintln!("agent: SIGTERM, shutting down"),
        _ = interrupt.recv() => eprintln!("agent: SIGINT, shutting down"),
        Some(res) = accept_loops.join_next() => {
            res.context("an accept loop panicked")??;
        }
    }
    accept_loops.abort_all();
    Ok(())
}

async fn accept_loop(port: Port, counters: Arc<Counters>) -> anyhow::Result<()> {
    let port = Arc::new(port);
    loop {
        let (stream, _) = match port.listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and similar: keep serving the connections we have.
            Err(e) => {
                eprintln!("agent: accept on {} failed: {e}", port.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let port = port.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let svc_port = port.clone();
            let svc = service_fn(move |req| handle(svc_port.clone(), counters.clone(), req));
            let builder = hyper::server::conn::http1::Builder::new();
            match &port.tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    // A failed handshake (plain text to the TLS port, a scanner) just drops the connection.
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await
                    {
                        let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
            }
        });
    }
}

async fn handle(
    port: Arc<Port>,
    counters: Arc<Counters>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(c) = counters.by_port.get(port.name) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    let path = req.uri().path().to_owned();
    let resp = match (port.routes, path.as_str()) {
        (_, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Routes::Frontend, "/forbidden") | (Routes::Api, "/api/v1/forbidden") => {
            app_forbidden(port.service)
        }
        (Routes::Frontend, _) => echo(&port, req).await,
        (Routes::Api, p) if p == "/api/v1" || p.starts_with("/api/v1/") => echo(&port, req).await,
        (Routes::Admin, "/metrics") => text(StatusCode::OK, &metrics(&counters)),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "service": port.service, "error": "not found", "path": path }),
        ),
    };
    Ok(resp)
}

fn metrics(counters: &Counters) -> String {
    let mut out = String::from("# TYPE agent_requests_total counter\n");
    for (port, n) in &counters.by_port {
        out.push_str(&format!(
            "agent_requests_total{{port=\"{port}\"}} {}\n",
            n.load(Ordering::Relaxed)
        ));
    }
    out
}

/// The application's own 403: a JSON body, never Cilium's `Access denied`.
fn app_forbidden(service: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({ "service": service, "error": "forbidden by the application" }),
    )
}

/// Echoes what was received: method, path with query, headers and body.
async fn echo(port: &Port, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), json!(values.join(", ")));
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({ "service": port.service, "error": e.to_string() }),
            );
        }
    };
    let excerpt = String::from_utf8_lossy(&body[..body.len().min(ECHO_BODY)]).into_owned();
    json_response(
        StatusCode::OK,
        &json!({
            "service": port.service,
            "scheme": port.scheme,
            "method": parts.method.as_str(),
            "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            "headers": headers,
            "body_bytes": body.len(),
            "body": excerpt,
        }),
    )
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
