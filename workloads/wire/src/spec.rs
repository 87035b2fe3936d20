//! [`ProbeSpec`]: one probe the harness asks the agent to run, and the exact command line that runs it.
//!
//! The agent's argument parser accepts exactly what [`ProbeSpec::to_args`] renders and turns it back into
//! an equal `ProbeSpec` (the agent's tests check the round trip).

use serde::{Deserialize, Serialize};

/// The program name of the agent inside its image (it is on `PATH`).
pub const AGENT_PROGRAM: &str = "agent";

/// Default bound on the TCP connect, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Default bound on the whole probe (name resolution, connect and exchange), in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// The kind of a probe, as named on the command line (`agent probe <kind>`) and in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// An HTTP/1.1 request over plain TCP.
    Http,
    /// An HTTP/1.1 request over TLS, without certificate verification.
    Https,
    /// A TCP connect, nothing sent.
    Tcp,
    /// One DNS query (UDP by default).
    Dns,
    /// A PostgreSQL connection and one query.
    Postgres,
    /// A Kafka produce or consume.
    Kafka,
}

impl ProbeKind {
    /// The name used on the command line and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Https => "https",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Dns => "dns",
            ProbeKind::Postgres => "postgres",
            ProbeKind::Kafka => "kafka",
        }
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe: where to, how long at most, and what to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// `host:port`; the host is an IP address (IPv6 in brackets) or a DNS name the agent resolves.
    pub target: String,
    /// Bound on the TCP connect, in milliseconds (a UDP DNS query has no connect: it waits for its answer
    /// until the overall deadline).
    pub connect_timeout_ms: u64,
    /// Bound on the whole probe, in milliseconds. The agent never runs longer than this (plus the time
    /// to print its answer).
    pub timeout_ms: u64,
    /// What the probe sends.
    pub request: ProbeRequest,
    /// Stop the probe when anything arrives on standard input or it reaches end-of-file, and report what was
    /// seen until then (the harness writes to stdin to stop a deny probe as soon as Hubble reports the
    /// drop). Leave it off when stdin is not held open by the caller: a closed stdin stops the probe at once.
    #[serde(default)]
    pub cancel_on_stdin: bool,
}

/// What a probe sends, per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeRequest {
    /// An HTTP/1.1 request over plain TCP.
    Http(HttpRequest),
    /// An HTTP/1.1 request over TLS.
    Https(HttpsRequest),
    /// A TCP connect.
    Tcp,
    /// One DNS query.
    Dns(DnsQuery),
    /// A PostgreSQL connection and query.
    Postgres(PostgresQuery),
    /// A Kafka produce or consume.
    Kafka(KafkaRequest),
}

impl ProbeRequest {
    /// The kind of this request.
    pub fn kind(&self) -> ProbeKind {
        match self {
            ProbeRequest::Http(_) => ProbeKind::Http,
            ProbeRequest::Https(_) => ProbeKind::Https,
            ProbeRequest::Tcp => ProbeKind::Tcp,
            ProbeRequest::Dns(_) => ProbeKind::Dns,
            ProbeRequest::Postgres(_) => ProbeKind::Postgres,
            ProbeRequest::Kafka(_) => ProbeKind::Kafka,
        }
    }
}

/// One HTTP header to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    /// Header name, as given.
    pub name: String,
    /// Header value, as given.
    pub value: String,
}

/// An HTTP/1.1 request. The agent always sends `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target: path and optional query, e.g. `/api/v1/orders?x=1`.
    pub path: String,
    /// Extra headers, sent in this order.
    #[serde(default)]
    pub headers: Vec<HttpHeader>,
    /// Request body (sent with a `Content-Length`).
    #[serde(default)]
    pub body: Option<String>,
    /// Value of the `Host` header; the target's `host[:port]` when absent.
    #[serde(default)]
    pub host_header: Option<String>,
}

impl Default for HttpRequest {
    fn default() -> Self {
        HttpRequest {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            headers: Vec::new(),
            body: None,
            host_header: None,
        }
    }
}

/// An HTTP/1.1 request over TLS (certificates are not verified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpsRequest {
    /// The HTTP request sent inside the TLS session.
    #[serde(flatten)]
    pub http: HttpRequest,
    /// TLS server name (SNI); the target host when it is a DNS name, none when it is an IP address.
    #[serde(default)]
    pub sni: Option<String>,
}

/// A DNS record type the probe can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Service locator.
    Srv,
    /// Text.
    Txt,
    /// Reverse pointer.
    Ptr,
}

impl DnsType {
    /// Every type, in declaration order.
    pub const ALL: [DnsType; 6] = [
        DnsType::A,
        DnsType::Aaaa,
        DnsType::Cname,
        DnsType::Srv,
        DnsType::Txt,
        DnsType::Ptr,
    ];

    /// The mnemonic, as on the command line (`--type AAAA`).
    pub fn as_str(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Cname => "CNAME",
            DnsType::Srv => "SRV",
            DnsType::Txt => "TXT",
            DnsType::Ptr => "PTR",
        }
    }

    /// The record type number (RFC 1035 and successors).
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Cname => 5,
            DnsType::Ptr => 12,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
            DnsType::Srv => 33,
        }
    }
}

/// How a DNS query travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DnsTransport {
    /// One datagram each way.
    #[default]
    Udp,
    /// A TCP connection with a length-prefixed message each way.
    Tcp,
}

impl DnsTransport {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
        }
    }
}

/// One DNS query, sent to the probe's target (the DNS server, e.g. kube-dns `10.96.0.10:53`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuery {
    /// The name asked for, e.g. `api.backend.svc.cluster.local`.
    pub name: String,
    /// The record type asked for.
    #[serde(default)]
    pub qtype: DnsType,
    /// UDP or TCP.
    #[serde(default)]
    pub transport: DnsTransport,
}

/// A PostgreSQL connection (no TLS) and one query, run with the simple query protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresQuery {
    /// User to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// Password, when the server asks for one.
    #[serde(default)]
    pub password: Option<String>,
    /// The SQL to run.
    pub query: String,
}

impl Default for PostgresQuery {
    fn default() -> Self {
        PostgresQuery {
            user: "postgres".to_owned(),
            database: "postgres".to_owned(),
            password: None,
            query: "SELECT 1".to_owned(),
        }
    }
}

/// A Kafka produce or consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRequest {
    /// Which client speaks to the broker.
    pub client: KafkaClient,
    /// Produce or consume.
    pub action: KafkaAction,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The client id sent in every request header (Cilium's `clientID` rule field matches it exactly).
    pub client_id: String,
}

/// Produce or consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum KafkaAction {
    /// Produce one message with this value (no key).
    Produce {
        /// The message value.
        message: String,
    },
    /// Read from the start of the partition; succeeds whether or not records come back.
    Consume,
}

impl KafkaAction {
    /// The name used on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            KafkaAction::Produce { .. } => "produce",
            KafkaAction::Consume => "consume",
        }
    }
}

/// Which Kafka client the probe uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum KafkaClient {
    /// The agent's own client: every request encoded at the version given here, sent on one connection to
    /// the target (no broker discovery: the stack has one broker).
    Exact(ExactVersions),
    /// librdkafka through the `rdkafka` crate, as real applications use it. It negotiates versions with
    /// ApiVersions and follows the broker addresses in Metadata.
    Rdkafka(RdkafkaOptions),
}

impl KafkaClient {
    /// The mode name used on the command line.
    pub fn mode_str(&self) -> &'static str {
        match self {
            KafkaClient::Exact(_) => "exact",
            KafkaClient::Rdkafka(_) => "rdkafka",
        }
    }
}

/// Request versions of the exact mode. A request whose version is `None` is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactVersions {
    /// ApiVersions (18), sent first when set.
    #[serde(default)]
    pub api_versions: Option<i16>,
    /// Metadata (3) for the topic, sent before the produce or consume when set.
    #[serde(default)]
    pub metadata: Option<i16>,
    /// Produce (0).
    pub produce: i16,
    /// ListOffsets (2), consume only: finds the earliest offset.
    pub list_offsets: i16,
    /// Fetch (1), consume only.
    pub fetch: i16,
}

impl Default for ExactVersions {
    /// Versions inside Cilium's Kafka parser range (v0-v5, no flexible versions) that both Apache Kafka 3.9
    /// and tansu accept: Metadata v1, Produce v3, ListOffsets v1, Fetch v4; no ApiVersions.
    fn default() -> Self {
        ExactVersions {
            api_versions: None,
            metadata: Some(1),
            produce: 3,
            list_offsets: 1,
            fetch: 4,
        }
    }
}

/// Options of the rdkafka mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RdkafkaOptions {
    /// Extra librdkafka configuration, applied after the agent's own (so it can override them), e.g.
    /// `api.version.request=false` and `broker.version.fallback=0.9.0` for the 0.9 protocol.
    #[serde(default)]
    pub config: Vec<(String, String)>,
}

impl ProbeSpec {
    /// A spec with the default timeouts.
    pub fn new(target: impl Into<String>, request: ProbeRequest) -> Self {
        ProbeSpec {
            target: target.into(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            request,
            cancel_on_stdin: false,
        }
    }

    /// The kind of this probe.
    pub fn kind(&self) -> ProbeKind {
        self.request.kind()
    }

    /// The complete command line that runs this probe, program name first
    /// (`["agent", "probe", "http", "--target", ...]`), ready for `exec` without a shell.
    ///
    /// Every field is rendered explicitly (defaults included), so the agent parses it back into an equal
    /// spec whatever its own defaults are.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Args(vec![AGENT_PROGRAM.to_owned(), "probe".to_owned()]);
        a.word(self.kind().as_str());
        a.opt("--target", &self.target);
        a.opt("--connect-timeout-ms", self.connect_timeout_ms);
        a.opt("--timeout-ms", self.timeout_ms);
        if self.cancel_on_stdin {
            a.word("--cancel-on-stdin");
        }
        match &self.request {
            ProbeRequest::Http(http) => a.http(http),
            ProbeRequest::Https(https) => {
                a.http(&https.http);
                if let Some(sni) = &https.sni {
                    a.opt("--sni", sni);
                }
            }
            ProbeRequest::Tcp => {}
            ProbeRequest::Dns(q) => {
                a.opt("--name", &q.name);
                a.opt("--type", q.qtype.as_str());
                a.opt("--transport", q.transport.as_str());
            }
            ProbeRequest::Postgres(q) => {
                a.opt("--user", &q.user);
                a.opt("--database", &q.database);
                if let Some(p) = &q.password {
                    a.opt("--password", p);
                }
                a.opt("--query", &q.query);
            }
            ProbeRequest::Kafka(k) => {
                a.opt("--mode", k.client.mode_str());
                a.opt("--action", k.action.as_str());
                a.opt("--topic", &k.topic);
                a.opt("--partition", k.partition);
                a.opt("--client-id", &k.client_id);
                if let KafkaAction::Produce { message } = &k.action {
                    a.opt("--message", message);
                }
                match &k.client {
                    KafkaClient::Exact(v) => {
                        match v.api_versions {
                            Some(n) => a.opt("--api-versions-version", n),
                            None => a.word("--no-api-versions"),
                        }
                        match v.metadata {
                            Some(n) => a.opt("--metadata-version", n),
                            None => a.word("--no-metadata"),
                        }
                        a.opt("--produce-version", v.produce);
                        a.opt("--list-offsets-version", v.list_offsets);
                        a.opt("--fetch-version", v.fetch);
                    }
                    KafkaClient::Rdkafka(o) => {
                        for (k, v) in &o.config {
                            a.opt("--rdkafka-config", format!("{k}={v}"));
                        }
                    }
                }
            }
        }
        a.0
    }
}

/// Builds an argument vector. Values are passed as separate words with `=` (`--path=/x`), so a value
/// starting with `-` is never taken for a flag.
struct Args(Vec<String>);

impl Args {
    fn word(&mut self, w: &str) {
        self.0.push(w.to_owned());
    }

    fn opt(&mut self, flag: &str, value: impl std::fmt::Display) {
        self.0.push(format!("{flag}={value}"));
    }

    fn http(&mut self, http: &HttpRequest) {
        self.opt("--method", &http.method);
        self.opt("--path", &http.path);
        for h in &http.headers {
            self.opt("--header", format!("{}: {}", h.name, h.value));
        }
        if let Some(body) = &http.body {
            self.opt("--body", body);
        }
        if let Some(host) = &http.host_header {
            self.opt("--host-header", host);
        }
    }
}
