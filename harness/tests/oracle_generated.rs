//! Differential test on generated inputs: seeded random CiliumNetworkPolicies over the stack's identities
//! (selectors with and without namespace, matchExpressions, entities, CIDRs with except, ports, ranges and
//! named ports, deny rules, L7 HTTP/Kafka/DNS rules, several policies selecting the same endpoint) and
//! random flows, decided by the model and by Cilium's own engine (the oracle). Every disagreement is
//! shrunk to a minimal policy set and flow, printed as a ready-to-commit regression case.
//!
//! - `HARNESS_ORACLE_CASES` (default 100000): (policy set, flow) pairs;
//! - `HARNESS_ORACLE_SEED` (default a fixed seed): the generator's seed, printed on failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use harness::model::{CiliumVersion, Flow, Identity, Model, PolicyStatus, Verdict};
use harness::oracle::{self, BatchCase, Oracle, OracleAnswer, PolicyText};
use harness::policy::{self, Protocol};
use harness::scenario::{DnsSpec, HttpSpec, KafkaRequestSpec, KafkaSpec, Request};
use harness::stack::Stack;

const FLOWS_PER_SET: usize = 25;
const DEFAULT_CASES: usize = 100_000;
const DEFAULT_SEED: u64 = 0x5eed_c111_0019;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------------------------------
// A small seeded generator (splitmix64): no dependency, same sequence everywhere.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------------------
// The universe the generator draws from: the stack's identities plus a few outside addresses.

struct Universe {
    stack: Stack,
    ids: Vec<Identity>,
    namespaces: Vec<String>,
}

const EXTRA_ADDRESSES: &[&str] = &["10.0.0.200", "10.20.30.200", "192.168.7.7"];
const NUMERIC_PORTS: &[u16] = &[53, 80, 443, 5432, 8080, 9090, 9092];
const PORT_NAMES: &[&str] = &[
    "http", "https", "admin", "postgres", "kafka", "dns", "dns-tcp",
];
const ENTITIES: &[&str] = &[
    "world",
    "cluster",
    "host",
    "remote-node",
    "kube-apiserver",
    "all",
];
const CIDRS: &[&str] = &[
    "10.0.0.0/24",
    "10.0.0.10/32",
    "10.0.1.0/24",
    "10.20.30.0/24",
    "10.0.0.0/8",
    "192.168.0.0/16",
    "0.0.0.0/0",
];
const TOPICS: &[&str] = &["orders", "events", "logs"];
const CLIENT_IDS: &[&str] = &["payment-service", "analytics", "rogue"];
const PATHS: &[&str] = &[
    "/",
    "/api/v1/orders",
    "/api/v1/orders/1",
    "/admin",
    "/health",
];
const PATH_RULES: &[&str] = &["/api/v1/.*", "/", "/health", "/api/.*", "/admin.*"];
const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT"];
const METHOD_RULES: &[&str] = &["GET", "POST", "DELETE", "GET|POST", "P.*"];
const DNS_NAMES: &[&str] = &[
    "kafka.kafka.svc.cluster.local",
    "example.com",
    "api.example.com",
    "www.partner.org",
];
const DNS_RULES: &[(&str, &str)] = &[
    ("matchName", "example.com"),
    ("matchName", "kafka.kafka.svc.cluster.local"),
    ("matchPattern", "*.example.com"),
    ("matchPattern", "*"),
    ("matchPattern", "*.svc.cluster.local"),
];

impl Universe {
    fn load() -> Universe {
        let stack = Stack::load(&root().join("fixtures/stack.yaml")).expect("stack");
        let mut ids = Model::identities_of(&stack);
        for a in EXTRA_ADDRESSES {
            let ip = a.parse().expect("address");
            ids.push(Identity::world(a, ip));
        }
        let mut namespaces: Vec<String> = stack
            .workloads
            .iter()
            .map(|w| w.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        Universe {
            stack,
            ids,
            namespaces,
        }
    }

    fn pods_in(&self, ns: &str) -> Vec<&harness::stack::Workload> {
        self.stack
            .workloads
            .iter()
            .filter(|w| w.namespace == ns)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Policies

fn gen_label_selector(rng: &mut Rng, u: &Universe, own_ns: Option<&str>, peer: bool) -> Value {
    let w = rng.pick(&u.stack.workloads);
    let mut labels = serde_json::Map::new();
    let mut exprs = Vec::new();
    match rng.below(10) {
        0 => {}
        1 | 2 => {
            let (k, v) = w
                .labels
                .iter()
                .nth(rng.below(w.labels.len()))
                .expect("label");
            let op = rng.below(4);
            let key = if rng.chance(30) {
                format!("k8s:{k}")
            } else {
                k.clone()
            };
            let other = rng.pick(&u.stack.workloads);
            let other_v = other.labels.get(k).cloned().unwrap_or_else(|| "x".into());
            exprs.push(match op {
                0 => json!({"key": key, "operator": "In", "values": [v, other_v]}),
                1 => json!({"key": key, "operator": "NotIn", "values": [v]}),
                2 => json!({"key": key, "operator": "Exists"}),
                _ => json!({"key": key, "operator": "DoesNotExist"}),
            });
        }
        _ => {
            if !w.labels.is_empty() {
                let (k, v) = w
                    .labels
                    .iter()
                    .nth(rng.below(w.labels.len()))
                    .expect("label");
                let key = if rng.chance(20) {
                    format!("k8s:{k}")
                } else {
                    k.clone()
                };
                labels.insert(key, json!(v));
            }
        }
    }
    // Namespace labels and service accounts are identity labels too.
    if peer && rng.chance(8) {
        labels.insert(
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name".into(),
            json!(w.namespace),
        );
    } else if rng.chance(4) {
        labels.insert(
            "k8s:io.cilium.k8s.policy.serviceaccount".into(),
            json!(w.service_account),
        );
    }
    if peer && rng.chance(45) {
        let ns = if rng.chance(75) {
            w.namespace.clone()
        } else {
            rng.pick(&u.namespaces).clone()
        };
        if rng.chance(80) {
            labels.insert("k8s:io.kubernetes.pod.namespace".into(), json!(ns));
        } else {
            exprs.push(json!({"key": "k8s:io.kubernetes.pod.namespace", "operator": "In", "values": [ns, own_ns.unwrap_or("default")]}));
        }
    }
    let mut sel = serde_json::Map::new();
    if !labels.is_empty() {
        sel.insert("matchLabels".into(), Value::Object(labels));
    }
    if !exprs.is_empty() {
        sel.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(sel)
}

fn gen_ports(rng: &mut Rng, allow_range: bool) -> (Vec<Value>, bool) {
    let n = 1 + rng.below(2);
    let mut ports = Vec::new();
    let mut l7_ok = n == 1;
    for _ in 0..n {
        let mut p = serde_json::Map::new();
        if rng.chance(25) {
            p.insert("port".into(), json!(*rng.pick(PORT_NAMES)));
        } else {
            let port = *rng.pick(NUMERIC_PORTS);
            p.insert("port".into(), json!(port.to_string()));
            if allow_range && rng.chance(12) {
                p.insert("endPort".into(), json!(port + 1 + rng.below(20) as u16));
                l7_ok = false;
            }
        }
        match rng.below(10) {
            0..=5 => {
                p.insert("protocol".into(), json!("TCP"));
            }
            6 => {
                p.insert("protocol".into(), json!("UDP"));
            }
            7 => {
                p.insert("protocol".into(), json!("ANY"));
            }
            _ => {}
        }
        ports.push(Value::Object(p));
    }
    (ports, l7_ok)
}

fn gen_l7(rng: &mut Rng, egress: bool, proto: Option<&str>) -> Option<Value> {
    let udp = proto == Some("UDP");
    let kind = rng.below(10);
    if egress && (kind < 3 || udp) {
        let n = 1 + rng.below(2);
        let rules: Vec<Value> = (0..n)
            .map(|_| {
                let (k, v) = *rng.pick(DNS_RULES);
                json!({ k: v })
            })
            .collect();
        return Some(json!({ "dns": rules }));
    }
    if udp {
        return None;
    }
    if kind < 7 {
        let n = 1 + rng.below(2);
        let rules: Vec<Value> = (0..n)
            .map(|_| {
                let mut r = serde_json::Map::new();
                if rng.chance(70) {
                    r.insert("method".into(), json!(*rng.pick(METHOD_RULES)));
                }
                if rng.chance(70) {
                    r.insert("path".into(), json!(*rng.pick(PATH_RULES)));
                }
                if rng.chance(25) {
                    let h = if rng.chance(50) {
                        "Authorization"
                    } else {
                        "X-Token: abc"
                    };
                    r.insert("headers".into(), json!([h]));
                }
                if rng.chance(8) {
                    r.insert(
                        "host".into(),
                        json!(*rng.pick(&["api\\.example\\.com", ".*"])),
                    );
                }
                Value::Object(r)
            })
            .collect();
        Some(json!({ "http": rules }))
    } else {
        let n = 1 + rng.below(2);
        let rules: Vec<Value> = (0..n)
            .map(|_| {
                let mut r = serde_json::Map::new();
                match rng.below(10) {
                    0..=4 => {
                        r.insert(
                            "role".into(),
                            json!(if rng.chance(50) { "produce" } else { "consume" }),
                        );
                    }
                    5..=7 => {
                        r.insert(
                            "apiKey".into(),
                            json!(*rng.pick(&["produce", "fetch", "metadata", "offsets"])),
                        );
                    }
                    _ => {}
                }
                if rng.chance(70) {
                    r.insert("topic".into(), json!(*rng.pick(TOPICS)));
                }
                if rng.chance(30) {
                    r.insert("clientID".into(), json!(*rng.pick(CLIENT_IDS)));
                }
                if rng.chance(10) {
                    // The versions the agent sends (Metadata v1, Produce v3, ListOffsets v1, Fetch v4)
                    // and one it does not.
                    r.insert("apiVersion".into(), json!(*rng.pick(&["1", "3", "4", "2"])));
                }
                Value::Object(r)
            })
            .collect();
        Some(json!({ "kafka": rules }))
    }
}

fn gen_element(rng: &mut Rng, u: &Universe, ns: Option<&str>, egress: bool, deny: bool) -> Value {
    let dir = if egress { "to" } else { "from" };
    let mut e = serde_json::Map::new();
    let peer_kind = rng.below(20);
    match peer_kind {
        0..=11 => {
            let n = 1 + rng.below(2);
            let sels: Vec<Value> = (0..n)
                .map(|_| gen_label_selector(rng, u, ns, true))
                .collect();
            e.insert(format!("{dir}Endpoints"), Value::Array(sels));
        }
        12 | 13 => {
            let n = 1 + rng.below(2);
            let ents: Vec<Value> = (0..n).map(|_| json!(*rng.pick(ENTITIES))).collect();
            e.insert(format!("{dir}Entities"), Value::Array(ents));
        }
        14 | 15 => {
            e.insert(format!("{dir}CIDR"), json!([*rng.pick(CIDRS)]));
        }
        16 | 17 => {
            let cidr = *rng.pick(&["10.0.0.0/8", "0.0.0.0/0", "10.0.0.0/11"]);
            let except = *rng.pick(&["10.0.0.0/24", "10.0.0.10/32", "10.20.30.0/24"]);
            e.insert(
                format!("{dir}CIDRSet"),
                json!([{ "cidr": cidr, "except": [except] }]),
            );
        }
        _ => {}
    }
    let need_ports = peer_kind >= 18;
    if rng.chance(10) {
        // ICMP types instead of ports: codes, names of either family (some of the wrong family, which
        // Cilium refuses), type 0 (a port-0 wildcard); now and then with toPorts too (refused).
        let n = 1 + rng.below(2);
        let fields: Vec<Value> = (0..n)
            .map(|_| {
                let t = rng
                    .pick(&[
                        json!(8),
                        json!("EchoRequest"),
                        json!(0),
                        json!(13),
                        json!("PacketTooBig"),
                        json!(128),
                    ])
                    .clone();
                if rng.chance(30) {
                    json!({ "type": t, "family": "IPv6" })
                } else {
                    json!({ "type": t })
                }
            })
            .collect();
        e.insert("icmps".into(), json!([{ "fields": fields }]));
        if rng.chance(10) {
            e.insert("toPorts".into(), json!([{ "ports": [{ "port": "80" }] }]));
        }
        return Value::Object(e);
    }
    if need_ports || rng.chance(60) {
        let (mut ports, l7_ok) = gen_ports(rng, true);
        let proto = ports[0]
            .get("protocol")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut rules = None;
        if !deny && l7_ok && rng.chance(40) {
            rules = gen_l7(rng, egress, proto.as_deref());
            // Mostly valid: HTTP and Kafka rules need TCP (Cilium refuses them on ANY or UDP); the
            // rest check that both sides refuse the same policies.
            if rules.as_ref().is_some_and(|r| r.get("dns").is_none()) && rng.chance(85) {
                ports[0]["protocol"] = json!("TCP");
            }
        }
        let mut pr = serde_json::Map::new();
        pr.insert("ports".into(), Value::Array(ports));
        if let Some(r) = rules {
            pr.insert("rules".into(), r);
        }
        e.insert("toPorts".into(), json!([Value::Object(pr)]));
    }
    Value::Object(e)
}

fn gen_policy(rng: &mut Rng, u: &Universe, idx: usize) -> Value {
    let clusterwide = rng.chance(10);
    let ns = rng.pick(&u.namespaces).clone();
    let mut spec = serde_json::Map::new();
    let subject = if clusterwide {
        gen_label_selector(rng, u, None, true)
    } else {
        let pods = u.pods_in(&ns);
        if rng.chance(20) || pods.is_empty() {
            json!({})
        } else {
            let w = rng.pick(&pods);
            let (k, v) = w
                .labels
                .iter()
                .nth(rng.below(w.labels.len()))
                .expect("label");
            json!({ "matchLabels": { k: v } })
        }
    };
    spec.insert("endpointSelector".into(), subject);
    let own = if clusterwide { None } else { Some(ns.as_str()) };
    loop {
        for (section, egress, deny, p) in [
            ("ingress", false, false, 55),
            ("egress", true, false, 45),
            ("ingressDeny", false, true, 15),
            ("egressDeny", true, true, 15),
        ] {
            if rng.chance(p) {
                let n = 1 + rng.below(2);
                let els: Vec<Value> = (0..n)
                    .map(|_| gen_element(rng, u, own, egress, deny))
                    .collect();
                spec.insert(section.into(), Value::Array(els));
            }
        }
        if spec.len() > 1 {
            break;
        }
    }
    if rng.chance(10) {
        let d = if rng.chance(50) { "ingress" } else { "egress" };
        spec.insert("enableDefaultDeny".into(), json!({ d: false }));
    }
    if clusterwide {
        json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": { "name": format!("gen-{idx}") },
            "spec": spec,
        })
    } else {
        json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": { "name": format!("gen-{idx}"), "namespace": ns },
            "spec": spec,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Flows

#[derive(Clone, Debug)]
struct GenFlow {
    from: usize,
    to: usize,
    port: u16,
    protocol: Protocol,
    request: Option<Request>,
}

/// Authorities of generated HTTP requests: the one `host:` rules name, a near miss, and a default one.
const AUTHORITIES: &[&str] = &[
    "api.example.com",
    "api.example.com.evil",
    "backend-api.backend:8080",
];

fn gen_flow(rng: &mut Rng, u: &Universe) -> GenFlow {
    let n = u.ids.len();
    let from = rng.below(n);
    let mut to = rng.below(n);
    if to == from {
        to = (to + 1) % n;
    }
    if rng.chance(6) {
        // ICMP: the port is the type.
        let (protocol, types): (Protocol, &[u16]) = if rng.chance(70) {
            (Protocol::Icmp, &[8, 13, 3, 128])
        } else {
            (Protocol::IcmpV6, &[128, 2, 8])
        };
        return GenFlow {
            from,
            to,
            port: *rng.pick(types),
            protocol,
            request: None,
        };
    }
    let udp = rng.chance(15);
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    let dst_ports: Vec<u16> = u.ids[to].ports.iter().map(|p| p.port).collect();
    let port = if !dst_ports.is_empty() && rng.chance(60) {
        *rng.pick(&dst_ports)
    } else {
        *rng.pick(NUMERIC_PORTS)
    };
    let request = if udp {
        rng.chance(60).then(|| {
            Request::Dns(DnsSpec {
                query: rng.pick(DNS_NAMES).to_string(),
            })
        })
    } else {
        match rng.below(10) {
            0..=3 => {
                let mut headers = BTreeMap::new();
                if rng.chance(40) {
                    headers.insert("Authorization".to_string(), "Bearer x".to_string());
                }
                if rng.chance(15) {
                    headers.insert("X-Token".to_string(), "abc".to_string());
                }
                Some(Request::Http(HttpSpec {
                    method: rng.pick(METHODS).to_string(),
                    path: rng.pick(PATHS).to_string(),
                    headers,
                    body: None,
                    // Sometimes none: a `host:` rule never matches a request without an authority.
                    host: rng.chance(80).then(|| rng.pick(AUTHORITIES).to_string()),
                }))
            }
            4 if rng.chance(60) => {
                // Requests at the proxy's level: keys it decodes, keys it only reads the header of, and
                // topic lists of zero to two topics.
                let n = 1 + rng.below(2);
                Some(Request::KafkaRequests(
                    (0..n)
                        .map(|_| KafkaRequestSpec {
                            api_key: *rng.pick(&[0, 1, 2, 3, 8, 9, 10, 18, 19, 4]),
                            api_version: *rng.pick(&[0, 1, 2]),
                            client_id: rng.pick(CLIENT_IDS).to_string(),
                            topics: (0..rng.below(3))
                                .map(|_| rng.pick(TOPICS).to_string())
                                .collect(),
                        })
                        .collect(),
                ))
            }
            4..=6 => Some(Request::Kafka(KafkaSpec {
                action: if rng.chance(50) {
                    harness::model::kafka::KafkaAction::Produce
                } else {
                    harness::model::kafka::KafkaAction::Consume
                },
                topic: rng.pick(TOPICS).to_string(),
                client_id: rng.pick(CLIENT_IDS).to_string(),
            })),
            7 => Some(Request::Tcp {}),
            _ => None,
        }
    };
    GenFlow {
        from,
        to,
        port,
        protocol,
        request,
    }
}

fn query_json(u: &Universe, id: &str, f: &GenFlow) -> Value {
    let mut q = json!({
        "id": id,
        "from": u.ids[f.from].name,
        "to": u.ids[f.to].name,
        "port": f.port,
        "protocol": f.protocol,
    });
    if let Some(r) = &f.request {
        q["request"] = serde_json::to_value(r).expect("request");
    }
    q
}

// ---------------------------------------------------------------------------------------------------------
// Deciding with both sides

fn policy_text(policies: &[Value]) -> String {
    policies
        .iter()
        .map(|p| serde_json::to_string_pretty(p).expect("json"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

const GEN_FILE: &str = "generated.yaml";

/// The model's side of one case: policy statuses (name, rejected) and a verdict per flow.
type ModelSide = (Vec<(String, bool)>, Vec<Verdict>);

/// The model's side of one case: policy statuses (rejected or not) and verdicts.
/// The numeric ports of `toPorts` entries with L7 rules, anywhere in a policy set.
fn l7_ports(policies: &[Value]) -> Vec<u16> {
    fn walk(v: &Value, out: &mut Vec<u16>) {
        match v {
            Value::Object(m) => {
                if m.contains_key("rules")
                    && let Some(Value::Array(ports)) = m.get("ports")
                {
                    out.extend(
                        ports
                            .iter()
                            .filter_map(|p| p.get("port")?.as_str()?.parse::<u16>().ok()),
                    );
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    policies.iter().for_each(|p| walk(p, &mut out));
    out
}

/// The flows of one policy set: up to half of them chosen among candidates (aimed at the set's L7 ports)
/// that the model sends through the proxy, so that the L7 comparison is exercised; the rest drawn at
/// random. The oracle decides every one of them independently, so the model's choice biases only which
/// flows are asked.
fn pick_flows(rng: &mut Rng, u: &Universe, policies: &[Value]) -> Vec<GenFlow> {
    let mut flows = Vec::with_capacity(FLOWS_PER_SET);
    let hot = l7_ports(policies);
    let model = policy::parse_policies(Path::new(GEN_FILE), &policy_text(policies))
        .ok()
        .map(|parsed| {
            let version = model_version();
            Model::build(&parsed, u.ids.clone(), version)
        });
    if let Some(model) = model.filter(|_| !hot.is_empty()) {
        for _ in 0..FLOWS_PER_SET * 40 {
            if flows.len() >= FLOWS_PER_SET / 2 {
                break;
            }
            let mut f = gen_flow(rng, u);
            if rng.chance(70) {
                f.port = *rng.pick(&hot);
            }
            let d = model.decide(&Flow {
                from: f.from,
                to: f.to,
                port: f.port,
                protocol: f.protocol,
                l7: f.request.as_ref().and_then(Request::l7),
            });
            if d.proxied {
                flows.push(f);
            }
        }
    }
    while flows.len() < FLOWS_PER_SET {
        flows.push(gen_flow(rng, u));
    }
    flows
}

fn model_side(u: &Universe, policies: &[Value], flows: &[GenFlow]) -> Option<ModelSide> {
    let text = policy_text(policies);
    let parsed = policy::parse_policies(Path::new(GEN_FILE), &text).ok()?;
    let version = model_version();
    let model = Model::build(&parsed, u.ids.clone(), version);
    let statuses = model
        .policies
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                matches!(p.status, PolicyStatus::Rejected { .. }),
            )
        })
        .collect();
    let verdicts = flows
        .iter()
        .map(|f| {
            model.explain(&Flow {
                from: f.from,
                to: f.to,
                port: f.port,
                protocol: f.protocol,
                l7: f.request.as_ref().and_then(Request::l7),
            })
        })
        .collect();
    Some((statuses, verdicts))
}

fn batch_case(u: &Universe, id: String, policies: &[Value], flows: &[GenFlow]) -> BatchCase {
    BatchCase {
        id,
        policies: vec![PolicyText {
            file: GEN_FILE.into(),
            text: policy_text(policies),
        }],
        queries: flows
            .iter()
            .enumerate()
            .map(|(i, f)| query_json(u, &format!("q{i}"), f))
            .collect(),
    }
}

/// Disagreements of one flow (and of the policy statuses, reported on every flow).
fn differences(
    statuses: &[(String, bool)],
    verdict: &Verdict,
    answer: &OracleAnswer,
    qi: usize,
) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(e) = &answer.error {
        d.push(format!("oracle error: {e}"));
        return d;
    }
    for (name, rejected) in statuses {
        if let Some(o) = answer.policies.iter().find(|p| &p.name == name)
            && (o.status == "rejected") != *rejected
        {
            d.push(format!(
                "status of {name}: model {}, Cilium {} {}",
                if *rejected { "rejected" } else { "in-force" },
                o.status,
                o.reason.clone().unwrap_or_default()
            ));
        }
    }
    match answer.results.get(qi) {
        Some(r) => match (&r.verdict, &r.error) {
            (Some(o), _) => d.extend(oracle::compare(verdict, o)),
            (None, e) => d.extend(oracle::compare_unanswered(
                verdict,
                e.as_deref().unwrap_or_default(),
            )),
        },
        None => d.push("oracle gave no answer".into()),
    }
    d
}

/// The kind of a disagreement, for grouping and shrinking: the field and both values.
fn signature(diff: &str) -> String {
    match diff.split_once(':') {
        Some((field, rest)) if field.starts_with("status of") => {
            format!("status: {}", rest.trim())
        }
        _ => diff.split(" (").next().unwrap_or(diff).to_string(),
    }
}

/// Disagreements understood and documented: (a substring of the difference, why). Empty: the one kind
/// once listed here (HTTP and Kafka rules for one peer and port, which Cilium refuses to merge) is now
/// modelled (`Verdict::endpoint_policy_error`).
const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[];

/// Why a difference is a known exception, if it is one. Checked against every difference.
fn known_exception(diff: &str) -> Option<&'static str> {
    KNOWN_EXCEPTIONS
        .iter()
        .find(|(pattern, _)| diff.contains(pattern))
        .map(|(_, why)| *why)
}

// ---------------------------------------------------------------------------------------------------------
// Shrinking

/// Every way to make the policy set smaller by one step: drop a policy, an array element or an optional
/// field anywhere below `spec`.
fn shrink_candidates(policies: &[Value]) -> Vec<Vec<Value>> {
    fn walk(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    out.push(path.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(PathStep::Key(k.clone()));
                    if k != "endpointSelector" {
                        out.push(path.clone());
                    }
                    walk(x, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for i in 0..policies.len() {
        if policies.len() > 1 {
            let mut p = policies.to_vec();
            p.remove(i);
            out.push(p);
        }
    }
    for (i, p) in policies.iter().enumerate() {
        let Some(spec) = p.get("spec") else { continue };
        let mut paths = Vec::new();
        walk(spec, &mut Vec::new(), &mut paths);
        for path in paths {
            let mut ps = policies.to_vec();
            if let Some(spec) = ps[i].get_mut("spec")
                && remove_at(spec, &path)
            {
                out.push(ps);
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum PathStep {
    Index(usize),
    Key(String),
}

fn remove_at(v: &mut Value, path: &[PathStep]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parent {
        cur = match (s, cur) {
            (PathStep::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
            (PathStep::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (PathStep::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        (PathStep::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

fn flow_candidates(f: &GenFlow) -> Vec<GenFlow> {
    let mut out = Vec::new();
    if f.request.is_some() {
        out.push(GenFlow {
            request: None,
            ..f.clone()
        });
    }
    if let Some(Request::Http(h)) = &f.request
        && !h.headers.is_empty()
    {
        let mut h2 = h.clone();
        h2.headers.clear();
        out.push(GenFlow {
            request: Some(Request::Http(h2)),
            ..f.clone()
        });
    }
    out
}

/// Shrink a disagreeing (policy set, flow) while the disagreement of the same signature persists.
fn shrink(
    u: &Universe,
    o: &Oracle,
    idpath: &Path,
    mut policies: Vec<Value>,
    mut flow: GenFlow,
    sig: &str,
) -> (Vec<Value>, GenFlow, Vec<String>, Verdict, OracleAnswer) {
    let still = |answers: &[OracleAnswer], cands: &[(Vec<Value>, GenFlow)]| -> Option<usize> {
        for (i, (ps, f)) in cands.iter().enumerate() {
            let Some((st, v)) = model_side(u, ps, std::slice::from_ref(f)) else {
                continue;
            };
            let d = differences(&st, &v[0], &answers[i], 0);
            if d.iter().any(|x| signature(x) == sig) {
                return Some(i);
            }
        }
        None
    };
    for _round in 0..200 {
        let mut cands: Vec<(Vec<Value>, GenFlow)> = shrink_candidates(&policies)
            .into_iter()
            .map(|p| (p, flow.clone()))
            .collect();
        cands.extend(
            flow_candidates(&flow)
                .into_iter()
                .map(|f| (policies.clone(), f)),
        );
        let cands: Vec<(Vec<Value>, GenFlow)> = cands
            .into_iter()
            .filter(|(p, _)| policy::parse_policies(Path::new(GEN_FILE), &policy_text(p)).is_ok())
            .collect();
        if cands.is_empty() {
            break;
        }
        let batch: Vec<BatchCase> = cands
            .iter()
            .enumerate()
            .map(|(i, (p, f))| batch_case(u, format!("s{i}"), p, std::slice::from_ref(f)))
            .collect();
        let Ok(answers) = o.batch(idpath, &batch) else {
            break;
        };
        match still(&answers, &cands) {
            Some(i) => {
                let (p, f) = cands[i].clone();
                policies = p;
                flow = f;
            }
            None => break,
        }
    }
    let (st, v) = model_side(u, &policies, std::slice::from_ref(&flow)).expect("model");
    let answers = o
        .batch(
            idpath,
            &[batch_case(
                u,
                "final".into(),
                &policies,
                std::slice::from_ref(&flow),
            )],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let d = differences(&st, &v[0], &answers[0], 0);
    let verdict = v.into_iter().next().expect("verdict");
    let answer = answers.into_iter().next().expect("answer");
    (policies, flow, d, verdict, answer)
}

/// A regression case ready to commit: the policy file and the query file.
fn regression_text(u: &Universe, policies: &[Value], f: &GenFlow, diff: &[String]) -> String {
    let q = json!({ "queries": [query_json(u, "regression", f)] });
    format!(
        "# {}\n# policies.yaml\n{}\n# queries.yaml\n{}\n",
        diff.join("; "),
        policy_text(policies),
        serde_json::to_string_pretty(&q).expect("json")
    )
}

thread_local! {
    /// The Cilium release the running test compares against (each test runs on its own thread).
    static RELEASE: std::cell::Cell<&'static oracle::Release> =
        const { std::cell::Cell::new(&oracle::RELEASES[0]) };
}

fn model_version() -> CiliumVersion {
    RELEASE.with(|r| r.get().minor.parse().expect("version"))
}

#[test]
fn generated_policies_and_flows_get_the_verdicts_ciliums_engine_gives() {
    generated_differential(&oracle::RELEASES[0], "", DEFAULT_CASES);
}

/// The same on Cilium 1.20 (no Kafka-aware policy: both sides refuse policies with Kafka rules), with
/// fewer cases by default.
#[test]
fn generated_policies_and_flows_get_the_verdicts_ciliums_1_20_engine_gives() {
    let r = oracle::release_for(CiliumVersion::new(1, 20)).expect("a 1.20 build");
    generated_differential(r, "_1_20", DEFAULT_CASES / 5);
}

/// The same on Cilium 1.18 (v1.18.3), with fewer cases by default.
#[test]
fn generated_policies_and_flows_get_the_verdicts_ciliums_1_18_engine_gives() {
    let r = oracle::release_for(CiliumVersion::new(1, 18)).expect("a 1.18 build");
    generated_differential(r, "_1_18", DEFAULT_CASES / 5);
}

/// `HARNESS_ORACLE_CASES{suffix}` and `HARNESS_ORACLE_SEED{suffix}` override the case count and seed.
fn generated_differential(release: &'static oracle::Release, suffix: &str, default_cases: usize) {
    RELEASE.with(|r| r.set(release));
    let cases: usize = std::env::var(format!("HARNESS_ORACLE_CASES{suffix}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed: u64 = std::env::var(format!("HARNESS_ORACLE_SEED{suffix}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let o = Oracle::build(&root(), release).unwrap_or_else(|e| panic!("{e}"));
    let u = Universe::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let idpath = dir.path().join("identities.json");
    std::fs::write(
        &idpath,
        serde_json::to_string_pretty(&oracle::dump_identities(&u.ids)).expect("json"),
    )
    .expect("write");

    let started = Instant::now();
    let mut rng = Rng(seed);
    let sets = cases.div_ceil(FLOWS_PER_SET);
    let mut generated: Vec<(Vec<Value>, Vec<GenFlow>)> = Vec::with_capacity(sets);
    let mut pid = 0;
    while generated.len() < sets {
        let n = 1 + rng.below(3);
        let policies: Vec<Value> = (0..n)
            .map(|_| {
                pid += 1;
                gen_policy(&mut rng, &u, pid)
            })
            .collect();
        let flows = pick_flows(&mut rng, &u, &policies);
        generated.push((policies, flows));
    }
    let batch: Vec<BatchCase> = generated
        .iter()
        .enumerate()
        .map(|(i, (p, f))| batch_case(&u, format!("c{i}"), p, f))
        .collect();
    let answers = o.batch(&idpath, &batch).unwrap_or_else(|e| panic!("{e}"));
    let oracle_done = started.elapsed();

    let mut pairs = 0usize;
    let mut agree = 0usize;
    let mut unparsed = 0usize;
    let mut known: BTreeMap<&'static str, usize> = BTreeMap::new();
    // Pairs whose flow passes the proxy, by request kind: what the L7 comparison covered.
    let mut proxied: BTreeMap<&'static str, usize> = BTreeMap::new();
    // ICMP pairs by the model's decision (allowed ones need an ICMP rule or an L3 allow).
    let mut icmp: BTreeMap<String, usize> = BTreeMap::new();
    // signature -> (count, first example)
    let mut found: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (ci, ((policies, flows), answer)) in generated.iter().zip(&answers).enumerate() {
        let Some((statuses, verdicts)) = model_side(&u, policies, flows) else {
            unparsed += 1;
            continue;
        };
        for (qi, v) in verdicts.iter().enumerate() {
            pairs += 1;
            if matches!(flows[qi].protocol, Protocol::Icmp | Protocol::IcmpV6) {
                *icmp.entry(format!("{:?}", v.decision)).or_default() += 1;
            }
            if v.proxied {
                let kind = match &flows[qi].request {
                    Some(Request::Http(_)) => "http",
                    Some(Request::Kafka(_)) => "kafka",
                    Some(Request::KafkaRequests(_)) => "kafkaRequests",
                    Some(Request::Dns(_)) => "dns",
                    _ => "other",
                };
                *proxied.entry(kind).or_default() += 1;
            }
            let d = differences(&statuses, v, answer, qi);
            let mut unexplained = Vec::new();
            for x in &d {
                match known_exception(x) {
                    Some(why) => *known.entry(why).or_default() += 1,
                    None => unexplained.push(x.clone()),
                }
            }
            if d.is_empty() {
                agree += 1;
            }
            for x in unexplained {
                found.entry(signature(&x)).or_insert((0, ci, qi)).0 += 1;
            }
        }
    }
    let with_diff: usize = found.values().map(|(n, _, _)| *n).sum();
    eprintln!(
        "oracle differential (Cilium {}, seed {seed}): {pairs} (policy set, flow) pairs over {} policy sets; {agree} agree ({:.3}%); {} known exceptions; {with_diff} unexplained differences in {} kinds; {unparsed} sets the harness could not parse; oracle {:.1}s, total {:.1}s",
        release.release,
        generated.len(),
        100.0 * agree as f64 / pairs.max(1) as f64,
        known.values().sum::<usize>(),
        found.len(),
        oracle_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for (why, n) in &known {
        eprintln!("  known exception ({n}): {why}");
    }
    eprintln!("  pairs through the proxy, by request: {proxied:?}; ICMP pairs: {icmp:?}");
    assert!(
        pairs >= cases.min(DEFAULT_CASES) * 9 / 10,
        "only {pairs} pairs were decided by both sides"
    );
    if found.is_empty() {
        // The L7 comparison must be exercised for every kind of request the proxy parses.
        for kind in ["http", "kafka", "kafkaRequests", "dns"] {
            assert!(
                proxied.get(kind).copied().unwrap_or(0) >= pairs / 10_000,
                "the generator reached L7 rules with too few `{kind}` requests: {proxied:?}"
            );
        }
        assert!(
            icmp.len() == 2 && icmp.values().all(|n| *n >= pairs / 10_000),
            "too few ICMP pairs allowed and denied: {icmp:?}"
        );
        return;
    }
    let mut report = String::new();
    for (sig, (n, ci, qi)) in found.iter().take(8) {
        let (policies, flows) = &generated[*ci];
        let (p, f, d, v, a) = shrink(&u, &o, &idpath, policies.clone(), flows[*qi].clone(), sig);
        report.push_str(&format!(
            "\n=== {n} x {sig}\nmodel: {}\nCilium: {}\n{}",
            v.explanation,
            serde_json::to_string(&a.results.first().map(|r| &r.verdict)).unwrap_or_default(),
            regression_text(&u, &p, &f, &d)
        ));
    }
    panic!("the model and Cilium's policy engine disagree (seed {seed}); minimal cases:\n{report}");
}
