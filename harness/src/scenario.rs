//! Scenarios: the security contract as data (`fixtures/scenarios/*.yaml`).
//!
//! One file per phase of the tutorial. A scenario names a source, a destination, a port and protocol, the
//! request to send, and the intent: `allow`, or `deny` with the layer (`l4`: never connects; `l7`: refused by
//! the proxy) and the direction (`egress`: the source must not be able to send it) where the contract is
//! that specific. A scenario may instead be a check of the Cilium configuration (`check.hubbleMetrics`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use probe_wire::Outcome;
use serde::{Deserialize, Serialize};

use crate::load::{self, InputError};
use crate::model::http::HttpRequest;
use crate::model::kafka::{self, KafkaAction};
use crate::model::{Decision, Direction, L7Request, Layer};
use crate::policy::Protocol;
use crate::stack::Stack;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    phase: String,
    #[serde(default)]
    description: String,
    scenarios: Vec<Scenario>,
}

/// One scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    pub id: String,
    pub description: String,
    /// The phase (file) it belongs to; filled in on load.
    #[serde(default)]
    pub phase: String,
    /// Source: `namespace/name` of a workload, or the name of an outside host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Destination, same forms as `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::policy::optional_port_number"
    )]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// A check of the cluster's configuration instead of a flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ConfigCheck>,
    pub intent: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The client outcome expected when the flow is allowed, if not `completed` (for example
    /// `protocol_error` for plain HTTP sent to a TLS port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where the scenario was defined (`file:line`).
    #[serde(skip)]
    pub origin: String,
}

/// The request a probe sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Request {
    Http(HttpSpec),
    Https(HttpSpec),
    Tcp {},
    Postgres(PostgresSpec),
    Kafka(KafkaSpec),
    /// Kafka requests at the level the proxy sees them, for `harness eval` queries only: the agent's
    /// probe sends whole sessions (`kafka`), so a scenario cannot use this form.
    #[serde(rename = "kafkaRequests")]
    KafkaRequests(Vec<KafkaRequestSpec>),
    Dns(DnsSpec),
}

/// One Kafka request as Cilium's Kafka proxy sees it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaRequestSpec {
    /// The API key: a name Cilium accepts in `apiKey` (`produce`, `fetch`, `offsets`, `metadata`, ...) or
    /// its number.
    #[serde(deserialize_with = "kafka_api_key")]
    pub api_key: i16,
    pub api_version: i16,
    #[serde(default)]
    pub client_id: String,
    /// The topics the request names (for the keys that carry topics).
    #[serde(default)]
    pub topics: Vec<String>,
}

fn kafka_api_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Key {
        Number(i64),
        Name(String),
    }
    match Key::deserialize(d)? {
        Key::Number(n) => i16::try_from(n)
            .ok()
            .filter(|k| *k >= 0)
            .ok_or_else(|| serde::de::Error::custom(format!("apiKey {n} is not a Kafka API key (0-32767)"))),
        Key::Name(name) => kafka::api_key_by_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "apiKey `{name}` is not a Kafka API key name Cilium knows (produce, fetch, offsets, metadata, offsetcommit, offsetfetch, findcoordinator, apiversions, createtopics, ...); a number is accepted too"
            ))
        }),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "root")]
    pub path: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The `Host` header the client sends: the request's authority, which `host:` rules match. Filled in
    /// when a scenario is loaded: without it the probe sends `NAME.NAMESPACE:PORT` of the destination
    /// (`NAME:PORT` for an outside host), see [`default_authority`]. A `Host` entry in `headers` is
    /// refused: this is the one place to set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The authority the probe sends when a scenario names none: `NAME.NAMESPACE:PORT` for a workload
/// `NAMESPACE/NAME`, `NAME:PORT` for an outside host. The model evaluates `host:` rules on it, so the live
/// request and the prediction carry the same value.
pub fn default_authority(to: &str, port: u16) -> String {
    match to.split_once('/') {
        Some((ns, name)) => format!("{name}.{ns}:{port}"),
        None => format!("{to}:{port}"),
    }
}

fn get() -> String {
    "GET".into()
}
fn root() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    pub query: String,
    #[serde(default = "pg_user")]
    pub user: String,
    #[serde(default = "pg_user")]
    pub database: String,
}

fn pg_user() -> String {
    "postgres".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaSpec {
    pub action: KafkaAction,
    pub topic: String,
    pub client_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    pub query: String,
}

/// A configuration check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigCheck {
    /// Hubble metrics every Cilium agent must expose.
    pub hubble_metrics: Vec<String>,
}

impl Request {
    /// The L7 request the policy model sees for this probe.
    pub fn l7(&self) -> Option<L7Request> {
        match self {
            Request::Http(h) => Some(L7Request::Http(HttpRequest {
                method: h.method.clone(),
                path: h.path.clone(),
                host: h.host.clone(),
                headers: h
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })),
            // The proxy cannot read inside TLS, and does not parse PostgreSQL.
            Request::Https(_) | Request::Postgres(_) => Some(L7Request::Opaque),
            Request::Tcp {} => None,
            Request::Kafka(k) => Some(L7Request::Kafka(kafka::requests_for(
                k.action,
                &k.topic,
                &k.client_id,
            ))),
            Request::KafkaRequests(rs) => Some(L7Request::Kafka(
                rs.iter()
                    .map(|r| kafka::KafkaRequest {
                        api_key: r.api_key,
                        api_version: Some(r.api_version),
                        client_id: r.client_id.clone(),
                        topics: r.topics.clone(),
                    })
                    .collect(),
            )),
            Request::Dns(d) => Some(L7Request::Dns(d.query.clone())),
        }
    }

    /// The transport the request uses.
    pub fn protocol(&self) -> Protocol {
        match self {
            Request::Dns(_) => Protocol::Udp,
            _ => Protocol::Tcp,
        }
    }

    /// A short description (`GET /api/v1/orders`, `produce orders as payment-service`).
    pub fn summary(&self) -> String {
        match self {
            Request::Http(h) | Request::Https(h) => {
                let mut s = format!("{} {}", h.method, h.path);
                if !h.headers.is_empty() {
                    s.push_str(&format!(
                        " [{}]",
                        h.headers.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                if matches!(self, Request::Https(_)) {
                    s = format!("https {s}");
                }
                s
            }
            Request::Tcp {} => "connect".into(),
            Request::Postgres(p) => format!("sql `{}`", p.query),
            Request::Kafka(k) => format!(
                "{} {} as {}",
                match k.action {
                    KafkaAction::Produce => "produce",
                    KafkaAction::Consume => "consume",
                },
                k.topic,
                k.client_id
            ),
            Request::KafkaRequests(rs) => rs
                .iter()
                .map(|r| {
                    format!(
                        "kafka {} v{} [{}] as {}",
                        kafka::api_key_name(r.api_key),
                        r.api_version,
                        r.topics.join(", "),
                        r.client_id
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Request::Dns(d) => format!("dns {}", d.query),
        }
    }
}

impl Scenario {
    /// The transport protocol of the flow.
    pub fn flow_protocol(&self) -> Protocol {
        self.protocol
            .or_else(|| self.request.as_ref().map(Request::protocol))
            .unwrap_or(Protocol::Tcp)
    }
}

/// Load every scenario file of a directory (or one file), checking that ids are unique and that every
/// `from`/`to` names a workload or outside host of the stack.
///
/// # Errors
/// The first bad file or scenario, with its path and line.
pub fn load_scenarios(path: &Path, stack: &Stack) -> Result<Vec<Scenario>, InputError> {
    let mut all: Vec<Scenario> = Vec::new();
    for file in load::yaml_files(path)? {
        let text = load::read_text(&file)?;
        let sf: ScenarioFile = load::parse_one(&file, &text)?;
        let _ = sf.description;
        let lines = id_lines(&text);
        for mut s in sf.scenarios {
            let line = lines.get(&s.id).copied();
            s.phase = sf.phase.clone();
            s.origin = format!("{}:{}", file.display(), line.unwrap_or(1));
            validate(&file, line, &s, stack)?;
            fill_authority(&mut s);
            if let Some(prev) = all.iter().find(|p| p.id == s.id) {
                return Err(InputError::at(
                    &file,
                    line,
                    format!("id: `{}` is used twice (also at {})", s.id, prev.origin),
                ));
            }
            all.push(s);
        }
    }
    if all.is_empty() {
        return Err(InputError::Invalid(format!(
            "{}: no scenarios found",
            path.display()
        )));
    }
    Ok(all)
}

/// Line of each `id:` in a scenario file, to point errors found after parsing at the scenario.
fn id_lines(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix("id:") {
            let id = rest.trim().trim_matches('"').trim_matches('\'').to_string();
            m.entry(id).or_insert(i as u64 + 1);
        }
    }
    m
}

fn validate(file: &Path, line: Option<u64>, s: &Scenario, stack: &Stack) -> Result<(), InputError> {
    let err = |m: String| {
        Err(InputError::at(
            file,
            line,
            format!("scenario `{}`: {m}", s.id),
        ))
    };
    if s.id.is_empty()
        || !s
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return err("id: use letters, digits, `-` and `_` only (it becomes a test name)".into());
    }
    if s.check.is_some() {
        if s.from.is_some() || s.to.is_some() || s.request.is_some() {
            return err("a `check` scenario takes no from/to/request".into());
        }
        return Ok(());
    }
    let (Some(from), Some(to)) = (&s.from, &s.to) else {
        return err("from and to are required (or a `check`)".into());
    };
    for (field, name) in [("from", from), ("to", to)] {
        let known = if name.contains('/') {
            stack.workload(name).is_some()
        } else {
            stack.outside_host(name).is_some()
        };
        if !known {
            return err(format!(
                "{field}: `{name}` is neither a workload (namespace/name) of the stack's manifests nor an outside host of fixtures/stack.yaml"
            ));
        }
    }
    if s.port.is_none() {
        return err("port is required".into());
    }
    if s.request.is_none() {
        return err("request is required (http, https, tcp, postgres, kafka or dns)".into());
    }
    if let Some(Request::KafkaRequests(_)) = &s.request {
        return err("request: `kafkaRequests` is for `harness eval` queries; a scenario's probe sends a whole session: use `kafka: {action, topic, clientId}`".into());
    }
    if s.intent == Decision::Allow && (s.layer.is_some() || s.direction.is_some()) {
        return err("layer and direction describe a deny; an `allow` intent takes neither".into());
    }
    if let (Some(req), Some(p)) = (&s.request, s.protocol)
        && req.protocol() != p
    {
        return err(format!(
            "protocol: {p} does not fit the request (it uses {})",
            req.protocol()
        ));
    }
    if let Some(Request::Http(h) | Request::Https(h)) = &s.request
        && let Some(name) = h.headers.keys().find(|k| k.eq_ignore_ascii_case("host"))
    {
        return err(format!(
            "request: headers: `{name}` sets the authority; write it as `host:` beside `method` and `path`"
        ));
    }
    Ok(())
}

/// Gives an HTTP(S) request without `host` the authority the probe sends ([`default_authority`]).
fn fill_authority(s: &mut Scenario) {
    let (Some(to), Some(port)) = (s.to.as_deref(), s.port) else {
        return;
    };
    if let Some(Request::Http(h) | Request::Https(h)) = &mut s.request
        && h.host.is_none()
    {
        h.host = Some(default_authority(to, port));
    }
}

/// The default scenario directory, relative to the repository root.
pub fn default_dir(root: &Path) -> PathBuf {
    root.join("fixtures/scenarios")
}
