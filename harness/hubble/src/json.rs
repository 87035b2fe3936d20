//! Parser for the JSON that `hubble observe -o json` (alias `-o jsonpb`) prints.
//!
//! # Format accepted
//! - One JSON object per line; blank lines are skipped.
//! - The `GetFlowsResponse` wrapper, `{"flow":{...},"node_name":...,"time":...}`,
//!   and its `node_status` / `lost_events` forms.
//! - The bare `Flow` object printed with `compat.legacy-json-output: true`.
//! - protojson conventions: proto field names (`drop_reason_desc`, `IP`,
//!   `Type`); lowerCamelCase names are accepted too. Enums as names or
//!   numbers; 64-bit integers as strings or numbers; timestamps as RFC 3339.
//! - Unknown fields are ignored (newer Hubble versions add fields). Enum names
//!   this crate does not know become `Other(-1)` rather than an error.
//!
//! # Errors
//! [`JsonError`] names the line (1-based) and, for type errors, the field
//! path, e.g. `line 3: field flow.l4.TCP.source_port: expected an unsigned
//! integer, found "x"`.

use std::io::BufRead;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::model::{
    DnsRecord, DropReason, Endpoint, Event, EventType, Flow, FlowType, HttpRecord, KafkaRecord, L4,
    L7, L7Record, L7Type, LostEventSource, LostEvents, NodeState, NodeStatus, Payload, PolicyRef,
    ServiceRef, TcpFlags, TraceObservationPoint, TrafficDirection, Verdict, system_time,
};

/// A line that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct JsonError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: JsonErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, thiserror::Error)]
pub enum JsonErrorKind {
    /// Not JSON at all.
    #[error("not valid JSON ({0})")]
    Syntax(#[source] serde_json::Error),
    /// Valid JSON, but not an object.
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// An object with none of the fields of a `GetFlowsResponse` or a `Flow`.
    #[error("neither a GetFlowsResponse nor a Flow (keys: {keys})")]
    Unrecognised {
        /// The keys that were present.
        keys: String,
    },
    /// A known field has the wrong JSON type or an unparsable value.
    #[error("field {path}: expected {expected}, found {found}")]
    WrongType {
        /// Dotted path of the field, e.g. `flow.l4.TCP.source_port`.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What was found (shortened).
        found: String,
    },
    /// The input could not be read.
    #[error("cannot read input ({0})")]
    Io(#[source] std::io::Error),
}

type Result<T> = std::result::Result<T, JsonErrorKind>;

/// Parses one line. `Ok(None)` for a blank line or an event kind this crate
/// does not model (agent and debug events).
///
/// # Errors
/// See the module documentation.
pub fn parse_line(line: &str, line_number: usize) -> std::result::Result<Option<Event>, JsonError> {
    parse_value_line(line).map_err(|kind| JsonError {
        line: line_number,
        kind,
    })
}

/// Parses a whole capture; stops at the first bad line.
///
/// # Errors
/// The first line that does not parse.
pub fn parse_str(text: &str) -> std::result::Result<Vec<Event>, JsonError> {
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(event) = parse_line(line, index + 1)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Parses a capture lazily from a reader, one item per event.
pub fn parse_reader<R: BufRead>(
    reader: R,
) -> impl Iterator<Item = std::result::Result<Event, JsonError>> {
    reader
        .lines()
        .enumerate()
        .filter_map(|(index, line)| match line {
            Ok(line) => parse_line(&line, index + 1).transpose(),
            Err(err) => Some(Err(JsonError {
                line: index + 1,
                kind: JsonErrorKind::Io(err),
            })),
        })
}

fn parse_value_line(line: &str) -> Result<Option<Event>> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(line).map_err(JsonErrorKind::Syntax)?;
    let Value::Object(obj) = value else {
        return Err(JsonErrorKind::NotAnObject(kind_name(&value)));
    };
    let wrapper_flow = get(&obj, "flow");
    let node_status = get(&obj, "node_status");
    let lost = get(&obj, "lost_events");
    if wrapper_flow.is_some() || node_status.is_some() || lost.is_some() {
        let node_name = string(&obj, "", "node_name")?;
        let time = time(&obj, "", "time")?;
        let payload = if let Some(flow) = wrapper_flow {
            Payload::Flow(Arc::new(parse_flow(object(flow, "flow")?, "flow")?))
        } else if let Some(status) = node_status {
            Payload::NodeStatus(parse_node_status(object(status, "node_status")?)?)
        } else if let Some(lost) = lost {
            Payload::LostEvents(parse_lost(object(lost, "lost_events")?)?)
        } else {
            return Ok(None);
        };
        let mut event = Event {
            node_name,
            time,
            payload,
        };
        if let Payload::Flow(flow) = &event.payload {
            event.time = event.time.or(flow.time);
            if event.node_name.is_empty() {
                event.node_name.clone_from(&flow.node_name);
            }
        }
        return Ok(Some(event));
    }
    if get(&obj, "agent_event").is_some() || get(&obj, "debug_event").is_some() {
        return Ok(None);
    }
    const FLOW_KEYS: [&str; 8] = [
        "verdict",
        "IP",
        "l4",
        "l7",
        "Type",
        "event_type",
        "source",
        "destination",
    ];
    if FLOW_KEYS.iter().any(|k| get(&obj, k).is_some()) {
        return Ok(Some(Event::from_flow(parse_flow(&obj, "")?)));
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    Err(JsonErrorKind::Unrecognised {
        keys: keys.join(", "),
    })
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn short(found: &Value) -> String {
    let mut text = found.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

fn wrong(path: &str, key: &str, expected: &'static str, found: &Value) -> JsonErrorKind {
    JsonErrorKind::WrongType {
        path: join(path, key),
        expected,
        found: short(found),
    }
}

/// protojson's lowerCamelCase JSON name for a proto field name.
fn camel(key: &str) -> Option<String> {
    if !key.contains('_') {
        return None;
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A field by proto name or JSON name; `null` counts as absent.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let value = match obj.get(key) {
        Some(v) => Some(v),
        None => camel(key).and_then(|c| obj.get(&c)),
    };
    value.filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| JsonErrorKind::WrongType {
        path: path.to_string(),
        expected: "an object",
        found: short(value),
    })
}

fn child<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(wrong(path, key, "an object", other)),
    }
}

fn string(obj: &Map<String, Value>, path: &str, key: &str) -> Result<String> {
    match get(obj, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong(path, key, "a string", other)),
    }
}

fn strings(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Vec<String>> {
    match get(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong(path, key, "an array of strings", other)),
            })
            .collect(),
        Some(other) => Err(wrong(path, key, "an array of strings", other)),
    }
}

fn boolean(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<bool>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong(path, key, "a boolean", other)),
    }
}

fn unsigned(obj: &Map<String, Value>, path: &str, key: &str) -> Result<u64> {
    match get(obj, key) {
        None => Ok(0),
        Some(v @ Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| wrong(path, key, "an unsigned integer", v)),
        Some(v @ Value::String(s)) => s
            .parse()
            .map_err(|_| wrong(path, key, "an unsigned integer", v)),
        Some(other) => Err(wrong(path, key, "an unsigned integer", other)),
    }
}

fn u32_field(obj: &Map<String, Value>, path: &str, key: &str) -> Result<u32> {
    let value = unsigned(obj, path, key)?;
    u32::try_from(value).map_err(|_| wrong(path, key, "a 32-bit unsigned integer", &value.into()))
}

fn port(obj: &Map<String, Value>, path: &str, key: &str) -> Result<u16> {
    let value = unsigned(obj, path, key)?;
    u16::try_from(value).map_err(|_| wrong(path, key, "a port number", &value.into()))
}

fn signed(obj: &Map<String, Value>, path: &str, key: &str) -> Result<i64> {
    match get(obj, key) {
        None => Ok(0),
        Some(v @ Value::Number(n)) => n.as_i64().ok_or_else(|| wrong(path, key, "an integer", v)),
        Some(v @ Value::String(s)) => s.parse().map_err(|_| wrong(path, key, "an integer", v)),
        Some(other) => Err(wrong(path, key, "an integer", other)),
    }
}

fn i32_field(obj: &Map<String, Value>, path: &str, key: &str) -> Result<i32> {
    let value = signed(obj, path, key)?;
    i32::try_from(value).map_err(|_| wrong(path, key, "a 32-bit integer", &value.into()))
}

/// An enum given as a name or a number. Unknown names become code -1.
fn enum_code(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32> {
    match get(obj, key) {
        None => Ok(0),
        Some(Value::String(name)) => Ok(by_name(name).unwrap_or(-1)),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| wrong(path, key, "an enum name or number", v)),
        Some(other) => Err(wrong(path, key, "an enum name or number", other)),
    }
}

fn time(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<SystemTime>> {
    match get(obj, key) {
        None => Ok(None),
        Some(v @ Value::String(s)) => {
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| wrong(path, key, "an RFC 3339 timestamp", v))?;
            let nanos = i32::try_from(parsed.timestamp_subsec_nanos())
                .map_err(|_| wrong(path, key, "an RFC 3339 timestamp", v))?;
            system_time(parsed.timestamp(), nanos)
                .map(Some)
                .ok_or_else(|| wrong(path, key, "a representable timestamp", v))
        }
        Some(other) => Err(wrong(path, key, "an RFC 3339 timestamp", other)),
    }
}

fn ip_addr(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<IpAddr>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v @ Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| wrong(path, key, "an IP address", v)),
        Some(other) => Err(wrong(path, key, "an IP address", other)),
    }
}

fn parse_endpoint(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    ip: Option<IpAddr>,
    service_key: &str,
    names_key: &str,
) -> Result<Endpoint> {
    let mut endpoint = Endpoint {
        ip,
        service: match child(obj, path, service_key)? {
            Some(s) => {
                let p = join(path, service_key);
                Some(ServiceRef {
                    namespace: string(s, &p, "namespace")?,
                    name: string(s, &p, "name")?,
                })
            }
            None => None,
        },
        names: strings(obj, path, names_key)?,
        ..Endpoint::default()
    };
    if let Some(ep) = child(obj, path, key)? {
        let p = join(path, key);
        endpoint.identity = u32_field(ep, &p, "identity")?;
        endpoint.id = u32_field(ep, &p, "ID")?;
        endpoint.cluster_name = string(ep, &p, "cluster_name")?;
        endpoint.namespace = string(ep, &p, "namespace")?;
        endpoint.pod_name = string(ep, &p, "pod_name")?;
        endpoint.labels = strings(ep, &p, "labels")?;
    }
    Ok(endpoint)
}

fn parse_l4(l4: &Map<String, Value>, path: &str) -> Result<Option<L4>> {
    if let Some(tcp) = child(l4, path, "TCP")? {
        let p = join(path, "TCP");
        let flags = match child(tcp, &p, "flags")? {
            Some(f) => {
                let fp = join(&p, "flags");
                let flag = |name: &str| boolean(f, &fp, name).map(|b| b.unwrap_or(false));
                TcpFlags {
                    fin: flag("FIN")?,
                    syn: flag("SYN")?,
                    rst: flag("RST")?,
                    psh: flag("PSH")?,
                    ack: flag("ACK")?,
                    urg: flag("URG")?,
                    ece: flag("ECE")?,
                    cwr: flag("CWR")?,
                    ns: flag("NS")?,
                }
            }
            None => TcpFlags::default(),
        };
        return Ok(Some(L4::Tcp {
            source_port: port(tcp, &p, "source_port")?,
            destination_port: port(tcp, &p, "destination_port")?,
            flags,
        }));
    }
    if let Some(udp) = child(l4, path, "UDP")? {
        let p = join(path, "UDP");
        return Ok(Some(L4::Udp {
            source_port: port(udp, &p, "source_port")?,
            destination_port: port(udp, &p, "destination_port")?,
        }));
    }
    if let Some(sctp) = child(l4, path, "SCTP")? {
        let p = join(path, "SCTP");
        return Ok(Some(L4::Sctp {
            source_port: port(sctp, &p, "source_port")?,
            destination_port: port(sctp, &p, "destination_port")?,
        }));
    }
    for (key, v6) in [("ICMPv4", false), ("ICMPv6", true)] {
        if let Some(icmp) = child(l4, path, key)? {
            let p = join(path, key);
            let icmp_type = u32_field(icmp, &p, "type")?;
            let code = u32_field(icmp, &p, "code")?;
            return Ok(Some(if v6 {
                L4::Icmpv6 { icmp_type, code }
            } else {
                L4::Icmpv4 { icmp_type, code }
            }));
        }
    }
    Ok(None)
}

fn parse_l7(l7: &Map<String, Value>, path: &str) -> Result<L7> {
    let kind = L7Type::from_code(enum_code(l7, path, "type", |n| {
        L7Type::from_wire_name(n).map(L7Type::code)
    })?);
    let latency_ns = unsigned(l7, path, "latency_ns")?;
    let record = if let Some(http) = child(l7, path, "http")? {
        let p = join(path, "http");
        let headers = match get(http, "headers") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let h = object(item, &join(&p, "headers"))?;
                    Ok((string(h, &p, "key")?, string(h, &p, "value")?))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => return Err(wrong(&p, "headers", "an array", other)),
        };
        Some(L7Record::Http(HttpRecord {
            code: u32_field(http, &p, "code")?,
            method: string(http, &p, "method")?,
            url: string(http, &p, "url")?,
            protocol: string(http, &p, "protocol")?,
            headers,
        }))
    } else if let Some(kafka) = child(l7, path, "kafka")? {
        let p = join(path, "kafka");
        Some(L7Record::Kafka(KafkaRecord {
            error_code: i32_field(kafka, &p, "error_code")?,
            api_version: i32_field(kafka, &p, "api_version")?,
            api_key: string(kafka, &p, "api_key")?,
            correlation_id: i32_field(kafka, &p, "correlation_id")?,
            topic: string(kafka, &p, "topic")?,
        }))
    } else if let Some(dns) = child(l7, path, "dns")? {
        let p = join(path, "dns");
        Some(L7Record::Dns(DnsRecord {
            query: string(dns, &p, "query")?,
            ips: strings(dns, &p, "ips")?,
            ttl: u32_field(dns, &p, "ttl")?,
            cnames: strings(dns, &p, "cnames")?,
            rcode: u32_field(dns, &p, "rcode")?,
            qtypes: strings(dns, &p, "qtypes")?,
            rrtypes: strings(dns, &p, "rrtypes")?,
            observation_source: string(dns, &p, "observation_source")?,
        }))
    } else {
        None
    };
    Ok(L7 {
        kind,
        latency_ns,
        record,
    })
}

fn parse_policies(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Vec<PolicyRef>> {
    match get(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let p = join(path, key);
            items
                .iter()
                .map(|item| {
                    let policy = object(item, &p)?;
                    Ok(PolicyRef {
                        name: string(policy, &p, "name")?,
                        namespace: string(policy, &p, "namespace")?,
                        labels: strings(policy, &p, "labels")?,
                        revision: unsigned(policy, &p, "revision")?,
                        kind: string(policy, &p, "kind")?,
                    })
                })
                .collect()
        }
        Some(other) => Err(wrong(path, key, "an array of policies", other)),
    }
}

fn parse_flow(obj: &Map<String, Value>, path: &str) -> Result<Flow> {
    let verdict = Verdict::from_code(enum_code(obj, path, "verdict", |n| {
        Verdict::from_wire_name(n).map(Verdict::code)
    })?);
    let (source_ip, destination_ip) = match child(obj, path, "IP")? {
        Some(ip) => {
            let p = join(path, "IP");
            (ip_addr(ip, &p, "source")?, ip_addr(ip, &p, "destination")?)
        }
        None => (None, None),
    };
    let numeric_reason = u32_field(obj, path, "drop_reason")?;
    let desc = match get(obj, "drop_reason_desc") {
        None => None,
        Some(Value::String(name)) => DropReason::from_name(name),
        Some(v @ Value::Number(n)) => Some(DropReason(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| wrong(path, "drop_reason_desc", "a drop reason", v))?,
        )),
        Some(other) => return Err(wrong(path, "drop_reason_desc", "a drop reason", other)),
    };
    let drop_reason = desc
        .filter(|r| r.0 != 0)
        .or((numeric_reason != 0).then_some(DropReason(numeric_reason)))
        .or((verdict == Verdict::Dropped).then_some(DropReason(0)));
    let event_type = match child(obj, path, "event_type")? {
        Some(e) => {
            let p = join(path, "event_type");
            Some(EventType {
                kind: i32_field(e, &p, "type")?,
                sub_type: i32_field(e, &p, "sub_type")?,
            })
        }
        None => None,
    };
    let is_reply =
        boolean(obj, path, "is_reply")?.or(boolean(obj, path, "reply")?.filter(|reply| *reply));
    Ok(Flow {
        time: time(obj, path, "time")?,
        uuid: string(obj, path, "uuid")?,
        verdict,
        drop_reason,
        flow_type: FlowType::from_code(enum_code(obj, path, "Type", |n| {
            FlowType::from_wire_name(n).map(FlowType::code)
        })?),
        event_type,
        direction: TrafficDirection::from_code(enum_code(obj, path, "traffic_direction", |n| {
            TrafficDirection::from_wire_name(n).map(TrafficDirection::code)
        })?),
        is_reply,
        observation_point: TraceObservationPoint::from_code(enum_code(
            obj,
            path,
            "trace_observation_point",
            |n| TraceObservationPoint::from_wire_name(n).map(TraceObservationPoint::code),
        )?),
        policy_match_type: u32_field(obj, path, "policy_match_type")?,
        source: parse_endpoint(
            obj,
            path,
            "source",
            source_ip,
            "source_service",
            "source_names",
        )?,
        destination: parse_endpoint(
            obj,
            path,
            "destination",
            destination_ip,
            "destination_service",
            "destination_names",
        )?,
        l4: match child(obj, path, "l4")? {
            Some(l4) => parse_l4(l4, &join(path, "l4"))?,
            None => None,
        },
        l7: match child(obj, path, "l7")? {
            Some(l7) => Some(parse_l7(l7, &join(path, "l7"))?),
            None => None,
        },
        ingress_allowed_by: parse_policies(obj, path, "ingress_allowed_by")?,
        egress_allowed_by: parse_policies(obj, path, "egress_allowed_by")?,
        ingress_denied_by: parse_policies(obj, path, "ingress_denied_by")?,
        egress_denied_by: parse_policies(obj, path, "egress_denied_by")?,
        node_name: string(obj, path, "node_name")?,
        proxy_port: u32_field(obj, path, "proxy_port")?,
        summary: string(obj, path, "Summary")?,
    })
}

fn parse_node_status(obj: &Map<String, Value>) -> Result<NodeStatus> {
    let path = "node_status";
    Ok(NodeStatus {
        state: NodeState::from_code(enum_code(obj, path, "state_change", |n| {
            NodeState::from_wire_name(n).map(NodeState::code)
        })?),
        nodes: strings(obj, path, "node_names")?,
        message: string(obj, path, "message")?,
    })
}

fn parse_lost(obj: &Map<String, Value>) -> Result<LostEvents> {
    let path = "lost_events";
    let cpu = match get(obj, "cpu") {
        None => None,
        Some(_) => Some(i32_field(obj, path, "cpu")?),
    };
    Ok(LostEvents {
        source: LostEventSource::from_code(enum_code(obj, path, "source", |n| {
            LostEventSource::from_wire_name(n).map(LostEventSource::code)
        })?),
        count: unsigned(obj, path, "num_events_lost")?,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names_are_accepted() {
        let line = r#"{"flow":{"verdict":"DROPPED","dropReasonDesc":"POLICY_DENY","eventType":{"type":1,"subType":181}}}"#;
        let event = parse_line(line, 1).unwrap().unwrap();
        let flow = event.flow().unwrap();
        assert_eq!(flow.drop_reason, Some(DropReason::POLICY_DENY));
        assert_eq!(flow.event_type.unwrap().sub_type, 181);
    }

    #[test]
    fn sixty_four_bit_integers_may_be_strings_or_numbers() {
        for latency in [r#""10""#, "10"] {
            let line = format!(
                r#"{{"flow":{{"Type":"L7","l7":{{"type":"RESPONSE","latency_ns":{latency}}}}}}}"#
            );
            let event = parse_line(&line, 1).unwrap().unwrap();
            assert_eq!(event.flow().unwrap().l7.as_ref().unwrap().latency_ns, 10);
        }
    }

    #[test]
    fn wrong_field_type_names_line_and_path() {
        let line = r#"{"flow":{"l4":{"TCP":{"source_port":"x"}}}}"#;
        let err = parse_line(line, 7).unwrap_err();
        assert_eq!(err.line, 7);
        let text = err.to_string();
        assert!(text.contains("line 7"), "{text}");
        assert!(text.contains("flow.l4.TCP.source_port"), "{text}");
    }

    #[test]
    fn unknown_enum_name_becomes_other() {
        let line = r#"{"verdict":"SOMETHING_NEW","Type":"L3_L4"}"#;
        let event = parse_line(line, 1).unwrap().unwrap();
        assert_eq!(event.flow().unwrap().verdict, Verdict::Other(-1));
    }

    #[test]
    fn agent_events_and_blank_lines_are_skipped() {
        assert!(parse_line("   ", 1).unwrap().is_none());
        assert!(
            parse_line(r#"{"agent_event":{"type":"AGENT_STARTED"}}"#, 2)
                .unwrap()
                .is_none()
        );
    }
}
