//! The command line. `agent probe ...` parses into a [`ProbeSpec`], and accepts exactly what
//! [`ProbeSpec::to_args`] renders.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use probe_wire::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, DnsQuery, DnsTransport, DnsType, ExactVersions,
    HttpHeader, HttpRequest, HttpsRequest, KafkaAction, KafkaClient, KafkaRequest, PostgresQuery,
    ProbeRequest, ProbeSpec, RdkafkaOptions,
};

use crate::net::Target;

/// Default Kafka client id.
pub const DEFAULT_CLIENT_ID: &str = "cnp-harness-agent";
/// Default value of a produced message.
pub const DEFAULT_MESSAGE: &str = "cnp-harness probe";

/// The in-pod agent of the Cilium network policy harness.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one of the stack's servers until SIGTERM.
    Serve {
        /// Which server.
        #[command(subcommand)]
        server: Server,
    },
    /// Run one probe and print its classified result as one JSON object on stdout (exit 0 whatever the
    /// outcome; exit 2 on bad arguments).
    Probe {
        /// Which probe.
        #[command(subcommand)]
        probe: ProbeCommand,
    },
}

/// The stack's servers.
#[derive(Debug, Subcommand)]
pub enum Server {
    /// HTTPS and plain HTTP; echoes requests as JSON; /healthz, /forbidden (application 403).
    Frontend {
        /// HTTPS port (0: any free port).
        #[arg(long, default_value_t = 443)]
        https_port: u16,
        /// Plain HTTP port (0: any free port).
        #[arg(long, default_value_t = 80)]
        http_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
        /// PEM certificate chain (default: a self-signed certificate generated in memory).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// The API: /api/v1/... echoes requests as JSON, 404 elsewhere; admin port with /healthz, /metrics.
    Api {
        /// API port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Admin/metrics port.
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
    },
    /// DNS over UDP and TCP for the names given with --record (NXDOMAIN for others), and /healthz: the
    /// lab's stand-in for kube-dns.
    Dns {
        /// DNS port.
        #[arg(long, default_value_t = 53)]
        port: u16,
        /// Health port.
        #[arg(long, default_value_t = 8081)]
        health_port: u16,
        /// A name and its IPv4 address, NAME=IPV4 (repeatable).
        #[arg(long = "record")]
        records: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
    },
    /// Only /healthz: a pod that exists to run probes.
    Idle {
        /// Health port.
        #[arg(long, default_value_t = 8081)]
        health_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
    },
}

/// The probes.
#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// One HTTP/1.1 request.
    Http(HttpArgs),
    /// One HTTP/1.1 request over TLS (the certificate is not verified).
    Https(HttpsArgs),
    /// A TCP connect.
    Tcp(CommonArgs),
    /// One DNS query to the target server.
    Dns(DnsArgs),
    /// A PostgreSQL connection and one query.
    Postgres(PostgresArgs),
    /// A Kafka produce or consume.
    Kafka(KafkaArgs),
}

/// Options every probe has.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// host:port (IPv6 in brackets).
    #[arg(long)]
    pub target: String,
    /// Bound on the TCP connect, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,
    /// Bound on the whole probe, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// Stop when anything arrives on standard input, or it ends, and report what was seen so far (the
    /// harness uses it to stop a deny probe early). Only for callers that hold stdin open.
    #[arg(long)]
    pub cancel_on_stdin: bool,
}

/// The HTTP request.
#[derive(Debug, Args)]
pub struct HttpRequestArgs {
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Path and query.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A header, "Name: value" (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    pub body: Option<String>,
    /// Host header (default: the target).
    #[arg(long)]
    pub host_header: Option<String>,
}

/// `probe http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    request: HttpRequestArgs,
}

/// `probe https`.
#[derive(Debug, Args)]
pub struct HttpsArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    request: HttpRequestArgs,
    /// TLS server name (default: the target host if it is a name).
    #[arg(long)]
    sni: Option<String>,
}

/// DNS transport on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TransportArg {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// `probe dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The name to look up.
    #[arg(long)]
    name: String,
    /// Record type: A, AAAA, CNAME, SRV, TXT, PTR.
    #[arg(long = "type", default_value = "A", value_parser = parse_dns_type)]
    qtype: DnsType,
    /// udp or tcp.
    #[arg(long, value_enum, default_value = "udp")]
    transport: TransportArg,
}

fn parse_dns_type(s: &str) -> Result<DnsType, String> {
    DnsType::ALL
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown record type {s:?} (A, AAAA, CNAME, SRV, TXT, PTR)"))
}

/// `probe postgres`.
#[derive(Debug, Args)]
pub struct PostgresArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// User.
    #[arg(long, default_value = "postgres")]
    user: String,
    /// Database.
    #[arg(long, default_value = "postgres")]
    database: String,
    /// Password (default: none).
    #[arg(long)]
    password: Option<String>,
    /// SQL to run.
    #[arg(long, default_value = "SELECT 1")]
    query: String,
}

/// Kafka client on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The agent's own client, fixed request versions.
    Exact,
    /// librdkafka.
    Rdkafka,
}

/// Kafka action on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// Produce one message.
    Produce,
    /// Read from the start of the partition.
    Consume,
}

/// `probe kafka`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// exact (own client, fixed versions) or rdkafka (librdkafka).
    #[arg(long, value_enum, default_value = "exact")]
    mode: ModeArg,
    /// produce or consume.
    #[arg(long, value_enum)]
    action: ActionArg,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Partition.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Client id sent in every request header.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Value of the produced message (produce only).
    #[arg(long)]
    message: Option<String>,
    /// exact: send ApiVersions first, at this version.
    #[arg(long, conflicts_with = "no_api_versions")]
    api_versions_version: Option<i16>,
    /// exact: do not send ApiVersions (the default).
    #[arg(long)]
    no_api_versions: bool,
    /// exact: Metadata version (default 1).
    #[arg(long, conflicts_with = "no_metadata")]
    metadata_version: Option<i16>,
    /// exact: do not send Metadata before producing or consuming.
    #[arg(long)]
    no_metadata: bool,
    /// exact: Produce version (default 3).
    #[arg(long)]
    produce_version: Option<i16>,
    /// exact: ListOffsets version (default 1).
    #[arg(long)]
    list_offsets_version: Option<i16>,
    /// exact: Fetch version (default 4).
    #[arg(long)]
    fetch_version: Option<i16>,
    /// rdkafka: extra librdkafka setting key=value (repeatable), applied last.
    #[arg(long = "rdkafka-config")]
    rdkafka_config: Vec<String>,
}

/// Arguments that parse but do not make a valid probe.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    /// The target is not host:port.
    #[error(transparent)]
    Target(#[from] crate::net::TargetError),
    /// A timeout of zero.
    #[error("--{0} must be at least 1")]
    ZeroTimeout(&'static str),
    /// Anything else, said in a sentence.
    #[error("{0}")]
    Invalid(String),
}

impl CommonArgs {
    fn spec(self, request: ProbeRequest) -> Result<ProbeSpec, ArgError> {
        self.target.parse::<Target>()?;
        if self.connect_timeout_ms == 0 {
            return Err(ArgError::ZeroTimeout("connect-timeout-ms"));
        }
        if self.timeout_ms == 0 {
            return Err(ArgError::ZeroTimeout("timeout-ms"));
        }
        Ok(ProbeSpec {
            target: self.target,
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            request,
            cancel_on_stdin: self.cancel_on_stdin,
        })
    }
}

impl HttpRequestArgs {
    fn request(self) -> Result<HttpRequest, ArgError> {
        let invalid = |s: String| ArgError::Invalid(s);
        http::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| invalid(format!("invalid HTTP method {:?}", self.method)))?;
        if !self.path.starts_with('/') || self.path.parse::<http::Uri>().is_err() {
            return Err(invalid(format!(
                "--path {:?} must be an origin-form target such as /api/v1?x=1",
                self.path
            )));
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in self.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| invalid(format!("--header {h:?} is not \"Name: value\"")))?;
            let value = value.strip_prefix(' ').unwrap_or(value);
            http::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            http::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value for header {name:?}")))?;
            headers.push(HttpHeader {
                name: name.to_owned(),
                value: value.to_owned(),
            });
        }
        if let Some(host) = &self.host_header {
            http::header::HeaderValue::from_str(host)
                .map_err(|_| invalid(format!("invalid --host-header {host:?}")))?;
        }
        Ok(HttpRequest {
            method: self.method,
            path: self.path,
            headers,
            body: self.body,
            host_header: self.host_header,
        })
    }
}

impl ProbeCommand {
    /// Validates the arguments and turns them into the probe they describe.
    ///
    /// # Errors
    /// [`ArgError`] for arguments that parse but make no valid probe (the agent exits 2).
    pub fn into_spec(self) -> Result<ProbeSpec, ArgError> {
        match self {
            ProbeCommand::Http(a) => {
                let req = a.request.request()?;
                a.common.spec(ProbeRequest::Http(req))
            }
            ProbeCommand::Https(a) => {
                let http = a.request.request()?;
                a.common
                    .spec(ProbeRequest::Https(HttpsRequest { http, sni: a.sni }))
            }
            ProbeCommand::Tcp(c) => c.spec(ProbeRequest::Tcp),
            ProbeCommand::Dns(a) => {
                crate::dnswire::build_query(0, &a.name, a.qtype.code())
                    .map_err(|e| ArgError::Invalid(e.to_string()))?;
                let transport = match a.transport {
                    TransportArg::Udp => DnsTransport::Udp,
                    TransportArg::Tcp => DnsTransport::Tcp,
                };
                a.common.spec(ProbeRequest::Dns(DnsQuery {
                    name: a.name,
                    qtype: a.qtype,
                    transport,
                }))
            }
            ProbeCommand::Postgres(a) => a.common.spec(ProbeRequest::Postgres(PostgresQuery {
                user: a.user,
                database: a.database,
                password: a.password,
                query: a.query,
            })),
            ProbeCommand::Kafka(a) => {
                let request = kafka_request(&a)?;
                a.common.spec(ProbeRequest::Kafka(request))
            }
        }
    }
}

fn kafka_request(a: &KafkaArgs) -> Result<KafkaRequest, ArgError> {
    let invalid = |s: &str| Err(ArgError::Invalid(s.to_owned()));
    let action = match (a.action, &a.message) {
        (ActionArg::Produce, m) => KafkaAction::Produce {
            message: m.clone().unwrap_or_else(|| DEFAULT_MESSAGE.to_owned()),
        },
        (ActionArg::Consume, None) => KafkaAction::Consume,
        (ActionArg::Consume, Some(_)) => return invalid("--message is for --action produce"),
    };
    let exact_flags = a.api_versions_version.is_some()
        || a.no_api_versions
        || a.metadata_version.is_some()
        || a.no_metadata
        || a.produce_version.is_some()
        || a.list_offsets_version.is_some()
        || a.fetch_version.is_some();
    let client = match a.mode {
        ModeArg::Exact => {
            if !a.rdkafka_config.is_empty() {
                return invalid("--rdkafka-config is for --mode rdkafka");
            }
            let d = ExactVersions::default();
            let v = ExactVersions {
                api_versions: a.api_versions_version,
                metadata: if a.no_metadata {
                    None
                } else {
                    a.metadata_version.or(d.metadata)
                },
                produce: a.produce_version.unwrap_or(d.produce),
                list_offsets: a.list_offsets_version.unwrap_or(d.list_offsets),
                fetch: a.fetch_version.unwrap_or(d.fetch),
            };
            crate::probe::validate_exact_versions(&v).map_err(ArgError::Invalid)?;
            KafkaClient::Exact(v)
        }
        ModeArg::Rdkafka => {
            if exact_flags {
                return invalid("request-version flags are for --mode exact");
            }
            let mut config = Vec::with_capacity(a.rdkafka_config.len());
            for kv in &a.rdkafka_config {
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(ArgError::Invalid(format!(
                        "--rdkafka-config {kv:?} is not key=value"
                    )));
                };
                config.push((k.to_owned(), v.to_owned()));
            }
            crate::probe::validate_rdkafka_config(&config).map_err(ArgError::Invalid)?;
            KafkaClient::Rdkafka(RdkafkaOptions { config })
        }
    };
    Ok(KafkaRequest {
        client,
        action,
        topic: a.topic.clone(),
        partition: a.partition,
        client_id: a.client_id.clone(),
    })
}

/// Parses a full `agent probe ...` command line (program name first) into the spec it describes.
///
/// # Errors
/// The clap error (usage) or the [`ArgError`], as a message.
pub fn parse_probe_args<I, T>(args: I) -> Result<ProbeSpec, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Probe { probe } => probe.into_spec().map_err(|e| e.to_string()),
        Command::Serve { .. } => Err("not a probe command line".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(client: KafkaClient, action: KafkaAction) -> ProbeSpec {
        ProbeSpec {
            target: "10.96.1.2:9092".into(),
            connect_timeout_ms: 750,
            timeout_ms: 4_000,
            cancel_on_stdin: false,
            request: ProbeRequest::Kafka(KafkaRequest {
                client,
                action,
                topic: "orders".into(),
                partition: 2,
                client_id: "-dash-id".into(),
            }),
        }
    }

    fn specs() -> Vec<ProbeSpec> {
        vec![
            ProbeSpec::new("127.0.0.1:1", ProbeRequest::Tcp),
            ProbeSpec::new("[::1]:8080", ProbeRequest::Http(HttpRequest::default())),
            ProbeSpec::new(
                "api.backend.svc.cluster.local:8080",
                ProbeRequest::Http(HttpRequest {
                    method: "DELETE".into(),
                    path: "/api/v1/orders/7?force=true".into(),
                    headers: vec![
                        HttpHeader {
                            name: "Authorization".into(),
                            value: "Bearer x=y".into(),
                        },
                        HttpHeader {
                            name: "X-Empty".into(),
                            value: "".into(),
                        },
                        HttpHeader {
                            name: "X-Spaced".into(),
                            value: "  two leading".into(),
                        },
                    ],
                    body: Some("--not-a-flag".into()),
                    host_header: Some("api.example".into()),
                }),
            ),
            ProbeSpec::new(
                "frontend.frontend:443",
                ProbeRequest::Https(HttpsRequest {
                    http: HttpRequest::default(),
                    sni: Some("front".into()),
                }),
            ),
            ProbeSpec::new("10.0.0.1:443", ProbeRequest::Https(HttpsRequest::default())),
            ProbeSpec::new(
                "10.96.0.10:53",
                ProbeRequest::Dns(DnsQuery {
                    name: "kafka-broker.kafka.svc.cluster.local".into(),
                    qtype: DnsType::Srv,
                    transport: DnsTransport::Tcp,
                }),
            ),
            ProbeSpec::new("db:5432", ProbeRequest::Postgres(PostgresQuery::default())),
            ProbeSpec::new(
                "db:5432",
                ProbeRequest::Postgres(PostgresQuery {
                    user: "app".into(),
                    database: "orders".into(),
                    password: Some("s3cret".into()),
                    query: "SELECT count(*) FROM orders WHERE note = '-x'".into(),
                }),
            ),
            kafka(
                KafkaClient::Exact(ExactVersions::default()),
                KafkaAction::Consume,
            ),
            kafka(
                KafkaClient::Exact(ExactVersions {
                    api_versions: Some(2),
                    metadata: None,
                    produce: 5,
                    list_offsets: 2,
                    fetch: 5,
                }),
                KafkaAction::Produce {
                    message: "hello world".into(),
                },
            ),
            kafka(
                KafkaClient::Rdkafka(RdkafkaOptions {
                    config: vec![
                        ("api.version.request".into(), "false".into()),
                        ("broker.version.fallback".into(), "0.9.0".into()),
                    ],
                }),
                KafkaAction::Produce { message: "".into() },
            ),
            kafka(
                KafkaClient::Rdkafka(RdkafkaOptions::default()),
                KafkaAction::Consume,
            ),
        ]
    }

    #[test]
    fn every_rendered_command_line_parses_back_into_the_same_spec() {
        for spec in specs() {
            let args = spec.to_args();
            let back = parse_probe_args(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(back, spec, "{args:?}");
        }
    }

    #[test]
    fn hand_written_command_lines_get_the_documented_defaults() {
        let spec = parse_probe_args([
            "agent", "probe", "kafka", "--target", "k:9092", "--action", "produce", "--topic", "t",
        ])
        .expect("parse");
        assert_eq!(spec.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert_eq!(spec.timeout_ms, DEFAULT_TIMEOUT_MS);
        let ProbeRequest::Kafka(k) = spec.request else {
            panic!("kafka")
        };
        assert_eq!(k.client, KafkaClient::Exact(ExactVersions::default()));
        assert_eq!(k.client_id, DEFAULT_CLIENT_ID);
        assert_eq!(
            k.action,
            KafkaAction::Produce {
                message: DEFAULT_MESSAGE.into()
            }
        );
    }

    #[test]
    fn arguments_that_make_no_valid_probe_are_rejected() {
        let bad: &[&[&str]] = &[
            &["agent", "probe", "tcp", "--target", "nohostport"],
            &[
                "agent",
                "probe",
                "tcp",
                "--target",
                "h:1",
                "--timeout-ms",
                "0",
            ],
            &[
                "agent", "probe", "http", "--target", "h:1", "--path", "no-slash",
            ],
            &[
                "agent", "probe", "http", "--target", "h:1", "--header", "NoColon",
            ],
            &[
                "agent", "probe", "http", "--target", "h:1", "--method", "GE T",
            ],
            &[
                "agent", "probe", "dns", "--target", "h:53", "--name", "a..b",
            ],
            &[
                "agent", "probe", "dns", "--target", "h:53", "--name", "a", "--type", "MX",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "consume",
                "--topic",
                "t",
                "--message",
                "m",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--mode",
                "rdkafka",
                "--produce-version",
                "3",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--rdkafka-config",
                "a=b",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--produce-version",
                "1",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--mode",
                "rdkafka",
                "--rdkafka-config",
                "novalue",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--mode",
                "rdkafka",
                "--rdkafka-config",
                "no.such.setting=1",
            ],
            &[
                "agent",
                "probe",
                "kafka",
                "--target",
                "h:1",
                "--action",
                "produce",
                "--topic",
                "t",
                "--mode",
                "rdkafka",
                "--rdkafka-config",
                "acks=lots",
            ],
        ];
        for args in bad {
            assert!(
                parse_probe_args(args.iter()).is_err(),
                "{args:?} should be rejected"
            );
        }
    }
}
