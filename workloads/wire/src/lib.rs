//! The wire contract between the harness and the in-pod agent.
//!
//! Everything the two sides exchange is defined here and nowhere else:
//! - [`Outcome`]: the named client outcomes. The policy model predicts one, the agent observes one and
//!   the judgement compares them, so a verdict means the same thing everywhere.
//! - [`ProbeSpec`]: one probe the harness asks the agent to run, and how it is put on a command line.
//! - [`ProbeResult`]: the one JSON object the agent prints for every probe.
//!
//! [`WIRE_VERSION`] is carried in every result; the harness refuses results of another version.

use serde::{Deserialize, Serialize};

mod result;
mod spec;

pub use result::{
    DnsAnswer, DnsDetails, HttpDetails, KafkaActionKind, KafkaDetails, KafkaExchange, KafkaMode,
    PostgresDetails, ProbeResult, Timings, WireError,
};
pub use spec::{
    AGENT_PROGRAM, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, DnsQuery, DnsTransport, DnsType,
    ExactVersions, HttpHeader, HttpRequest, HttpsRequest, KafkaAction, KafkaClient, KafkaRequest,
    PostgresQuery, ProbeKind, ProbeRequest, ProbeSpec, RdkafkaOptions,
};

/// Version of the JSON contract. Bump on any incompatible change of [`ProbeResult`] or [`ProbeSpec`].
pub const WIRE_VERSION: u32 = 1;

/// What a client saw, classified.
///
/// The network meaning of each class is given by [`Outcome::network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The connection was made and the protocol exchange finished (whatever the application answered:
    /// an application 403 or a SQL error from the server is still `completed` at the network level).
    Completed,
    /// No answer to the connection attempt before the connect deadline: what a policy drop looks like.
    ConnectTimeout,
    /// The peer answered the SYN with a RST: the network let it through, nothing listens there.
    Refused,
    /// The connection was established, then reset by the peer.
    Reset,
    /// An ICMP unreachable came back (for example Cilium's `--policy-deny-response=icmp`).
    Unreachable,
    /// The TLS handshake failed.
    TlsFailure,
    /// Connected, but the peer spoke something else (for example plain HTTP to a TLS port).
    ProtocolError,
    /// Connected, then no complete answer before the overall deadline.
    Timeout,
    /// HTTP 403 produced by Cilium's Envoy proxy (body `Access denied`), not by the application.
    ProxyDenied,
    /// Kafka error 29 TOPIC_AUTHORIZATION_FAILED, which Cilium's Kafka proxy injects on a policy deny.
    KafkaTopicAuthorizationFailed,
    /// Any other Kafka error code.
    KafkaError,
    /// Connected to Kafka, but a request got no response (Cilium silently drops denied requests of API keys
    /// it cannot answer, such as ApiVersions).
    KafkaNoResponse,
    /// The PostgreSQL server returned an error.
    PostgresError,
    /// The DNS query failed (SERVFAIL, NXDOMAIN or a malformed answer).
    DnsFailure,
    /// The DNS server answered REFUSED: what Cilium's DNS proxy answers on a policy deny. (A server can
    /// refuse on its own too; inside a cluster kube-dns does not.)
    DnsRefused,
    /// A UDP probe got no answer before the deadline: what a policy drop of UDP looks like.
    NoResponse,
}

/// What an [`Outcome`] says about the network path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMeaning {
    /// Packets reached the server: the policy allowed the flow at L3/L4 (and at L7 if proxied).
    Allowed,
    /// The flow never connected: consistent with an L3/L4 policy drop.
    DeniedL4,
    /// The flow connected but a proxy refused the request: an L7 policy deny.
    DeniedL7,
    /// The outcome says nothing certain about policy (a timeout after connect, for example).
    Unclear,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 16] = [
        Outcome::Completed,
        Outcome::ConnectTimeout,
        Outcome::Refused,
        Outcome::Reset,
        Outcome::Unreachable,
        Outcome::TlsFailure,
        Outcome::ProtocolError,
        Outcome::Timeout,
        Outcome::ProxyDenied,
        Outcome::KafkaTopicAuthorizationFailed,
        Outcome::KafkaError,
        Outcome::KafkaNoResponse,
        Outcome::PostgresError,
        Outcome::DnsFailure,
        Outcome::DnsRefused,
        Outcome::NoResponse,
    ];

    /// What this outcome says about the network policy.
    pub fn network(self) -> NetworkMeaning {
        match self {
            Outcome::Completed
            | Outcome::Refused
            | Outcome::Reset
            | Outcome::TlsFailure
            | Outcome::ProtocolError
            | Outcome::KafkaError
            | Outcome::PostgresError
            | Outcome::DnsFailure => NetworkMeaning::Allowed,
            Outcome::ConnectTimeout | Outcome::Unreachable | Outcome::NoResponse => {
                NetworkMeaning::DeniedL4
            }
            Outcome::ProxyDenied | Outcome::KafkaTopicAuthorizationFailed | Outcome::DnsRefused => {
                NetworkMeaning::DeniedL7
            }
            Outcome::Timeout | Outcome::KafkaNoResponse => NetworkMeaning::Unclear,
        }
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Unreachable => "unreachable",
            Outcome::TlsFailure => "tls_failure",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Timeout => "timeout",
            Outcome::ProxyDenied => "proxy_denied",
            Outcome::KafkaTopicAuthorizationFailed => "kafka_topic_authorization_failed",
            Outcome::KafkaError => "kafka_error",
            Outcome::KafkaNoResponse => "kafka_no_response",
            Outcome::PostgresError => "postgres_error",
            Outcome::DnsFailure => "dns_failure",
            Outcome::DnsRefused => "dns_refused",
            Outcome::NoResponse => "no_response",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip_through_json() {
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).expect("serialise");
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            let back: Outcome = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, o);
        }
    }

    #[test]
    fn policy_drops_and_proxy_denials_have_distinct_meanings() {
        assert_eq!(Outcome::ConnectTimeout.network(), NetworkMeaning::DeniedL4);
        assert_eq!(Outcome::Refused.network(), NetworkMeaning::Allowed);
        assert_eq!(Outcome::ProxyDenied.network(), NetworkMeaning::DeniedL7);
        assert_eq!(
            Outcome::KafkaTopicAuthorizationFailed.network(),
            NetworkMeaning::DeniedL7
        );
        assert_eq!(Outcome::Timeout.network(), NetworkMeaning::Unclear);
    }

    fn sample_specs() -> Vec<ProbeSpec> {
        vec![
            ProbeSpec::new("10.0.0.1:8080", ProbeRequest::Tcp),
            ProbeSpec::new(
                "api.backend:8080",
                ProbeRequest::Http(HttpRequest {
                    method: "POST".into(),
                    path: "/api/v1/orders?x=1".into(),
                    headers: vec![HttpHeader {
                        name: "X-Token".into(),
                        value: "-a b".into(),
                    }],
                    body: Some("{}".into()),
                    host_header: Some("api".into()),
                }),
            ),
            ProbeSpec::new(
                "[::1]:443",
                ProbeRequest::Https(HttpsRequest {
                    http: HttpRequest::default(),
                    sni: Some("frontend".into()),
                }),
            ),
            ProbeSpec::new(
                "10.96.0.10:53",
                ProbeRequest::Dns(DnsQuery {
                    name: "kafka.svc".into(),
                    qtype: DnsType::Aaaa,
                    transport: DnsTransport::Tcp,
                }),
            ),
            ProbeSpec::new("db:5432", ProbeRequest::Postgres(PostgresQuery::default())),
            ProbeSpec::new(
                "kafka:9092",
                ProbeRequest::Kafka(KafkaRequest {
                    client: KafkaClient::Exact(ExactVersions::default()),
                    action: KafkaAction::Produce {
                        message: "m".into(),
                    },
                    topic: "orders".into(),
                    partition: 0,
                    client_id: "c".into(),
                }),
            ),
            ProbeSpec::new(
                "kafka:9092",
                ProbeRequest::Kafka(KafkaRequest {
                    client: KafkaClient::Rdkafka(RdkafkaOptions {
                        config: vec![("api.version.request".into(), "false".into())],
                    }),
                    action: KafkaAction::Consume,
                    topic: "orders".into(),
                    partition: 1,
                    client_id: "".into(),
                }),
            ),
        ]
    }

    #[test]
    fn probe_specs_round_trip_through_json() {
        for spec in sample_specs() {
            let json = serde_json::to_string(&spec).expect("serialise");
            let back: ProbeSpec = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, spec, "{json}");
        }
    }

    #[test]
    fn to_args_starts_with_program_kind_and_target_and_keeps_values_attached() {
        let args = sample_specs()[1].to_args();
        assert_eq!(&args[..3], ["agent", "probe", "http"]);
        assert!(
            args.contains(&"--target=api.backend:8080".to_owned()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--header=X-Token: -a b".to_owned()),
            "{args:?}"
        );
        let exact = sample_specs()[5].to_args();
        assert!(exact.contains(&"--no-api-versions".to_owned()), "{exact:?}");
        assert!(
            exact.contains(&"--produce-version=3".to_owned()),
            "{exact:?}"
        );
    }

    fn sample_result() -> ProbeResult {
        ProbeResult {
            version: WIRE_VERSION,
            probe: ProbeKind::Http,
            target: "127.0.0.1:80".into(),
            outcome: Outcome::ProxyDenied,
            detail: "HTTP 403 from Cilium's proxy".into(),
            timings: Timings {
                connect_ms: Some(0.2),
                first_byte_ms: Some(1.5),
                total_ms: 1.7,
            },
            local_addr: Some("127.0.0.1:40000".parse().expect("addr")),
            peer_addr: Some("127.0.0.1:80".parse().expect("addr")),
            http: Some(HttpDetails {
                status: 403,
                proxy_denied: true,
                server: Some("envoy".into()),
                content_type: Some("text/plain".into()),
                body_bytes: 15,
                body_excerpt: "Access denied\r\n".into(),
            }),
            kafka: None,
            postgres: None,
            dns: None,
        }
    }

    #[test]
    fn probe_results_round_trip_and_omit_absent_protocol_details() {
        let r = sample_result();
        let json = r.to_json();
        assert!(!json.contains("\"kafka\""), "{json}");
        assert!(
            json.contains("\"local_addr\":\"127.0.0.1:40000\""),
            "{json}"
        );
        assert_eq!(ProbeResult::from_json(&json).expect("parse"), r);
    }

    #[test]
    fn results_of_another_wire_version_are_refused_as_such() {
        let mut r = sample_result();
        r.version = WIRE_VERSION + 1;
        let err = ProbeResult::from_json(&r.to_json()).expect_err("must refuse");
        assert!(
            matches!(err, WireError::Version { found, .. } if found == WIRE_VERSION + 1),
            "{err}"
        );
        assert!(matches!(
            ProbeResult::from_json("not json"),
            Err(WireError::Json(_))
        ));
    }
}
