//! HTTP and HTTPS probes against the agent's own servers and responders of the test's own, on loopback:
//! every outcome class an HTTP client can see.

mod common;

use common::{
    AgentServer, closed_port, http_responder, probe, reset_responder, silent_responder,
    syn_dropping_port,
};
use probe_wire::{HttpHeader, HttpRequest, HttpsRequest, Outcome, ProbeRequest, ProbeSpec};

fn http(target: impl ToString, path: &str) -> ProbeSpec {
    ProbeSpec::new(
        target.to_string(),
        ProbeRequest::Http(HttpRequest {
            path: path.into(),
            ..HttpRequest::default()
        }),
    )
}

fn https(target: impl ToString, path: &str) -> ProbeSpec {
    ProbeSpec::new(
        target.to_string(),
        ProbeRequest::Https(HttpsRequest {
            http: HttpRequest {
                path: path.into(),
                ..HttpRequest::default()
            },
            sni: None,
        }),
    )
}

/// What Envoy sends for a Cilium L7 deny (semantics doc §6): 403, body `Access denied\r\n`.
const PROXY_403: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\ncontent-type: text/plain\r\n\
date: Thu, 01 Jan 2026 00:00:00 GMT\r\nserver: envoy\r\n\r\nAccess denied\r\n";

#[test]
fn api_echoes_the_request_and_the_probe_completes_with_timings_and_addresses() {
    let api = AgentServer::start(&["api", "--port", "0", "--admin-port", "0"]);
    let mut spec = http(api.target("http"), "/api/v1/orders?limit=2");
    if let ProbeRequest::Http(r) = &mut spec.request {
        r.method = "POST".into();
        r.headers.push(HttpHeader {
            name: "X-Team".into(),
            value: "payments".into(),
        });
        r.body = Some("{\"n\":1}".into());
    }
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    let h = r.http.expect("http details");
    assert_eq!(h.status, 200);
    let echo: serde_json::Value = serde_json::from_str(&h.body_excerpt).expect("json echo");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/v1/orders?limit=2");
    assert_eq!(echo["headers"]["x-team"], "payments");
    assert_eq!(echo["body_bytes"], 7);
    let t = r.timings;
    let (connect, first) = (
        t.connect_ms.expect("connect"),
        t.first_byte_ms.expect("first byte"),
    );
    assert!(connect <= first && first <= t.total_ms, "{t:?}");
    assert_eq!(r.peer_addr, Some(api.ports["http"]));
    let local = r.local_addr.expect("local addr");
    assert!(local.ip().is_loopback() && local.port() != 0, "{local}");
}

#[test]
fn api_answers_404_outside_api_v1_and_serves_metrics_on_the_admin_port() {
    let api = AgentServer::start(&["api", "--port", "0", "--admin-port", "0"]);
    let r = probe(&http(api.target("http"), "/admin"));
    assert_eq!(
        (r.outcome, r.http.expect("http").status),
        (Outcome::Completed, 404)
    );
    let r = probe(&http(api.target("admin"), "/metrics"));
    let h = r.http.expect("http");
    assert_eq!(h.status, 200);
    assert!(
        h.body_excerpt.contains("agent_requests_total"),
        "{}",
        h.body_excerpt
    );
    let r = probe(&http(api.target("http"), "/healthz"));
    assert_eq!(r.http.expect("http").status, 200);
}

#[test]
fn an_application_403_is_completed_not_a_proxy_denial() {
    let api = AgentServer::start(&["api", "--port", "0", "--admin-port", "0"]);
    let r = probe(&http(api.target("http"), "/api/v1/forbidden"));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    let h = r.http.expect("http");
    assert_eq!(h.status, 403);
    assert!(!h.proxy_denied);
}

#[test]
fn a_proxy_shaped_403_is_proxy_denied() {
    let addr = http_responder(PROXY_403);
    let r = probe(&http(addr, "/private"));
    assert_eq!(r.outcome, Outcome::ProxyDenied, "{}", r.detail);
    let h = r.http.expect("http");
    assert!(h.proxy_denied);
    assert_eq!(h.body_bytes, 15);
    assert_eq!(h.server.as_deref(), Some("envoy"));
}

#[test]
fn a_403_with_a_different_body_is_not_taken_for_the_proxy() {
    let addr = http_responder(
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 14\r\nserver: envoy\r\n\r\nAccess denied!",
    );
    let r = probe(&http(addr, "/"));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
}

#[test]
fn https_to_the_frontend_completes_without_verifying_its_self_signed_certificate() {
    let fe = AgentServer::start(&["frontend", "--https-port", "0", "--http-port", "0"]);
    let r = probe(&https(fe.target("https"), "/index.html"));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    let echo: serde_json::Value =
        serde_json::from_str(&r.http.expect("http").body_excerpt).expect("json");
    assert_eq!(echo["scheme"], "https");
    assert_eq!(echo["service"], "frontend");
    let r = probe(&http(fe.target("http"), "/healthz"));
    assert_eq!(
        (r.outcome, r.http.expect("http").status),
        (Outcome::Completed, 200)
    );
}

#[test]
fn https_to_a_plain_http_port_is_a_tls_failure() {
    let fe = AgentServer::start(&["frontend", "--https-port", "0", "--http-port", "0"]);
    let r = probe(&https(fe.target("http"), "/"));
    assert_eq!(r.outcome, Outcome::TlsFailure, "{}", r.detail);
    assert!(r.timings.connect_ms.is_some());
}

#[test]
fn plain_http_to_the_tls_port_is_a_protocol_error() {
    let fe = AgentServer::start(&["frontend", "--https-port", "0", "--http-port", "0"]);
    let r = probe(&http(fe.target("https"), "/"));
    assert_eq!(r.outcome, Outcome::ProtocolError, "{}", r.detail);
}

#[test]
fn a_closed_port_is_refused() {
    let r = probe(&http(closed_port(), "/"));
    assert_eq!(r.outcome, Outcome::Refused, "{}", r.detail);
    assert!(r.timings.connect_ms.is_none());
}

#[test]
fn a_connection_reset_after_the_request_is_a_reset() {
    let r = probe(&http(reset_responder(), "/"));
    assert_eq!(r.outcome, Outcome::Reset, "{}", r.detail);
}

#[test]
fn dropped_syns_are_a_connect_timeout_within_the_connect_deadline() {
    let (addr, _listener, _filler) = syn_dropping_port();
    let mut spec = http(addr, "/");
    spec.connect_timeout_ms = 400;
    spec.timeout_ms = 3_000;
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::ConnectTimeout, "{}", r.detail);
    assert!(
        r.timings.total_ms < 1_500.0,
        "gave up after {} ms",
        r.timings.total_ms
    );
    let local = r
        .local_addr
        .expect("the local port is known even without an answer");
    assert_ne!(local.port(), 0);
}

#[test]
fn a_server_that_never_answers_is_a_timeout_at_the_overall_deadline() {
    let mut spec = http(silent_responder(), "/");
    spec.timeout_ms = 600;
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::Timeout, "{}", r.detail);
    assert!(r.timings.connect_ms.is_some());
    assert!(
        r.timings.total_ms >= 590.0 && r.timings.total_ms < 1_200.0,
        "{:?}",
        r.timings
    );
}
