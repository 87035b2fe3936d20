//! The classification rules: from what a client saw to a named [`Outcome`].
//!
//! Each rule is a pure function with its own unit tests. The probes only gather evidence (an I/O error
//! and the phase it happened in, an HTTP status and body, a Kafka error code, a DNS rcode) and ask here.

use std::io;

use probe_wire::Outcome;

/// Where in a probe an error happened; the same error means different things in different phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Establishing the TCP connection (nothing was connected yet).
    Connect,
    /// The TLS handshake (TCP was connected).
    Tls,
    /// Sending the request and reading the answer (TCP, and TLS if any, were up).
    Exchange,
}

/// The body of the HTTP 403 that Cilium's Envoy proxy sends on an L7 deny (cilium/proxy `l7policy.cc`:
/// `Access denied`, CRLF appended), 15 bytes.
pub const CILIUM_DENIED_BODY: &[u8] = b"Access denied\r\n";

/// `EHOSTDOWN` on Linux; std has no `ErrorKind` for it.
const EHOSTDOWN: i32 = 112;

/// Classifies an I/O error by its kind and the phase it happened in.
///
/// - refused (RST to the SYN, or ICMP port unreachable on UDP) → [`Outcome::Refused`];
/// - host/network unreachable or down (ICMP unreachable, no route) → [`Outcome::Unreachable`];
/// - timed out → [`Outcome::ConnectTimeout`] while connecting, [`Outcome::Timeout`] after;
/// - reset, aborted, broken pipe → [`Outcome::Reset`];
/// - end of stream or undecodable data → [`Outcome::TlsFailure`] during the handshake,
///   [`Outcome::ProtocolError`] after it;
/// - anything else → [`Outcome::Unreachable`] while connecting (the kernel would not connect),
///   [`Outcome::TlsFailure`] during the handshake, [`Outcome::ProtocolError`] after it.
pub fn io_error(e: &io::Error, phase: Phase) -> Outcome {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Outcome::Refused,
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Outcome::Unreachable,
        _ if e.raw_os_error() == Some(EHOSTDOWN) => Outcome::Unreachable,
        K::TimedOut => match phase {
            Phase::Connect => Outcome::ConnectTimeout,
            Phase::Tls | Phase::Exchange => Outcome::Timeout,
        },
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Outcome::Reset,
        _ => match phase {
            Phase::Connect => Outcome::Unreachable,
            Phase::Tls => Outcome::TlsFailure,
            Phase::Exchange => Outcome::ProtocolError,
        },
    }
}

/// The first [`io::Error`] in an error's source chain (the error itself included).
pub fn io_error_in_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Whether an HTTP response is Cilium's proxy denial: status 403 and exactly the body
/// [`CILIUM_DENIED_BODY`]. Headers are not required to match (Envoy's local-reply headers are not
/// guaranteed); an application 403 has any other body.
pub fn is_proxy_denial(status: u16, body: &[u8]) -> bool {
    status == 403 && body == CILIUM_DENIED_BODY
}

/// Classifies a complete HTTP response: [`Outcome::ProxyDenied`] for Cilium's 403, otherwise
/// [`Outcome::Completed`] whatever the status (an application 403 or 404 is still a completed exchange).
pub fn http_response(status: u16, body: &[u8]) -> Outcome {
    if is_proxy_denial(status, body) {
        Outcome::ProxyDenied
    } else {
        Outcome::Completed
    }
}

/// Kafka error 29, TOPIC_AUTHORIZATION_FAILED: what Cilium's Kafka proxy injects on a deny.
pub const KAFKA_TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// Classifies a Kafka protocol error code: 0 → [`Outcome::Completed`], 29 →
/// [`Outcome::KafkaTopicAuthorizationFailed`], anything else → [`Outcome::KafkaError`].
pub fn kafka_error_code(code: i16) -> Outcome {
    match code {
        0 => Outcome::Completed,
        KAFKA_TOPIC_AUTHORIZATION_FAILED => Outcome::KafkaTopicAuthorizationFailed,
        _ => Outcome::KafkaError,
    }
}

/// The protocol name of a Kafka error code, e.g. `TOPIC_AUTHORIZATION_FAILED` (0 is `NONE`).
pub fn kafka_error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_CODE_{c}"),
        Some(known) => screaming_snake(&format!("{known:?}")),
    }
}

/// `TopicAuthorizationFailed` → `TOPIC_AUTHORIZATION_FAILED`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The name of a Kafka API key number, e.g. `Produce` (or `ApiKey<n>` for unknown numbers).
pub fn kafka_api_name(key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(()) => format!("ApiKey{key}"),
    }
}

/// Classifies a DNS response code: NOERROR (0) → [`Outcome::Completed`] (even with no answer records),
/// REFUSED (5), which Cilium's DNS proxy answers on a policy deny → [`Outcome::DnsRefused`], anything
/// else (SERVFAIL, NXDOMAIN, ...) → [`Outcome::DnsFailure`].
pub fn dns_rcode(rcode: u8) -> Outcome {
    match rcode {
        0 => Outcome::Completed,
        5 => Outcome::DnsRefused,
        _ => Outcome::DnsFailure,
    }
}

/// The mnemonic of a DNS response code.
pub fn dns_rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        n => format!("RCODE{n}"),
    }
}

/// librdkafka's local error codes (negative) that the rdkafka rule distinguishes.
pub mod rdkafka_codes {
    /// `RD_KAFKA_RESP_ERR__MSG_TIMED_OUT`: the message could not be delivered before `message.timeout.ms`.
    pub const MSG_TIMED_OUT: i32 = -192;
    /// `RD_KAFKA_RESP_ERR__TIMED_OUT`: an operation timed out.
    pub const TIMED_OUT: i32 = -185;
    /// `RD_KAFKA_RESP_ERR__TRANSPORT`: broker transport failure.
    pub const TRANSPORT: i32 = -195;
    /// `RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN`.
    pub const ALL_BROKERS_DOWN: i32 = -187;
}

/// Classifies the failure of an rdkafka-mode probe from the error code the operation ended with (a Kafka
/// protocol code if positive, a librdkafka local code if negative, none if the agent's own deadline ran
/// out first) and the transport errors librdkafka reported on the way (its error-callback texts).
///
/// - code 29 → [`Outcome::KafkaTopicAuthorizationFailed`]; any other positive code → [`Outcome::KafkaError`];
/// - otherwise the transport errors decide, most specific first: "Connection refused" → refused;
///   "No route to host"/"Network is unreachable" → unreachable; "Connection reset" → reset; a connect
///   that timed out ("Connection setup timed out", "Connect to ... timed out") → connect timeout;
///   "Disconnected" (the broker closed the connection, as Cilium's Kafka proxy does on requests it
///   cannot parse) → protocol error;
/// - no transport error: the broker was connected but did not answer in time → [`Outcome::KafkaNoResponse`].
pub fn rdkafka_failure(code: Option<i32>, transport_errors: &[String]) -> Outcome {
    if let Some(c) = code {
        if c == i32::from(KAFKA_TOPIC_AUTHORIZATION_FAILED) {
            return Outcome::KafkaTopicAuthorizationFailed;
        }
        if c > 0 {
            return Outcome::KafkaError;
        }
    }
    let any = |needle: &str| {
        transport_errors
            .iter()
            .any(|e| e.to_ascii_lowercase().contains(needle))
    };
    if any("connection refused") {
        Outcome::Refused
    } else if any("no route to host") || any("network is unreachable") {
        Outcome::Unreachable
    } else if any("connection reset") {
        Outcome::Reset
    } else if any("connection setup timed out") || (any("connect to") && any("timed out")) {
        Outcome::ConnectTimeout
    } else if any("disconnected") {
        Outcome::ProtocolError
    } else {
        Outcome::KafkaNoResponse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn refused_connections_are_refused_in_every_phase() {
        for phase in [Phase::Connect, Phase::Tls, Phase::Exchange] {
            assert_eq!(io_error(&os(111), phase), Outcome::Refused);
        }
    }

    #[test]
    fn unreachable_hosts_and_networks_are_unreachable() {
        // EHOSTUNREACH, ENETUNREACH, ENETDOWN, EHOSTDOWN
        for code in [113, 101, 100, 112] {
            assert_eq!(
                io_error(&os(code), Phase::Connect),
                Outcome::Unreachable,
                "errno {code}"
            );
        }
    }

    #[test]
    fn a_timeout_is_a_connect_timeout_only_while_connecting() {
        let e = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(io_error(&e, Phase::Connect), Outcome::ConnectTimeout);
        assert_eq!(io_error(&e, Phase::Tls), Outcome::Timeout);
        assert_eq!(io_error(&e, Phase::Exchange), Outcome::Timeout);
    }

    #[test]
    fn resets_aborts_and_broken_pipes_are_resets() {
        for code in [104, 103, 32] {
            assert_eq!(
                io_error(&os(code), Phase::Exchange),
                Outcome::Reset,
                "errno {code}"
            );
        }
    }

    #[test]
    fn end_of_stream_is_a_tls_failure_in_the_handshake_and_a_protocol_error_after() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(io_error(&eof, Phase::Tls), Outcome::TlsFailure);
        assert_eq!(io_error(&eof, Phase::Exchange), Outcome::ProtocolError);
        let bad = io::Error::new(io::ErrorKind::InvalidData, "bad record");
        assert_eq!(io_error(&bad, Phase::Tls), Outcome::TlsFailure);
        assert_eq!(io_error(&bad, Phase::Exchange), Outcome::ProtocolError);
    }

    #[test]
    fn io_errors_are_found_deep_in_a_source_chain() {
        #[derive(Debug)]
        struct Wrap(io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let w = Wrap(os(104));
        let found = io_error_in_chain(&w).expect("found");
        assert_eq!(found.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn only_a_403_with_ciliums_exact_body_is_a_proxy_denial() {
        assert_eq!(
            http_response(403, b"Access denied\r\n"),
            Outcome::ProxyDenied
        );
        assert_eq!(CILIUM_DENIED_BODY.len(), 15);
        assert_eq!(
            http_response(403, b"{\"error\":\"forbidden\"}"),
            Outcome::Completed
        );
        assert_eq!(http_response(403, b"Access denied"), Outcome::Completed);
        assert_eq!(http_response(200, b"Access denied\r\n"), Outcome::Completed);
        assert_eq!(http_response(404, b""), Outcome::Completed);
    }

    #[test]
    fn kafka_error_29_is_topic_authorization_failed_and_others_are_kafka_errors() {
        assert_eq!(kafka_error_code(0), Outcome::Completed);
        assert_eq!(kafka_error_code(29), Outcome::KafkaTopicAuthorizationFailed);
        assert_eq!(kafka_error_code(3), Outcome::KafkaError);
        assert_eq!(kafka_error_code(-1), Outcome::KafkaError);
    }

    #[test]
    fn kafka_error_and_api_names_use_the_protocol_spelling() {
        assert_eq!(kafka_error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(kafka_error_name(0), "NONE");
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(9999), "UNKNOWN_CODE_9999");
        assert_eq!(kafka_api_name(0), "Produce");
        assert_eq!(kafka_api_name(18), "ApiVersions");
        assert_eq!(kafka_api_name(999), "ApiKey999");
    }

    #[test]
    fn dns_noerror_completes_refused_is_a_deny_and_other_rcodes_are_failures() {
        assert_eq!(dns_rcode(0), Outcome::Completed);
        for rcode in [1, 2, 3, 4] {
            assert_eq!(dns_rcode(rcode), Outcome::DnsFailure);
        }
        assert_eq!(dns_rcode(5), Outcome::DnsRefused);
        assert_eq!(dns_rcode_name(3), "NXDOMAIN");
        assert_eq!(dns_rcode_name(5), "REFUSED");
    }

    #[test]
    fn rdkafka_failures_are_classified_by_code_then_transport_errors() {
        let none: &[String] = &[];
        assert_eq!(
            rdkafka_failure(Some(29), none),
            Outcome::KafkaTopicAuthorizationFailed
        );
        assert_eq!(rdkafka_failure(Some(3), none), Outcome::KafkaError);
        let t = |s: &str| vec![s.to_owned()];
        assert_eq!(
            rdkafka_failure(
                Some(rdkafka_codes::MSG_TIMED_OUT),
                &t("127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused")
            ),
            Outcome::Refused
        );
        assert_eq!(
            rdkafka_failure(
                None,
                &t("Connection setup timed out in state CONNECT (after 1000ms)")
            ),
            Outcome::ConnectTimeout
        );
        assert_eq!(
            rdkafka_failure(
                None,
                &t("Connect to ipv4#10.0.0.1:9092 failed: No route to host")
            ),
            Outcome::Unreachable
        );
        assert_eq!(
            rdkafka_failure(None, &t("Receive failed: Connection reset by peer")),
            Outcome::Reset
        );
        assert_eq!(
            rdkafka_failure(
                None,
                &t("Disconnected (after 3ms in state APIVERSION_QUERY)")
            ),
            Outcome::ProtocolError
        );
        assert_eq!(
            rdkafka_failure(Some(rdkafka_codes::MSG_TIMED_OUT), none),
            Outcome::KafkaNoResponse
        );
    }
}
