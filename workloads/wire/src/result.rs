//! [`ProbeResult`]: the one JSON object the agent prints on stdout for every probe it ran.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Outcome, ProbeKind, WIRE_VERSION};

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// [`WIRE_VERSION`] of the agent that wrote it.
    pub version: u32,
    /// The probe kind.
    pub probe: ProbeKind,
    /// The target as given (`host:port`).
    pub target: String,
    /// The classified outcome.
    pub outcome: Outcome,
    /// One human sentence: what happened, with the underlying error if any.
    pub detail: String,
    /// When things happened, relative to the start of the probe.
    pub timings: Timings,
    /// Local socket address of the probe's (first) connection. The harness matches Hubble flows on its
    /// ephemeral port. Absent when no socket was bound (e.g. name resolution failed) and in rdkafka mode
    /// (librdkafka does not expose its sockets).
    #[serde(default)]
    pub local_addr: Option<SocketAddr>,
    /// Remote socket address the probe connected (or sent) to.
    #[serde(default)]
    pub peer_addr: Option<SocketAddr>,
    /// HTTP(S) details, when a response was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpDetails>,
    /// Kafka details (every Kafka probe has them, even when nothing was answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaDetails>,
    /// PostgreSQL details, when the server answered the query or returned an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresDetails>,
    /// DNS details, when an answer was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsDetails>,
}

/// Milliseconds since the start of the probe (after argument parsing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// When the TCP connection was established (absent if it never was; for UDP, absent).
    #[serde(default)]
    pub connect_ms: Option<f64>,
    /// When the first byte of the peer's answer arrived (after the TLS handshake for HTTPS).
    #[serde(default)]
    pub first_byte_ms: Option<f64>,
    /// When the probe finished.
    pub total_ms: f64,
}

/// The HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpDetails {
    /// Status code.
    pub status: u16,
    /// True when the response is Cilium's Envoy L7 denial: status 403 with the body `Access denied\r\n`.
    pub proxy_denied: bool,
    /// `Server` header, if any (Envoy's local replies carry `envoy`).
    #[serde(default)]
    pub server: Option<String>,
    /// `Content-Type` header, if any.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Body length in bytes (the whole body was read).
    pub body_bytes: u64,
    /// The first bytes of the body (at most 512), lossily decoded as UTF-8.
    pub body_excerpt: String,
}

/// Which Kafka client ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaMode {
    /// The agent's own client with fixed request versions.
    Exact,
    /// librdkafka.
    Rdkafka,
}

/// Produce or consume, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaActionKind {
    /// Produce one message.
    Produce,
    /// Consume from the start of the partition.
    Consume,
}

/// What the Kafka probe did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaDetails {
    /// The client that ran.
    pub mode: KafkaMode,
    /// Produce or consume.
    pub action: KafkaActionKind,
    /// The topic.
    pub topic: String,
    /// The client id sent.
    pub client_id: String,
    /// Exact mode: every request sent, in order. Empty in rdkafka mode.
    #[serde(default)]
    pub requests: Vec<KafkaExchange>,
    /// The error that decided the outcome (Kafka protocol codes; in rdkafka mode also librdkafka's own
    /// negative codes, e.g. -192 for a local message timeout).
    #[serde(default)]
    pub error_code: Option<i32>,
    /// Name of `error_code`, e.g. `TOPIC_AUTHORIZATION_FAILED`.
    #[serde(default)]
    pub error_name: Option<String>,
    /// Produce: offset of the produced message. Consume: offset of the first record read.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Consume: number of records read.
    #[serde(default)]
    pub records: Option<u32>,
}

/// One request of the exact mode and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaExchange {
    /// API key number, e.g. 0.
    pub api_key: i16,
    /// API key name, e.g. `Produce`.
    pub api_name: String,
    /// Request version sent.
    pub api_version: i16,
    /// Correlation id of the request.
    pub correlation_id: i32,
    /// Whether a response arrived before the deadline.
    pub responded: bool,
    /// The first non-zero error code in the response (top level, topic or partition), or 0.
    #[serde(default)]
    pub error_code: Option<i16>,
    /// Name of `error_code`, e.g. `NONE` or `TOPIC_AUTHORIZATION_FAILED`.
    #[serde(default)]
    pub error_name: Option<String>,
    /// The offset the response carried: Produce's base offset, ListOffsets' offset, or the first record
    /// offset of a Fetch.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Milliseconds from sending the request to its response (or to giving up).
    pub elapsed_ms: f64,
}

/// What PostgreSQL answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PostgresDetails {
    /// Rows of the last statement, every value as text (`None` for NULL); at most 100 rows.
    #[serde(default)]
    pub rows: Vec<Vec<Option<String>>>,
    /// SQLSTATE of the server's error, e.g. `42P01`.
    #[serde(default)]
    pub sqlstate: Option<String>,
    /// The server's error message.
    #[serde(default)]
    pub message: Option<String>,
}

/// The DNS answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsDetails {
    /// Response code number (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...).
    pub rcode: u8,
    /// Response code name.
    pub rcode_name: String,
    /// The answer section.
    #[serde(default)]
    pub answers: Vec<DnsAnswer>,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// Owner name.
    pub name: String,
    /// Type mnemonic (or `TYPE<n>`).
    pub rtype: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Record data in presentation form (address, name, text; hex for other types).
    pub data: String,
}

/// Why agent output could not be read as a [`ProbeResult`].
#[derive(Debug)]
pub enum WireError {
    /// The text is not a JSON object of the expected shape.
    Json(serde_json::Error),
    /// The agent speaks another version of the contract.
    Version {
        /// Version found in the output.
        found: u32,
        /// Version this crate speaks.
        expected: u32,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Json(e) => write!(f, "agent output is not a probe result: {e}"),
            WireError::Version { found, expected } => write!(
                f,
                "agent speaks wire version {found}, this harness speaks {expected}: rebuild the agent image"
            ),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Json(e) => Some(e),
            WireError::Version { .. } => None,
        }
    }
}

impl ProbeResult {
    /// Reads the agent's stdout: one JSON object (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`WireError::Version`] when the object carries another [`WIRE_VERSION`] (checked before the rest of
    /// the shape, so a version mismatch is reported as such), [`WireError::Json`] when it is not a result.
    pub fn from_json(text: &str) -> Result<ProbeResult, WireError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_str(text.trim()).map_err(WireError::Json)?;
        if v.version != WIRE_VERSION {
            return Err(WireError::Version {
                found: v.version,
                expected: WIRE_VERSION,
            });
        }
        serde_json::from_str(text.trim()).map_err(WireError::Json)
    }

    /// The result as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
