//! `agent probe http|https`: one HTTP/1.1 request (with `Connection: close`), the whole response read.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use probe_wire::{HttpDetails, HttpRequest, Outcome};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout_at;

use super::{Report, Verdict};
use crate::classify::{self, Phase};
use crate::clock::Clock;
use crate::net::{self, Failure, Target};
use crate::timed::{FirstByte, Timed};

/// How much of the body is kept (the excerpt in the result is shorter).
const KEEP_BODY: usize = 4096;
/// Length of the body excerpt in the result.
const EXCERPT: usize = 512;

/// Runs the probe. `tls` is `None` for plain HTTP, `Some(sni)` for HTTPS.
pub(super) async fn probe(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    req: &HttpRequest,
    tls: Option<Option<&str>>,
) -> Verdict {
    let c = match net::connect(target, clock).await {
        Ok(c) => c,
        Err(e) => return Err(report.connect_failed(e)),
    };
    report.connected(&c);
    match tls {
        None => {
            let (stream, seen) = Timed::new(c.stream);
            report.first_byte = Some(seen.clone());
            exchange(stream, seen, target, clock, report, req).await
        }
        Some(sni) => {
            let name = server_name(sni, target)?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config()?));
            let handshake = timeout_at(clock.deadline(), connector.connect(name, c.stream)).await;
            let tls = match handshake {
                Err(_) => {
                    return Err(Failure::new(
                        Outcome::Timeout,
                        "the TLS handshake did not finish before the deadline",
                    ));
                }
                Ok(Err(e)) => return Err(Failure::io(&e, Phase::Tls, "TLS handshake failed")),
                Ok(Ok(tls)) => tls,
            };
            let (stream, seen) = Timed::new(tls);
            report.first_byte = Some(seen.clone());
            exchange(stream, seen, target, clock, report, req).await
        }
    }
}

async fn exchange<S>(
    stream: S,
    seen: FirstByte,
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    req: &HttpRequest,
) -> Verdict
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = build_request(req, target)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_failure(&e, &seen))?;
    let driver = tokio::spawn(conn);
    let response = match timeout_at(clock.deadline(), sender.send_request(request)).await {
        Err(_) => {
            driver.abort();
            return Err(Failure::new(
                Outcome::Timeout,
                "connected, but no complete response head before the deadline",
            ));
        }
        Ok(Err(e)) => return Err(hyper_failure(&e, &seen)),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let server = header(http::header::SERVER);
    let content_type = header(http::header::CONTENT_TYPE);
    let mut body = response.into_body();
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let details = |kept: &[u8], total: u64, complete: bool| HttpDetails {
        status,
        proxy_denied: complete && classify::is_proxy_denial(status, kept),
        server: server.clone(),
        content_type: content_type.clone(),
        body_bytes: total,
        body_excerpt: String::from_utf8_lossy(&kept[..kept.len().min(EXCERPT)]).into_owned(),
    };
    loop {
        match timeout_at(clock.deadline(), body.frame()).await {
            Err(_) => {
                report.http = Some(details(&kept, total, false));
                driver.abort();
                return Err(Failure::new(
                    Outcome::Timeout,
                    format!("HTTP {status}, but the body did not finish before the deadline"),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                report.http = Some(details(&kept, total, false));
                return Err(hyper_failure(&e, &seen));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    let room = KEEP_BODY.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..room.min(data.len())]);
                }
            }
        }
    }
    driver.abort();
    let complete_body: &[u8] = if total as usize == kept.len() {
        &kept
    } else {
        b""
    };
    let outcome = classify::http_response(status, complete_body);
    report.http = Some(details(&kept, total, true));
    match outcome {
        Outcome::ProxyDenied => Err(Failure::new(
            Outcome::ProxyDenied,
            "HTTP 403 with Cilium's proxy body \"Access denied\": denied by an L7 policy",
        )),
        _ => Ok(format!("HTTP {status}, {total} body bytes")),
    }
}

fn build_request(
    req: &HttpRequest,
    target: &Target,
) -> Result<http::Request<Full<Bytes>>, Failure> {
    let bad = |e: &dyn std::fmt::Display| {
        Failure::new(
            Outcome::ProtocolError,
            format!("cannot build the request: {e}"),
        )
    };
    let host = req
        .host_header
        .clone()
        .unwrap_or_else(|| target.to_string());
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str())
        .header(http::header::HOST, host);
    for h in &req.headers {
        b = b.header(h.name.as_str(), h.value.as_str());
    }
    b = b.header(http::header::CONNECTION, "close");
    let body = req.body.clone().map(Bytes::from).unwrap_or_default();
    if !body.is_empty() || req.body.is_some() {
        b = b.header(http::header::CONTENT_LENGTH, body.len());
    }
    b.body(Full::new(body)).map_err(|e| bad(&e))
}

/// Classifies a hyper client error: an I/O error in its chain decides; otherwise a malformed or
/// truncated response is a protocol error (with a hint when the peer answered with a TLS record).
fn hyper_failure(e: &hyper::Error, seen: &FirstByte) -> Failure {
    if let Some(io) = classify::io_error_in_chain(e) {
        return Failure::io(io, Phase::Exchange, "HTTP exchange failed");
    }
    let hint = if seen.looks_like_tls() {
        " (the peer answered with a TLS record: this port speaks TLS)"
    } else {
        ""
    };
    let what = if e.is_incomplete_message() {
        "the connection closed before a complete response"
    } else if e.is_parse() || e.is_parse_status() {
        "the response is not HTTP/1.x"
    } else {
        "HTTP exchange failed"
    };
    Failure::new(Outcome::ProtocolError, format!("{what}: {e}{hint}"))
}

fn server_name(sni: Option<&str>, target: &Target) -> Result<ServerName<'static>, Failure> {
    let invalid = |n: &str| {
        Failure::new(
            Outcome::TlsFailure,
            format!("invalid TLS server name {n:?}"),
        )
    };
    match (sni, target.ip()) {
        (Some(n), _) => ServerName::try_from(n.to_owned()).map_err(|_| invalid(n)),
        (None, Some(ip)) => Ok(ServerName::IpAddress(ip.into())),
        (None, None) => {
            ServerName::try_from(target.host.clone()).map_err(|_| invalid(&target.host))
        }
    }
}

fn client_config() -> Result<rustls::ClientConfig, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(Outcome::TlsFailure, format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(config)
}

/// Accepts any server certificate (the stack's certificates are self-signed), but still checks that the
/// handshake signatures are made with the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
