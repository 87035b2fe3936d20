//! How a report reads the four columns of a scenario: what each observed column says about the flow,
//! whether a cell agrees with the intent, and the short forms people scan (`deny l4 ingress`,
//! `connect_timeout`, `dropped-l4 ingress`, one line per Hubble flow).
//!
//! The scenario's `status` (written by `harness check` or the runner) stays the verdict of record. The cell
//! judgement here only says which cells to point at, so that a failing row shows where it fails.

use probe_wire::NetworkMeaning;
use serde_json::Value;

use crate::model::{Decision, Direction, Layer};
use crate::results::{Intent, ResultsKind, ScenarioResult, Status};

/// What one column says about the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Allow,
    Deny {
        layer: Layer,
        direction: Option<Direction>,
    },
    /// Nothing certain (missing evidence, a timeout after connect, lost events, no flow seen).
    Unclear,
}

impl Reading {
    pub fn decision(self) -> Option<Decision> {
        match self {
            Reading::Allow => Some(Decision::Allow),
            Reading::Deny { .. } => Some(Decision::Deny),
            Reading::Unclear => None,
        }
    }
}

/// How a cell relates to the intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// Agrees with the intent.
    Agrees,
    /// Contradicts the intent (a different decision, or a deny at another layer or direction).
    Contradicts,
    /// Present but says nothing certain.
    Unclear,
    /// Not part of this document (the observed columns of an offline check).
    Empty,
}

impl CellState {
    /// A CSS class / plain word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Agrees => "agrees",
            CellState::Contradicts => "contradicts",
            CellState::Unclear => "unclear",
            CellState::Empty => "empty",
        }
    }
}

/// The state of the model, client and Hubble cells of one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    pub model: CellState,
    pub client: CellState,
    pub hubble: CellState,
}

/// The client column's reading.
pub fn client_reading(s: &ScenarioResult) -> Reading {
    let Some(c) = &s.client else {
        return Reading::Unclear;
    };
    match c.outcome.network() {
        NetworkMeaning::Allowed => Reading::Allow,
        NetworkMeaning::DeniedL4 => Reading::Deny {
            layer: Layer::L4,
            direction: None,
        },
        NetworkMeaning::DeniedL7 => Reading::Deny {
            layer: Layer::L7,
            direction: None,
        },
        NetworkMeaning::Unclear => Reading::Unclear,
    }
}

/// The Hubble column's reading. A drop names its direction when a decisive flow carries one.
pub fn hubble_reading(s: &ScenarioResult) -> Reading {
    let Some(h) = &s.hubble else {
        return Reading::Unclear;
    };
    match h.verdict.as_str() {
        "forwarded" | "l7-allowed" => Reading::Allow,
        "dropped-l4" => Reading::Deny {
            layer: Layer::L4,
            direction: drop_direction(&h.flows),
        },
        "l7-denied" => Reading::Deny {
            layer: Layer::L7,
            direction: None,
        },
        _ => Reading::Unclear,
    }
}

/// The verdict observed in a live run: allow when any conclusive column saw the flow allowed (something
/// got through, or was forwarded), else deny when one saw it denied; `None` when neither is conclusive.
pub fn observed_decision(s: &ScenarioResult) -> Option<Decision> {
    let readings = [client_reading(s), hubble_reading(s)];
    if readings.contains(&Reading::Allow) {
        Some(Decision::Allow)
    } else if readings.iter().any(|r| matches!(r, Reading::Deny { .. })) {
        Some(Decision::Deny)
    } else {
        None
    }
}

/// Whether the client and Hubble reached different conclusive decisions.
pub fn observations_disagree(s: &ScenarioResult) -> bool {
    match (client_reading(s).decision(), hubble_reading(s).decision()) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

fn judge_reading(intent: &Intent, r: Reading, present: bool) -> CellState {
    if !present {
        return CellState::Empty;
    }
    match r {
        Reading::Unclear => CellState::Unclear,
        Reading::Allow => {
            if intent.decision == Decision::Allow {
                CellState::Agrees
            } else {
                CellState::Contradicts
            }
        }
        Reading::Deny { layer, direction } => {
            let wrong_layer = intent.layer.is_some_and(|l| l != layer);
            let wrong_direction =
                matches!((intent.direction, direction), (Some(a), Some(b)) if a != b);
            if intent.decision == Decision::Deny && !wrong_layer && !wrong_direction {
                CellState::Agrees
            } else {
                CellState::Contradicts
            }
        }
    }
}

/// The state of each cell of a scenario. In a live run a missing observed column is `Unclear` (the
/// evidence was not collected); in an offline check, for a not-applicable scenario, and for Hubble on a
/// configuration check, it is `Empty`.
pub fn cells(kind: ResultsKind, s: &ScenarioResult) -> Cells {
    let model = if s.model_meets_intent {
        CellState::Agrees
    } else {
        CellState::Contradicts
    };
    let observed = kind == ResultsKind::Run && s.status != Status::NotApplicable;
    // A configuration check has no flow: Hubble has nothing to say about it.
    let hubble_expected = observed && (s.check.is_none() || s.hubble.is_some());
    Cells {
        model,
        client: judge_reading(&s.intent, client_reading(s), observed),
        hubble: judge_reading(&s.intent, hubble_reading(s), hubble_expected),
    }
}

/// Whether a scenario is listed under "what needs attention": anything but met/pass, and any divergence
/// between the model and what was observed.
pub fn needs_explaining(s: &ScenarioResult) -> bool {
    !matches!(s.status, Status::Met | Status::Pass) || s.model_divergence
}

/// The model column, short: `allow`, `allow (proxied)`, `deny l7 ingress`.
pub fn model_short(s: &ScenarioResult) -> String {
    crate::output::verdict_short(&s.model)
}

/// The client column, short: the outcome name, or `-`.
pub fn client_short(s: &ScenarioResult) -> String {
    s.client
        .as_ref()
        .map_or_else(|| "-".to_string(), |c| c.outcome.as_str().to_string())
}

/// The Hubble column, short: the verdict, with the direction of a drop when a flow names it.
pub fn hubble_short(s: &ScenarioResult) -> String {
    let Some(h) = &s.hubble else {
        return "-".into();
    };
    match (h.verdict.as_str(), drop_direction(&h.flows)) {
        ("dropped-l4", Some(d)) => format!("dropped-l4 {}", direction_word(d)),
        (v, _) => v.to_string(),
    }
}

pub fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

/// What a scenario probes, in a few words: `HTTPS GET /`, `Kafka produce orders as payment-service`.
pub fn request_short(s: &ScenarioResult) -> String {
    if let Some(c) = &s.check {
        return format!("config: Hubble metrics {}", c.hubble_metrics.join(", "));
    }
    let Some(req) = &s.request else {
        return String::new();
    };
    let Ok(Value::Object(map)) = serde_json::to_value(req) else {
        return String::new();
    };
    let Some((kind, spec)) = map.iter().next() else {
        return String::new();
    };
    let field = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match kind.as_str() {
        "http" | "https" => {
            let mut t = format!(
                "{} {} {}",
                kind.to_uppercase(),
                field("method"),
                field("path")
            );
            if let Some(Value::Object(h)) = spec.get("headers") {
                let names: Vec<&str> = h.keys().map(String::as_str).collect();
                if !names.is_empty() {
                    t.push_str(&format!(" with {}", names.join(", ")));
                }
            }
            t
        }
        "kafka" => format!(
            "Kafka {} {} as {}",
            field("action"),
            field("topic"),
            field("clientId")
        ),
        "postgres" => format!("PostgreSQL {}", field("query")),
        "dns" => format!("DNS {}", field("query")),
        "tcp" => "TCP connect".into(),
        other => other.to_string(),
    }
}

/// `backend/api → kafka/kafka 9092/TCP`.
pub fn route(s: &ScenarioResult) -> String {
    let mut t = match (&s.from, &s.to) {
        (Some(f), Some(to)) => format!("{f} → {to}"),
        (Some(f), None) => f.clone(),
        (None, Some(to)) => format!("→ {to}"),
        (None, None) => String::new(),
    };
    if let Some(p) = s.port {
        let proto = s
            .protocol
            .map(|p| p.to_string())
            .unwrap_or_else(|| "TCP".into());
        t.push_str(&format!(" {p}/{proto}"));
    }
    t
}

/// The inner flow object of a `hubble observe -o json` line (`{"flow": {...}, ...}`) or a bare flow.
fn inner(v: &Value) -> &Value {
    v.get("flow").filter(|f| f.is_object()).unwrap_or(v)
}

fn direction_of(flow: &Value) -> Option<Direction> {
    match flow.get("traffic_direction").and_then(Value::as_str) {
        Some("INGRESS") => Some(Direction::Ingress),
        Some("EGRESS") => Some(Direction::Egress),
        _ => None,
    }
}

/// A flow the runner recorded as one line (`{"role": "PolicyDrop", "flow": "… DROPPED POLICY_DENIED
/// INGRESS …"}`): its words, when the flow is such a line.
fn line_words(v: &Value) -> Option<Vec<&str>> {
    v.get("flow")
        .and_then(Value::as_str)
        .map(|l| l.split_whitespace().collect())
}

/// The direction of the first dropped flow that names one.
pub fn drop_direction(flows: &[Value]) -> Option<Direction> {
    flows.iter().find_map(|v| match line_words(v) {
        Some(words) if words.contains(&"DROPPED") => words.iter().find_map(|w| match *w {
            "INGRESS" => Some(Direction::Ingress),
            "EGRESS" => Some(Direction::Egress),
            _ => None,
        }),
        Some(_) => None,
        None => {
            let f = inner(v);
            (f.get("verdict").and_then(Value::as_str) == Some("DROPPED"))
                .then(|| direction_of(f))
                .flatten()
        }
    })
}

/// `2026-11-27T18:00:10.412000000Z rest` → `18:00:10.412 rest` (a report shows one run: the date is noise).
fn shorten_leading_time(line: &str) -> String {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let b = first.as_bytes();
    let is_time =
        b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && first.ends_with('Z') && first.is_ascii();
    match (is_time, first.get(11..first.len() - 1)) {
        (true, Some(t)) => {
            let t: String = t.chars().take(12).collect();
            if rest.is_empty() {
                t
            } else {
                format!("{t} {rest}")
            }
        }
        _ => line.to_string(),
    }
}

/// The drop reason of the first dropped flow that names one (`POLICY_DENIED`, `POLICY_DENY`, …).
pub fn drop_reason(flows: &[Value]) -> Option<String> {
    flows.iter().find_map(|v| match line_words(v) {
        Some(words) => {
            let at = words.iter().position(|w| *w == "DROPPED")?;
            words
                .get(at + 1)
                .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .map(|w| w.to_string())
        }
        None => {
            let f = inner(v);
            (f.get("verdict").and_then(Value::as_str) == Some("DROPPED"))
                .then(|| {
                    f.get("drop_reason_desc")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .flatten()
        }
    })
}

fn endpoint(flow: &Value, side: &str, ip_key: &str) -> String {
    let ep = flow.get(side);
    let ns = ep
        .and_then(|e| e.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pod = ep
        .and_then(|e| e.get("pod_name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !pod.is_empty() {
        return if ns.is_empty() {
            pod.to_string()
        } else {
            format!("{ns}/{pod}")
        };
    }
    let ip = flow
        .get("IP")
        .and_then(|i| i.get(ip_key))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let reserved = ep
        .and_then(|e| e.get("labels"))
        .and_then(Value::as_array)
        .and_then(|ls| {
            ls.iter()
                .filter_map(Value::as_str)
                .find_map(|l| l.strip_prefix("reserved:"))
        });
    match reserved {
        Some(r) => format!("{ip} ({r})"),
        None => ip.to_string(),
    }
}

fn port_of(flow: &Value, key: &str) -> Option<(u64, &'static str)> {
    let l4 = flow.get("l4")?;
    for (proto, name) in [("TCP", "TCP"), ("UDP", "UDP"), ("SCTP", "SCTP")] {
        if let Some(p) = l4
            .get(proto)
            .and_then(|x| x.get(key))
            .and_then(Value::as_u64)
        {
            return Some((p, name));
        }
    }
    None
}

fn policy_names(flow: &Value, key: &str) -> Vec<String> {
    flow.get(key)
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let name = p.get("name").and_then(Value::as_str)?;
                    let ns = p
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    Some(if ns.is_empty() {
                        name.to_string()
                    } else {
                        format!("{ns}/{name}")
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn l7_text(l7: &Value) -> Option<String> {
    let kind = l7
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    if let Some(h) = l7.get("http") {
        let method = h.get("method").and_then(Value::as_str).unwrap_or_default();
        let url = h.get("url").and_then(Value::as_str).unwrap_or_default();
        let code = h.get("code").and_then(Value::as_u64);
        return Some(match code {
            Some(c) if c > 0 => format!("HTTP {kind} {method} {url} {c}").replace("  ", " "),
            _ => format!("HTTP {kind} {method} {url}").replace("  ", " "),
        });
    }
    if let Some(k) = l7.get("kafka") {
        let key = k.get("api_key").and_then(Value::as_str).unwrap_or_default();
        let topic = k.get("topic").and_then(Value::as_str).unwrap_or_default();
        let mut t = format!("Kafka {kind} {key}");
        if !topic.is_empty() {
            t.push_str(&format!(" topic {topic}"));
        }
        if let Some(code) = k
            .get("error_code")
            .and_then(Value::as_i64)
            .filter(|c| *c != 0)
        {
            t.push_str(&format!(" error {code}"));
        }
        return Some(t);
    }
    if let Some(d) = l7.get("dns") {
        let q = d.get("query").and_then(Value::as_str).unwrap_or_default();
        return Some(format!("DNS {kind} {q}"));
    }
    None
}

/// One Hubble flow in one line: `18:40:01.123 DROPPED POLICY_DENIED ingress database/postgres →
/// backend/api 8080/TCP SYN (denied by ...)`. A flow the runner already wrote as a line is shown as it is,
/// after its role. Tolerates missing fields; never fails.
pub fn flow_line(v: &Value) -> String {
    if let Some(line) = v.get("flow").and_then(Value::as_str) {
        let line = shorten_leading_time(line);
        return match v.get("role").and_then(Value::as_str) {
            Some(role) => format!("{role}: {line}"),
            None => line,
        };
    }
    let f = inner(v);
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = f.get("time").and_then(Value::as_str)
        && let Some(hms) = t.get(11..).map(|x| x.trim_end_matches('Z'))
    {
        parts.push(hms.chars().take(12).collect());
    }
    parts.push(
        f.get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    );
    if let Some(r) = f
        .get("drop_reason_desc")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        parts.push(r.to_string());
    }
    if let Some(d) = direction_of(f) {
        parts.push(direction_word(d).to_string());
    }
    let src = endpoint(f, "source", "source");
    let dst = endpoint(f, "destination", "destination");
    let mut path = format!("{src} → {dst}");
    if let Some((p, proto)) = port_of(f, "destination_port") {
        path.push_str(&format!(" {p}/{proto}"));
    }
    parts.push(path);
    if let Some(text) = f.get("l7").and_then(l7_text) {
        parts.push(text);
    } else if let Some(flags) = f
        .get("l4")
        .and_then(|l| l.get("TCP"))
        .and_then(|t| t.get("flags"))
        .and_then(Value::as_object)
    {
        let set: Vec<&str> = flags
            .iter()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.as_str())
            .collect();
        if !set.is_empty() {
            parts.push(set.join(","));
        }
    }
    for (key, word) in [
        ("ingress_denied_by", "denied by"),
        ("egress_denied_by", "denied by"),
        ("ingress_allowed_by", "allowed by"),
        ("egress_allowed_by", "allowed by"),
    ] {
        let names = policy_names(f, key);
        if !names.is_empty() {
            parts.push(format!("({word} {})", names.join(", ")));
        }
    }
    if f.get("is_reply").and_then(Value::as_bool) == Some(true) {
        parts.push("(reply)".into());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_flow_line_names_verdict_reason_direction_endpoints_and_port() {
        let f = json!({"flow": {"time": "2026-11-27T18:40:01.123456Z", "verdict": "DROPPED",
            "drop_reason_desc": "POLICY_DENIED", "traffic_direction": "INGRESS",
            "IP": {"source": "10.244.1.5", "destination": "10.244.2.7"},
            "l4": {"TCP": {"source_port": 40000, "destination_port": 8080, "flags": {"SYN": true}}},
            "source": {"namespace": "database", "pod_name": "postgres-0"},
            "destination": {"namespace": "backend", "pod_name": "api-7d9"}}});
        assert_eq!(
            flow_line(&f),
            "18:40:01.123 DROPPED POLICY_DENIED ingress database/postgres-0 → backend/api-7d9 8080/TCP SYN"
        );
    }

    #[test]
    fn a_flow_line_survives_a_flow_without_fields() {
        assert_eq!(flow_line(&json!({})), "? ? → ?");
        assert_eq!(flow_line(&json!("not an object")), "? ? → ?");
    }

    #[test]
    fn an_outside_host_is_shown_by_address_and_reserved_identity() {
        let f = json!({"verdict": "FORWARDED", "IP": {"source": "10.0.1.10", "destination": "10.244.1.9"},
            "source": {"labels": ["reserved:world"]}, "destination": {"namespace": "frontend", "pod_name": "fe"},
            "ingress_allowed_by": [{"namespace": "frontend", "name": "frontend-lb-only"}]});
        let line = flow_line(&f);
        assert!(line.contains("10.0.1.10 (world) → frontend/fe"), "{line}");
        assert!(
            line.ends_with("(allowed by frontend/frontend-lb-only)"),
            "{line}"
        );
    }

    #[test]
    fn a_flow_recorded_as_a_line_keeps_its_text_and_yields_direction_and_reason() {
        let flows = vec![
            json!({"role": "Delivered", "flow": "18:00:01.000 a:1 -> b:2 FORWARDED EGRESS (trace)"}),
            json!({"role": "PolicyDrop", "flow": "18:00:01.100 [node] a:1 -> b:2 DROPPED POLICY_DENY INGRESS (drop)"}),
        ];
        assert_eq!(
            flow_line(&flows[1]),
            "PolicyDrop: 18:00:01.100 [node] a:1 -> b:2 DROPPED POLICY_DENY INGRESS (drop)"
        );
        assert_eq!(drop_direction(&flows), Some(Direction::Ingress));
        assert_eq!(drop_reason(&flows).as_deref(), Some("POLICY_DENY"));
        assert_eq!(drop_reason(&flows[..1]), None);
    }

    #[test]
    fn the_drop_direction_comes_from_the_dropped_flow() {
        let flows = vec![
            json!({"flow": {"verdict": "FORWARDED", "traffic_direction": "EGRESS"}}),
            json!({"flow": {"verdict": "DROPPED", "traffic_direction": "INGRESS"}}),
        ];
        assert_eq!(drop_direction(&flows), Some(Direction::Ingress));
        assert_eq!(drop_direction(&flows[..1]), None);
    }
}
