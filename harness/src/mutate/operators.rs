//! Mutation operators: realistic single mistakes, applied to a policy document as written.
//!
//! A policy is mutated as a JSON tree (the document as parsed from YAML), one change at a time; the result is
//! then read back through the project's own policy parser, and a mutant it rejects (or that the chosen Cilium
//! version would refuse) is left out as invalid. Working on the written document, not on the typed policy,
//! means every mutant is something a person could have typed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// One kind of mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operator {
    /// A `matchLabels` key removed (including the namespace label).
    LabelDrop,
    /// A `matchLabels` value changed to another value the stack uses for that key (another namespace for
    /// the namespace label), or to a misspelt value when the stack has no other.
    LabelValue,
    /// A selector replaced by `{}` (every endpoint, of the policy's namespace for a namespaced policy).
    SelectorEmpty,
    /// A `matchExpressions` requirement dropped, its operator flipped or widened to `Exists`, or a value
    /// removed or added.
    MatchExpressions,
    /// An allow rule element (one entry of `ingress`/`egress`) removed.
    RuleDrop,
    /// `toPorts` removed from an element (every port and protocol is then admitted).
    ToPortsDrop,
    /// The L7 block (`rules`) of a `toPorts` entry removed.
    L7Drop,
    /// A port changed to another port the namespace's workloads expose, or to the next port number.
    PortChange,
    /// `protocol: TCP` (or UDP) changed to `ANY`.
    ProtocolAny,
    /// An HTTP method widened by another method (`GET` to `GET|HEAD`), or removed.
    HttpMethod,
    /// An HTTP path regex widened to a parent path (`/api/v1/.*` to `/api/.*`, `/.*`), or removed.
    HttpPath,
    /// A `headers` or `headerMatches` entry removed.
    HttpHeaderDrop,
    /// A Kafka topic changed to another topic of the policy, or removed.
    KafkaTopic,
    /// A Kafka role switched (produce/consume), or removed.
    KafkaRole,
    /// A Kafka client id changed, or removed.
    KafkaClientId,
    /// A CIDR prefix shortened by one bit, by a whole octet, or to 0.0.0.0/0.
    CidrWiden,
    /// An `except` entry (or the whole `except` list) of a CIDR set removed.
    CidrExceptDrop,
    /// The peers of an element replaced by `fromEntities`/`toEntities` `[world]`, `[cluster]` or `[all]`.
    PeerEntities,
    /// An `ingressDeny`/`egressDeny` element removed.
    DenyRuleDrop,
    /// The whole policy deleted.
    PolicyDelete,
}

impl Operator {
    pub const ALL: [Operator; 20] = [
        Operator::LabelDrop,
        Operator::LabelValue,
        Operator::SelectorEmpty,
        Operator::MatchExpressions,
        Operator::RuleDrop,
        Operator::ToPortsDrop,
        Operator::L7Drop,
        Operator::PortChange,
        Operator::ProtocolAny,
        Operator::HttpMethod,
        Operator::HttpPath,
        Operator::HttpHeaderDrop,
        Operator::KafkaTopic,
        Operator::KafkaRole,
        Operator::KafkaClientId,
        Operator::CidrWiden,
        Operator::CidrExceptDrop,
        Operator::PeerEntities,
        Operator::DenyRuleDrop,
        Operator::PolicyDelete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::LabelDrop => "label-drop",
            Operator::LabelValue => "label-value",
            Operator::SelectorEmpty => "selector-empty",
            Operator::MatchExpressions => "match-expressions",
            Operator::RuleDrop => "rule-drop",
            Operator::ToPortsDrop => "to-ports-drop",
            Operator::L7Drop => "l7-drop",
            Operator::PortChange => "port-change",
            Operator::ProtocolAny => "protocol-any",
            Operator::HttpMethod => "http-method",
            Operator::HttpPath => "http-path",
            Operator::HttpHeaderDrop => "http-header-drop",
            Operator::KafkaTopic => "kafka-topic",
            Operator::KafkaRole => "kafka-role",
            Operator::KafkaClientId => "kafka-client-id",
            Operator::CidrWiden => "cidr-widen",
            Operator::CidrExceptDrop => "cidr-except-drop",
            Operator::PeerEntities => "peer-entities",
            Operator::DenyRuleDrop => "deny-rule-drop",
            Operator::PolicyDelete => "policy-delete",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operator name that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown mutation operator `{0}` (known: {known})", known = Operator::ALL.iter().map(|o| o.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownOperator(pub String);

impl FromStr for Operator {
    type Err = UnknownOperator;
    fn from_str(s: &str) -> Result<Self, UnknownOperator> {
        Operator::ALL
            .iter()
            .copied()
            .find(|o| o.name() == s.trim())
            .ok_or_else(|| UnknownOperator(s.trim().to_string()))
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path in the written document, shown as `spec.ingress[0].fromEndpoints[0].matchLabels.role`.
pub fn show_path(path: &[Seg]) -> String {
    if path.is_empty() {
        return "(whole policy)".into();
    }
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                let plain = k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if plain {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                } else {
                    s.push_str(&format!("[\"{k}\"]"));
                }
            }
        }
    }
    s
}

/// One change to one document.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub operator: Operator,
    /// The node that changes.
    pub path: Vec<Seg>,
    /// The new node; `None` removes it (an empty path with `None` deletes the whole policy).
    pub new: Option<Value>,
    /// What was written, for people.
    pub before: String,
    /// What the mistake writes instead, for people.
    pub after: String,
}

/// What the operators know about the stack: values they can switch to.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Every namespace of the stack.
    pub namespaces: BTreeSet<String>,
    /// Values of each pod label key in the stack.
    pub label_values: BTreeMap<String, BTreeSet<String>>,
    /// Container ports (number, name) of the workloads of each namespace.
    pub ports_by_namespace: BTreeMap<String, BTreeSet<(u16, Option<String>)>>,
}

/// A compact one-line form of a value (YAML flow style) for people.
pub fn flow(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", scalar(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A string as a YAML plain scalar when that reads back as the same string, else double-quoted.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
        && !s.starts_with(['-', '.'])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
    }
}

/// Apply a mutation to a document. `None`: the policy is deleted.
pub fn apply(doc: &Value, m: &Mutation) -> Option<Value> {
    if m.path.is_empty() {
        return m.new.clone();
    }
    let mut out = doc.clone();
    let (last, parent_path) = m.path.split_last()?;
    let mut node = &mut out;
    for seg in parent_path {
        node = match seg {
            Seg::Key(k) => node.get_mut(k.as_str())?,
            Seg::Index(i) => node.get_mut(*i)?,
        };
    }
    match (last, &m.new) {
        (Seg::Key(k), Some(v)) => {
            node.as_object_mut()?.insert(k.clone(), v.clone());
        }
        (Seg::Key(k), None) => {
            node.as_object_mut()?.remove(k);
        }
        (Seg::Index(i), Some(v)) => {
            *node.get_mut(*i)? = v.clone();
        }
        (Seg::Index(i), None) => {
            let a = node.as_array_mut()?;
            if *i < a.len() {
                a.remove(*i);
            }
        }
    }
    Some(out)
}

/// Generate every mutation of the chosen operators for one policy document.
pub fn mutations(doc: &Value, ops: &BTreeSet<Operator>, vocab: &Vocabulary) -> Vec<Mutation> {
    let mut g = Gen {
        ops,
        vocab,
        out: Vec::new(),
        namespace: doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(spec) = doc.get("spec") {
        g.rule(spec, vec![Seg::Key("spec".into())]);
    }
    if let Some(Value::Array(specs)) = doc.get("specs") {
        for (i, r) in specs.iter().enumerate() {
            g.rule(r, vec![Seg::Key("specs".into()), Seg::Index(i)]);
        }
    }
    if ops.contains(&Operator::PolicyDelete) {
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        g.out.push(Mutation {
            operator: Operator::PolicyDelete,
            path: Vec::new(),
            new: None,
            before: format!("policy {name}"),
            after: "(deleted)".into(),
        });
    }
    g.out
}

struct Gen<'a> {
    ops: &'a BTreeSet<Operator>,
    vocab: &'a Vocabulary,
    out: Vec<Mutation>,
    namespace: Option<String>,
}

fn with(path: &[Seg], more: &[Seg]) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.extend_from_slice(more);
    p
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Whether a selector key is the namespace label.
fn is_namespace_key(k: &str) -> bool {
    let bare = k.strip_prefix("k8s:").unwrap_or(k);
    bare == crate::model::labels::NAMESPACE_KEY
        || bare == "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"
}

const PEER_FIELDS_IN: [&str; 6] = [
    "fromEndpoints",
    "fromCIDR",
    "fromCIDRSet",
    "fromEntities",
    "fromNodes",
    "fromGroups",
];
const PEER_FIELDS_OUT: [&str; 9] = [
    "toEndpoints",
    "toCIDR",
    "toCIDRSet",
    "toEntities",
    "toFQDNs",
    "toServices",
    "toNodes",
    "toGroups",
    "toRequires",
];

impl Gen<'_> {
    fn on(&self, op: Operator) -> bool {
        self.ops.contains(&op)
    }

    fn push(
        &mut self,
        op: Operator,
        path: Vec<Seg>,
        new: Option<Value>,
        before: String,
        after: String,
    ) {
        if self.on(op) {
            self.out.push(Mutation {
                operator: op,
                path,
                new,
                before,
                after,
            });
        }
    }

    fn rule(&mut self, rule: &Value, path: Vec<Seg>) {
        if let Some(sel) = rule.get("endpointSelector") {
            self.selector(sel, with(&path, &[key("endpointSelector")]));
        }
        for (section, ingress, deny) in [
            ("ingress", true, false),
            ("egress", false, false),
            ("ingressDeny", true, true),
            ("egressDeny", false, true),
        ] {
            let Some(Value::Array(elems)) = rule.get(section) else {
                continue;
            };
            for (i, e) in elems.iter().enumerate() {
                let ep = with(&path, &[key(section), Seg::Index(i)]);
                let op = if deny {
                    Operator::DenyRuleDrop
                } else {
                    Operator::RuleDrop
                };
                self.push(op, ep.clone(), None, flow(e), "(removed)".into());
                self.element(e, ep, ingress, deny);
            }
        }
    }

    fn element(&mut self, e: &Value, path: Vec<Seg>, ingress: bool, deny: bool) {
        let Some(obj) = e.as_object() else { return };
        let (ep_field, cidr_field, set_field, ent_field) = if ingress {
            ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities")
        } else {
            ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities")
        };
        if let Some(Value::Array(sels)) = obj.get(ep_field) {
            for (j, s) in sels.iter().enumerate() {
                self.selector(s, with(&path, &[key(ep_field), Seg::Index(j)]));
            }
        }
        if let Some(Value::Array(cidrs)) = obj.get(cidr_field) {
            for (j, c) in cidrs.iter().enumerate() {
                if let Some(c) = c.as_str() {
                    self.cidr(c, with(&path, &[key(cidr_field), Seg::Index(j)]));
                }
            }
        }
        if let Some(Value::Array(sets)) = obj.get(set_field) {
            for (j, s) in sets.iter().enumerate() {
                let sp = with(&path, &[key(set_field), Seg::Index(j)]);
                if let Some(c) = s.get("cidr").and_then(Value::as_str) {
                    self.cidr(c, with(&sp, &[key("cidr")]));
                }
                if let Some(Value::Array(ex)) = s.get("except") {
                    for (k, x) in ex.iter().enumerate() {
                        self.push(
                            Operator::CidrExceptDrop,
                            with(&sp, &[key("except"), Seg::Index(k)]),
                            None,
                            format!("except {}", flow(x)),
                            "(removed)".into(),
                        );
                    }
                    if ex.len() > 1 {
                        self.push(
                            Operator::CidrExceptDrop,
                            with(&sp, &[key("except")]),
                            None,
                            format!("except: {}", flow(&Value::Array(ex.clone()))),
                            "(removed)".into(),
                        );
                    }
                }
            }
        }
        // Peers replaced by an entity.
        let peer_fields: &[&str] = if ingress {
            &PEER_FIELDS_IN
        } else {
            &PEER_FIELDS_OUT
        };
        let written: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| peer_fields.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for entity in ["world", "cluster", "all"] {
            let already = written.len() == 1 && written.get(ent_field) == Some(&json!([entity]));
            if already {
                continue;
            }
            let mut new = obj.clone();
            for k in written.keys() {
                new.remove(k);
            }
            new.insert(ent_field.to_string(), json!([entity]));
            let before = if written.is_empty() {
                "(no peer: every peer, or none without toPorts)".to_string()
            } else {
                flow(&Value::Object(written.clone()))
            };
            self.push(
                Operator::PeerEntities,
                path.clone(),
                Some(Value::Object(new)),
                before,
                format!("{ent_field}: [{entity}]"),
            );
        }
        if let Some(tp) = obj.get("toPorts") {
            self.push(
                Operator::ToPortsDrop,
                with(&path, &[key("toPorts")]),
                None,
                format!("toPorts: {}", flow(tp)),
                "(removed: every port)".into(),
            );
            if let Value::Array(entries) = tp {
                for (k, pr) in entries.iter().enumerate() {
                    self.port_rule(pr, with(&path, &[key("toPorts"), Seg::Index(k)]), deny);
                }
            }
        }
    }

    fn port_rule(&mut self, pr: &Value, path: Vec<Seg>, deny: bool) {
        if let Some(Value::Array(ports)) = pr.get("ports") {
            for (m, p) in ports.iter().enumerate() {
                let pp = with(&path, &[key("ports"), Seg::Index(m)]);
                if let Some(port) = p.get("port") {
                    self.port(port, with(&pp, &[key("port")]));
                }
                match p.get("protocol").and_then(Value::as_str) {
                    Some(proto) if proto == "TCP" || proto == "UDP" => self.push(
                        Operator::ProtocolAny,
                        with(&pp, &[key("protocol")]),
                        Some(json!("ANY")),
                        format!("protocol: {proto}"),
                        "protocol: ANY".into(),
                    ),
                    _ => {}
                }
            }
        }
        if deny {
            return;
        }
        let Some(rules) = pr.get("rules") else { return };
        self.push(
            Operator::L7Drop,
            with(&path, &[key("rules")]),
            None,
            format!("rules: {}", flow(rules)),
            "(removed: no L7 filtering)".into(),
        );
        if let Some(Value::Array(http)) = rules.get("http") {
            for (n, h) in http.iter().enumerate() {
                self.http(h, with(&path, &[key("rules"), key("http"), Seg::Index(n)]));
            }
        }
        if let Some(Value::Array(kafka)) = rules.get("kafka") {
            let topics: BTreeSet<String> = kafka
                .iter()
                .filter_map(|k| k.get("topic").and_then(Value::as_str).map(str::to_string))
                .collect();
            let clients: BTreeSet<String> = kafka
                .iter()
                .filter_map(|k| {
                    k.get("clientID")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            for (n, k) in kafka.iter().enumerate() {
                self.kafka(
                    k,
                    with(&path, &[key("rules"), key("kafka"), Seg::Index(n)]),
                    &topics,
                    &clients,
                );
            }
        }
    }

    fn port(&mut self, port: &Value, path: Vec<Seg>) {
        let text = match port {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        let ns_ports = self
            .namespace
            .as_ref()
            .and_then(|ns| self.vocab.ports_by_namespace.get(ns))
            .cloned()
            .unwrap_or_default();
        let mut alternatives: BTreeSet<String> = BTreeSet::new();
        match text.parse::<u16>() {
            Ok(n) => {
                for (p, _) in &ns_ports {
                    if *p != n {
                        alternatives.insert(p.to_string());
                    }
                }
                if n > 0 && n < u16::MAX {
                    alternatives.insert((n + 1).to_string());
                }
            }
            Err(_) => {
                for (_, name) in &ns_ports {
                    if let Some(name) = name
                        && !name.eq_ignore_ascii_case(&text)
                    {
                        alternatives.insert(name.clone());
                    }
                }
            }
        }
        for alt in alternatives {
            self.push(
                Operator::PortChange,
                path.clone(),
                Some(json!(alt)),
                format!("port: {}", scalar(&text)),
                format!("port: {}", scalar(&alt)),
            );
        }
    }

    fn http(&mut self, h: &Value, path: Vec<Seg>) {
        if let Some(m) = h.get("method").and_then(Value::as_str) {
            self.push(
                Operator::HttpMethod,
                with(&path, &[key("method")]),
                None,
                format!("method: {}", scalar(m)),
                "(removed: any method)".into(),
            );
            let re = crate::policy::PolicyRegex::new(m).ok();
            for extra in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
                if re.as_ref().is_some_and(|r| r.full_match(extra)) {
                    continue;
                }
                let new = format!("{m}|{extra}");
                self.push(
                    Operator::HttpMethod,
                    with(&path, &[key("method")]),
                    Some(json!(new)),
                    format!("method: {}", scalar(m)),
                    format!("method: {}", scalar(&new)),
                );
            }
        }
        if let Some(p) = h.get("path").and_then(Value::as_str) {
            self.push(
                Operator::HttpPath,
                with(&path, &[key("path")]),
                None,
                format!("path: {}", scalar(p)),
                "(removed: any path)".into(),
            );
            for wider in wider_paths(p) {
                self.push(
                    Operator::HttpPath,
                    with(&path, &[key("path")]),
                    Some(json!(wider)),
                    format!("path: {}", scalar(p)),
                    format!("path: {}", scalar(&wider)),
                );
            }
        }
        for field in ["headers", "headerMatches"] {
            if let Some(Value::Array(hs)) = h.get(field) {
                for (i, x) in hs.iter().enumerate() {
                    self.push(
                        Operator::HttpHeaderDrop,
                        with(&path, &[key(field), Seg::Index(i)]),
                        None,
                        format!("{field}: {}", flow(x)),
                        "(removed)".into(),
                    );
                }
            }
        }
    }

    fn kafka(
        &mut self,
        k: &Value,
        path: Vec<Seg>,
        topics: &BTreeSet<String>,
        clients: &BTreeSet<String>,
    ) {
        if let Some(t) = k.get("topic").and_then(Value::as_str) {
            self.push(
                Operator::KafkaTopic,
                with(&path, &[key("topic")]),
                None,
                format!("topic: {}", scalar(t)),
                "(removed: every topic)".into(),
            );
            for other in topics.iter().filter(|o| *o != t) {
                self.push(
                    Operator::KafkaTopic,
                    with(&path, &[key("topic")]),
                    Some(json!(other)),
                    format!("topic: {}", scalar(t)),
                    format!("topic: {}", scalar(other)),
                );
            }
        }
        if let Some(r) = k.get("role").and_then(Value::as_str) {
            self.push(
                Operator::KafkaRole,
                with(&path, &[key("role")]),
                None,
                format!("role: {}", scalar(r)),
                "(removed: every API key)".into(),
            );
            let other = if r.eq_ignore_ascii_case("produce") {
                "consume"
            } else {
                "produce"
            };
            self.push(
                Operator::KafkaRole,
                with(&path, &[key("role")]),
                Some(json!(other)),
                format!("role: {}", scalar(r)),
                format!("role: {other}"),
            );
        }
        if let Some(c) = k.get("clientID").and_then(Value::as_str) {
            self.push(
                Operator::KafkaClientId,
                with(&path, &[key("clientID")]),
                None,
                format!("clientID: {}", scalar(c)),
                "(removed: any client)".into(),
            );
            let mut others: Vec<String> = clients.iter().filter(|o| *o != c).cloned().collect();
            if others.is_empty() {
                others.push(format!("{c}-typo"));
            }
            for other in others {
                self.push(
                    Operator::KafkaClientId,
                    with(&path, &[key("clientID")]),
                    Some(json!(other)),
                    format!("clientID: {}", scalar(c)),
                    format!("clientID: {}", scalar(&other)),
                );
            }
        }
    }

    fn cidr(&mut self, c: &str, path: Vec<Seg>) {
        let Ok(net) = c.parse::<ipnet::IpNet>() else {
            return;
        };
        let len = net.prefix_len();
        let mut wider: BTreeSet<u8> = BTreeSet::new();
        if len >= 1 {
            wider.insert(len - 1);
        }
        if len >= 8 {
            wider.insert(len - 8);
        }
        wider.insert(0);
        for l in wider {
            let Ok(w) = ipnet::IpNet::new(net.addr(), l) else {
                continue;
            };
            let w = w.trunc().to_string();
            self.push(
                Operator::CidrWiden,
                path.clone(),
                Some(json!(w)),
                scalar(c),
                scalar(&w),
            );
        }
    }

    fn selector(&mut self, sel: &Value, path: Vec<Seg>) {
        let empty = sel.as_object().is_none_or(|o| {
            o.values().all(|v| match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Null => true,
                _ => false,
            })
        });
        if !empty {
            self.push(
                Operator::SelectorEmpty,
                path.clone(),
                Some(json!({})),
                flow(sel),
                "{}".into(),
            );
        }
        if let Some(Value::Object(labels)) = sel.get("matchLabels") {
            for (k, v) in labels {
                let lp = with(&path, &[key("matchLabels"), key(k)]);
                let before = format!("{}: {}", scalar(k), flow(v));
                self.push(
                    Operator::LabelDrop,
                    lp.clone(),
                    None,
                    before.clone(),
                    "(removed)".into(),
                );
                let value = v.as_str().unwrap_or_default();
                for alt in self.alternatives(k, value) {
                    self.push(
                        Operator::LabelValue,
                        lp.clone(),
                        Some(json!(alt)),
                        before.clone(),
                        format!("{}: {}", scalar(k), scalar(&alt)),
                    );
                }
            }
        }
        if let Some(Value::Array(reqs)) = sel.get("matchExpressions") {
            for (i, r) in reqs.iter().enumerate() {
                self.requirement(r, with(&path, &[key("matchExpressions"), Seg::Index(i)]));
            }
        }
    }

    /// Other values a label key could have been given by mistake.
    fn alternatives(&self, k: &str, value: &str) -> Vec<String> {
        let bare = k.split_once(':').map_or(k, |(_, b)| b);
        let pool: BTreeSet<String> = if is_namespace_key(k) {
            self.vocab.namespaces.clone()
        } else {
            self.vocab
                .label_values
                .get(bare)
                .cloned()
                .unwrap_or_default()
        };
        let mut alts: Vec<String> = pool.into_iter().filter(|v| v != value).collect();
        if alts.is_empty() {
            alts.push(format!("{value}-typo"));
        }
        alts
    }

    fn requirement(&mut self, r: &Value, path: Vec<Seg>) {
        let (Some(k), Some(op)) = (
            r.get("key").and_then(Value::as_str),
            r.get("operator").and_then(Value::as_str),
        ) else {
            return;
        };
        let values: Vec<String> = r
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let shown = flow(r);
        let push = |g: &mut Gen<'_>, new: Option<Value>| {
            let after = new.as_ref().map_or_else(|| "(removed)".to_string(), flow);
            g.push(
                Operator::MatchExpressions,
                path.clone(),
                new,
                shown.clone(),
                after,
            );
        };
        push(self, None);
        let req = |op: &str, vals: Option<&[String]>| -> Value {
            let mut m = Map::new();
            m.insert("key".into(), json!(k));
            m.insert("operator".into(), json!(op));
            if let Some(v) = vals {
                m.insert("values".into(), json!(v));
            }
            Value::Object(m)
        };
        match op {
            "In" | "NotIn" => {
                let flipped = if op == "In" { "NotIn" } else { "In" };
                push(self, Some(req(flipped, Some(&values))));
                push(self, Some(req("Exists", None)));
                if values.len() > 1 {
                    for i in 0..values.len() {
                        let mut fewer = values.clone();
                        fewer.remove(i);
                        push(self, Some(req(op, Some(&fewer))));
                    }
                }
                let first = values.first().cloned().unwrap_or_default();
                for alt in self.alternatives(k, &first) {
                    if values.contains(&alt) {
                        continue;
                    }
                    let mut more = values.clone();
                    more.push(alt);
                    push(self, Some(req(op, Some(&more))));
                }
            }
            "Exists" => push(self, Some(req("DoesNotExist", None))),
            "DoesNotExist" => push(self, Some(req("Exists", None))),
            _ => {}
        }
    }
}

/// Wider forms of a path regex: the same regex cut back to each parent path (`/api/v1/.*`: `/api/.*`, `/.*`).
fn wider_paths(p: &str) -> Vec<String> {
    let lit = p
        .strip_suffix(".*")
        .or_else(|| p.strip_suffix(".+"))
        .unwrap_or(p);
    let mut out = Vec::new();
    let trimmed = lit.trim_end_matches('/');
    for (i, c) in trimmed.char_indices().rev() {
        if c == '/' {
            let w = format!("{}.*", &trimmed[..=i]);
            if w != p && !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_paths_cut_back_to_each_parent() {
        assert_eq!(wider_paths("/api/v1/.*"), vec!["/api/.*", "/.*"]);
        assert_eq!(wider_paths("/public"), vec!["/.*"]);
        assert_eq!(wider_paths("/.*"), Vec::<String>::new());
        assert_eq!(wider_paths("/a/b"), vec!["/a/.*", "/.*"]);
    }

    #[test]
    fn operator_names_round_trip() {
        for op in Operator::ALL {
            assert_eq!(op.name().parse::<Operator>().ok(), Some(op));
        }
        assert!("label-dorp".parse::<Operator>().is_err());
    }

    #[test]
    fn apply_removes_and_replaces_nodes() {
        let doc = json!({"spec": {"ingress": [{"a": 1}, {"b": 2}]}});
        let m = Mutation {
            operator: Operator::RuleDrop,
            path: vec![key("spec"), key("ingress"), Seg::Index(0)],
            new: None,
            before: String::new(),
            after: String::new(),
        };
        assert_eq!(
            apply(&doc, &m),
            Some(json!({"spec": {"ingress": [{"b": 2}]}}))
        );
        assert_eq!(show_path(&m.path), "spec.ingress[0]".to_string());
        let p = vec![key("matchLabels"), key("k8s:io.kubernetes.pod.namespace")];
        assert_eq!(
            show_path(&p),
            "matchLabels[\"k8s:io.kubernetes.pod.namespace\"]"
        );
    }

    #[test]
    fn scalars_stay_plain_only_when_yaml_reads_them_back_as_strings() {
        assert_eq!(scalar("orders"), "orders");
        assert_eq!(scalar("8080"), "\"8080\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("/api/v1/.*"), "\"/api/v1/.*\"");
        assert_eq!(scalar("Bearer x"), "\"Bearer x\"");
    }
}
