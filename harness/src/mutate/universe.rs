//! Every flow the stack can produce, as equivalence classes, and the exhaustive comparison of two models.
//!
//! A mutant is *equivalent* only when no flow gets a different verdict. The flows compared are:
//! - every source × every destination of the model's identities (pods, outside hosts, host, remote node,
//!   API server), except a pod to itself and pairs with no pod (no policy applies to those);
//! - every port class: each port any policy (original or mutant), named container port or scenario names,
//!   plus one port of every gap between them (the model cannot tell two ports of one gap apart), so every
//!   port 1-65535 is covered;
//! - TCP, UDP and SCTP (`ANY` covers exactly these);
//! - on ports where no L7 rule applies, one flow (nothing is proxied, so the request cannot matter); on
//!   ports where some L7 rule applies: no request, an opaque stream (TLS, PostgreSQL), and one request
//!   of every class the rules distinguish: HTTP methods, paths and hosts built from the literals of the
//!   rules' regexes (each literal, and each literal followed by a character no other literal continues
//!   with), every header presence/value combination the rules name, every Kafka API key 0-33 (and one
//!   unknown) × every client id and topic the rules name (and one other, and no topic) × every pinned
//!   API version, every DNS name the rules name (and one other).
//!
//! The request classes are exact for regexes made of literals, optionally ending in `.*` or `.+`, and for
//! alternations of such literals (`GET|HEAD`), which is what policies are written with. When a rule uses any
//! other regex or DNS pattern, the classes could miss a request, so the comparison cannot prove
//! equivalence: such a mutant with no difference found is reported as survived, with that reason, never as
//! equivalent.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::http::{HttpRequest, parse_header_entry};
use crate::model::kafka::KafkaRequest;
use crate::model::{Decision, FastDecision, Flow, IdentityId, IdentityKind, L7Request, Model};
use crate::policy::{HttpRule, KafkaRule, L7Rules, Policy, PortRule, PortSpec, Protocol};

/// The L7 families a port rule can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Http,
    Kafka,
    Dns,
}

/// Ports (of any protocol given) where an L7 family applies.
#[derive(Debug, Clone, Default)]
struct L7Ports {
    every_port: bool,
    /// (first, last, protocol) ranges; `Any` for any protocol.
    ranges: Vec<(u16, u16, Protocol)>,
}

impl L7Ports {
    fn covers(&self, port: u16, proto: Protocol) -> bool {
        self.every_port
            || self
                .ranges
                .iter()
                .any(|(a, b, p)| (*a..=*b).contains(&port) && (*p == Protocol::Any || *p == proto))
    }
}

/// The flows of a stack for a set of policies.
pub struct Universe {
    /// (source, destination) pairs.
    pub pairs: Vec<(IdentityId, IdentityId)>,
    /// One port of every port class, ascending.
    pub ports: Vec<u16>,
    /// The ports something names (a policy, a container port, a scenario), as opposed to gap ports.
    pub named_ports: BTreeSet<u16>,
    /// The request classes per (port, protocol), built once.
    cache: BTreeMap<(u16, Protocol), Vec<Option<L7Request>>>,
    pub protocols: Vec<Protocol>,
    l7_ports: BTreeMap<Family, L7Ports>,
    pub http: Vec<HttpRequest>,
    pub kafka: Vec<KafkaRequest>,
    pub dns: Vec<String>,
    /// Literals for proposals: topics, client ids.
    pub topics: Vec<String>,
    pub clients: Vec<String>,
    /// Why the request classes are not exact, if they are not.
    pub unprovable: Option<String>,
}

/// The comparable part of a verdict: what a client or Hubble can see (whether the flow is proxied is
/// visibility, not a verdict, and is not compared).
pub fn key_of(
    d: &FastDecision,
) -> (
    Decision,
    Option<crate::model::Layer>,
    Option<crate::model::Direction>,
    Option<crate::model::DropReason>,
    probe_wire::Outcome,
    Option<String>,
) {
    (
        d.decision,
        d.layer,
        d.direction,
        d.drop_reason,
        d.outcome,
        d.denied_kafka_key.clone(),
    )
}

/// Whether two verdicts differ in what a scenario's intent can state (decision, layer, direction).
pub fn judgeably_different(a: &FastDecision, b: &FastDecision) -> bool {
    a.decision != b.decision || a.layer != b.layer || a.direction != b.direction
}

fn port_rules(p: &Policy) -> impl Iterator<Item = &PortRule> {
    p.rules.iter().flat_map(|r| {
        r.ingress
            .iter()
            .flatten()
            .flat_map(|e| e.to_ports.iter().flatten())
            .chain(
                r.egress
                    .iter()
                    .flatten()
                    .flat_map(|e| e.to_ports.iter().flatten()),
            )
    })
}

/// Every port number a policy names (ports, end ports, named ports resolved against every identity).
fn policy_ports(p: &Policy, named: &BTreeMap<String, BTreeSet<u16>>, out: &mut BTreeSet<u16>) {
    let mut add = |pp: &crate::policy::PortProtocol| {
        match &pp.port {
            Some(PortSpec::Number(n)) => {
                out.insert(*n);
            }
            Some(PortSpec::Named(name)) => {
                out.extend(named.get(name).into_iter().flatten());
            }
            None => {}
        }
        if let Some(e) = pp.end_port {
            out.insert(e);
        }
    };
    for r in &p.rules {
        for pr in r
            .ingress
            .iter()
            .flatten()
            .flat_map(|e| e.to_ports.iter().flatten())
            .chain(
                r.egress
                    .iter()
                    .flatten()
                    .flat_map(|e| e.to_ports.iter().flatten()),
            )
        {
            pr.ports.iter().flatten().for_each(&mut add);
        }
        for pr in r
            .ingress_deny
            .iter()
            .flatten()
            .flat_map(|e| e.to_ports.iter().flatten())
            .chain(
                r.egress_deny
                    .iter()
                    .flatten()
                    .flat_map(|e| e.to_ports.iter().flatten()),
            )
        {
            pr.ports.iter().flatten().for_each(&mut add);
        }
    }
}

/// Whether a regex is a literal, optionally ending in `.*`/`.+`, or an alternation of such literals.
/// Returns the literals and whether each may be extended.
fn simple_alternatives(source: &str) -> Option<Vec<(String, bool)>> {
    if source.contains(['(', ')', '[', ']']) {
        return None;
    }
    let mut out = Vec::new();
    for alt in source.split('|') {
        let (lit, open) = match alt.strip_suffix(".*").or_else(|| alt.strip_suffix(".+")) {
            Some(l) => (l, true),
            None => (alt, false),
        };
        if lit.contains(['\\', '.', '+', '*', '?', '{', '}', '^', '$']) {
            return None;
        }
        out.push((lit.to_string(), open));
    }
    Some(out)
}

/// One value of every class a set of literal regexes distinguishes: each literal, each literal followed
/// by a character no longer literal continues it with, and the empty string.
fn representatives(literals: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut bases: BTreeSet<&str> = literals.iter().map(String::as_str).collect();
    bases.insert("");
    for base in bases {
        out.insert(base.to_string());
        let next: BTreeSet<char> = literals
            .iter()
            .filter(|l| l.len() > base.len() && l.starts_with(base))
            .filter_map(|l| l[base.len()..].chars().next())
            .collect();
        if let Some(c) = ['x', 'z', 'q', '0', '~', '_', '9']
            .into_iter()
            .find(|c| !next.contains(c))
        {
            out.insert(format!("{base}{c}"));
        }
    }
    out
}

impl Universe {
    /// The universe of `model`'s identities for every policy set in `policy_sets` (the original and all
    /// mutants: a larger set of classes never hides a difference), plus the ports the scenarios name.
    pub fn build<'a>(
        model: &Model,
        policy_sets: impl IntoIterator<Item = &'a Policy>,
        scenario_ports: impl IntoIterator<Item = u16>,
    ) -> Universe {
        let ids = &model.identities;
        let mut named: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        let mut critical: BTreeSet<u16> = BTreeSet::new();
        for id in ids {
            for p in &id.ports {
                critical.insert(p.port);
                if let Some(n) = &p.name {
                    named
                        .entry(n.to_ascii_lowercase())
                        .or_default()
                        .insert(p.port);
                }
            }
        }
        critical.extend(scenario_ports);
        let mut unprovable: Option<String> = None;
        let mut l7_ports: BTreeMap<Family, L7Ports> = BTreeMap::new();
        let mut methods: BTreeSet<String> =
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .into_iter()
                .map(str::to_string)
                .collect();
        let mut paths: BTreeSet<String> = BTreeSet::new();
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        let mut has_host = false;
        let mut headers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut kafka_rules: Vec<KafkaRule> = Vec::new();
        let mut dns_names: BTreeSet<String> = BTreeSet::new();
        let mut note = |why: String| {
            if unprovable.is_none() {
                unprovable = Some(why);
            }
        };
        for p in policy_sets {
            policy_ports(p, &named, &mut critical);
            for pr in port_rules(p) {
                let Some(rules) = &pr.rules else { continue };
                let fams = families(rules);
                for fam in fams {
                    let entry = l7_ports.entry(fam).or_default();
                    let ports = pr.ports.as_deref().unwrap_or_default();
                    if ports.is_empty() {
                        entry.every_port = true;
                    }
                    for pp in ports {
                        let proto = pp.protocol.unwrap_or(Protocol::Any);
                        match &pp.port {
                            None | Some(PortSpec::Number(0)) => entry.every_port = true,
                            Some(PortSpec::Number(n)) => {
                                let end = pp.end_port.filter(|e| e >= n).unwrap_or(*n);
                                entry.ranges.push((*n, end, proto));
                            }
                            Some(PortSpec::Named(name)) => {
                                for n in named.get(name).into_iter().flatten() {
                                    entry.ranges.push((*n, *n, Protocol::Any));
                                }
                            }
                        }
                    }
                }
                for h in rules.http.iter().flatten() {
                    collect_http(
                        h,
                        &mut methods,
                        &mut paths,
                        &mut hosts,
                        &mut has_host,
                        &mut headers,
                        &mut note,
                    );
                }
                kafka_rules.extend(rules.kafka.iter().flatten().cloned());
                for d in rules.dns.iter().flatten() {
                    if let Some(n) = &d.match_name {
                        dns_names.insert(n.trim_end_matches('.').to_ascii_lowercase());
                    }
                    if let Some(pat) = &d.match_pattern {
                        if pat != "*" && pat.contains('*') {
                            note(format!("the DNS pattern `{pat}` is not a literal"));
                        }
                        dns_names.insert(
                            pat.replace('*', "x")
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        );
                    }
                }
                if rules.l7proto.is_some() || rules.l7.is_some() {
                    note("proxylib rules (`l7proto`, `l7`) are not evaluated".into());
                }
            }
        }
        // Ports: every critical port and one port of every gap between them.
        critical.remove(&0);
        let mut ports: BTreeSet<u16> = critical.clone();
        let mut prev: u32 = 0;
        for &c in critical.iter().chain(std::iter::once(&u16::MAX)) {
            if u32::from(c) > prev + 1 {
                ports.insert((prev + 1) as u16);
            }
            prev = u32::from(c);
        }
        if !critical.contains(&u16::MAX) && prev < u32::from(u16::MAX) {
            ports.insert(u16::MAX);
        }
        // HTTP requests.
        let method_reps = representatives(&methods);
        let path_reps = representatives(&paths);
        let host_reps: Vec<Option<String>> = if has_host {
            std::iter::once(None)
                .chain(representatives(&hosts).into_iter().map(Some))
                .collect()
        } else {
            vec![None]
        };
        let mut header_sets: Vec<Vec<(String, String)>> = vec![Vec::new()];
        if headers.len() > 4 {
            note("more than four header names are named by the rules".into());
        }
        for (name, values) in headers.iter().take(4) {
            let mut next = Vec::new();
            for set in &header_sets {
                next.push(set.clone());
                let mut choices: Vec<String> = values.iter().cloned().collect();
                choices.push("harness-other-value".into());
                for v in choices {
                    let mut s = set.clone();
                    s.push((name.clone(), v));
                    next.push(s);
                }
            }
            header_sets = next;
        }
        let mut http = Vec::new();
        if l7_ports.contains_key(&Family::Http) {
            for m in &method_reps {
                for p in &path_reps {
                    for h in &host_reps {
                        for hs in &header_sets {
                            http.push(HttpRequest {
                                method: m.clone(),
                                path: p.clone(),
                                host: h.clone(),
                                headers: hs.clone(),
                            });
                        }
                    }
                }
            }
        }
        // Kafka requests: one request per session (a session is denied at its first denied request).
        let mut topics: BTreeSet<String> =
            kafka_rules.iter().filter_map(|r| r.topic.clone()).collect();
        let mut clients: BTreeSet<String> = kafka_rules
            .iter()
            .filter_map(|r| r.client_id.clone())
            .collect();
        let versions: BTreeSet<i16> = kafka_rules.iter().filter_map(|r| r.api_version).collect();
        let mut version_reps: Vec<Option<i16>> = vec![None];
        for v in &versions {
            version_reps.push(Some(*v));
            if !versions.contains(&(v + 1)) {
                version_reps.push(Some(v + 1));
            }
        }
        topics.insert("harness-other-topic".into());
        clients.insert("harness-other-client".into());
        let mut kafka = Vec::new();
        if l7_ports.contains_key(&Family::Kafka) {
            for key in 0..=34i16 {
                for c in &clients {
                    for v in &version_reps {
                        for t in topics.iter().map(Some).chain(std::iter::once(None)) {
                            kafka.push(KafkaRequest {
                                api_key: key,
                                api_version: *v,
                                client_id: c.clone(),
                                topics: t.into_iter().cloned().collect(),
                            });
                        }
                    }
                }
            }
        }
        dns_names.insert("harness-other.example.com".into());
        let dns = if l7_ports.contains_key(&Family::Dns) {
            dns_names.iter().cloned().collect()
        } else {
            Vec::new()
        };
        let mut pairs = Vec::new();
        for (a, ia) in ids.iter().enumerate() {
            for (b, ib) in ids.iter().enumerate() {
                if a == b || (ia.kind != IdentityKind::Pod && ib.kind != IdentityKind::Pod) {
                    continue;
                }
                pairs.push((a, b));
            }
        }
        let mut u = Universe {
            pairs,
            ports: ports.into_iter().collect(),
            named_ports: critical,
            cache: BTreeMap::new(),
            protocols: vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            l7_ports,
            http,
            kafka,
            dns,
            topics: topics.into_iter().collect(),
            clients: clients.into_iter().collect(),
            unprovable,
        };
        let mut cache = BTreeMap::new();
        for &p in &u.ports {
            for &pr in &u.protocols {
                cache.insert((p, pr), u.requests(p, pr));
            }
        }
        u.cache = cache;
        u
    }

    /// The request classes of a port and protocol of the universe (built once).
    pub fn requests_of(&self, port: u16, proto: Protocol) -> &[Option<L7Request>] {
        self.cache.get(&(port, proto)).map_or(&[], Vec::as_slice)
    }

    /// The L7 requests to try on a port: none, opaque, and every class of each family that applies.
    pub fn requests(&self, port: u16, proto: Protocol) -> Vec<Option<L7Request>> {
        let covers = |f: Family| self.l7_ports.get(&f).is_some_and(|p| p.covers(port, proto));
        // Where no L7 rule applies, nothing is proxied and the request cannot change a verdict.
        if ![Family::Http, Family::Kafka, Family::Dns]
            .into_iter()
            .any(covers)
        {
            return vec![None];
        }
        let mut out = vec![None, Some(L7Request::Opaque)];
        if covers(Family::Http) {
            out.extend(self.http.iter().cloned().map(|r| Some(L7Request::Http(r))));
        }
        if covers(Family::Kafka) {
            out.extend(
                self.kafka
                    .iter()
                    .cloned()
                    .map(|r| Some(L7Request::Kafka(vec![r]))),
            );
        }
        if covers(Family::Dns) {
            out.extend(self.dns.iter().cloned().map(|n| Some(L7Request::Dns(n))));
        }
        out
    }

    /// Number of flows (with their request classes) the universe holds.
    pub fn size(&self) -> usize {
        let per_pair: usize = self
            .ports
            .iter()
            .flat_map(|p| self.protocols.iter().map(move |pr| (*p, *pr)))
            .map(|(p, pr)| self.requests_of(p, pr).len())
            .sum();
        per_pair * self.pairs.len()
    }
}

fn families(r: &L7Rules) -> Vec<Family> {
    let mut v = Vec::new();
    if r.http.is_some() {
        v.push(Family::Http);
    } else if r.kafka.is_some() {
        v.push(Family::Kafka);
    } else if r.dns.is_some() {
        v.push(Family::Dns);
    }
    v
}

fn collect_http(
    h: &HttpRule,
    methods: &mut BTreeSet<String>,
    paths: &mut BTreeSet<String>,
    hosts: &mut BTreeSet<String>,
    has_host: &mut bool,
    headers: &mut BTreeMap<String, BTreeSet<String>>,
    note: &mut impl FnMut(String),
) {
    let mut lits = |re: &Option<crate::policy::PolicyRegex>,
                    into: &mut BTreeSet<String>,
                    what: &str| {
        if let Some(r) = re {
            match simple_alternatives(&r.source) {
                Some(alts) => into.extend(alts.into_iter().map(|(l, _)| l)),
                None => {
                    note(format!(
                        "the {what} regex `{}` is not a literal (optionally ending in .* or .+)",
                        r.source
                    ));
                    // A regex that matches its own text (`api.backend:8080`, whose dots match
                    // any character) still gives the request its author meant as a representative.
                    if r.full_match(&r.source) {
                        into.insert(r.source.clone());
                    }
                }
            }
        }
    };
    lits(&h.method, methods, "method");
    lits(&h.path, paths, "path");
    if h.host.is_some() {
        *has_host = true;
    }
    lits(&h.host, hosts, "host");
    for e in h.headers.iter().flatten() {
        let c = parse_header_entry(e);
        let vals = headers.entry(c.name.to_ascii_lowercase()).or_default();
        if let Some(v) = c.value {
            vals.insert(v);
        }
    }
    for m in h.header_matches.iter().flatten() {
        let vals = headers.entry(m.name.to_ascii_lowercase()).or_default();
        if let Some(v) = &m.value {
            vals.insert(v.clone());
        }
    }
}

/// One flow on which two models disagree.
#[derive(Debug, Clone)]
pub struct Difference {
    pub flow: Flow,
    pub original: FastDecision,
    pub mutant: FastDecision,
}

/// The outcome of comparing two models over a universe.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Flows compared.
    pub flows: usize,
    /// Flows with a different verdict.
    pub differing: usize,
    /// A deny became an allow somewhere.
    pub widens: bool,
    /// An allow became a deny somewhere.
    pub narrows: bool,
    /// (source, destination, port, protocol) tuples where decision, layer or direction differ.
    pub judgeable: Vec<(IdentityId, IdentityId, u16, Protocol, bool)>,
    /// The first differences, for reports.
    pub examples: Vec<Difference>,
}

/// Compare two models (over the same identities) on every flow of the universe.
pub fn compare(u: &Universe, original: &Model, mutant: &Model) -> Comparison {
    let mut c = Comparison::default();
    for &port in &u.ports {
        for &protocol in &u.protocols {
            // The flows of this port and protocol, built once; only their endpoints change below.
            let mut flows: Vec<Flow> = u
                .requests_of(port, protocol)
                .iter()
                .map(|l7| Flow {
                    from: 0,
                    to: 0,
                    port,
                    protocol,
                    l7: l7.clone(),
                })
                .collect();
            for &(from, to) in &u.pairs {
                let mut judgeable = false;
                let mut widening = false;
                for flow in &mut flows {
                    flow.from = from;
                    flow.to = to;
                    c.flows += 1;
                    let a = original.decide(flow);
                    let b = mutant.decide(flow);
                    if key_of(&a) == key_of(&b) {
                        continue;
                    }
                    c.differing += 1;
                    let w = a.decision == Decision::Deny && b.decision == Decision::Allow;
                    let n = a.decision == Decision::Allow && b.decision == Decision::Deny;
                    c.widens |= w;
                    c.narrows |= n;
                    widening |= w;
                    judgeable |= judgeably_different(&a, &b);
                    if c.examples.len() < 5 {
                        c.examples.push(Difference {
                            flow: flow.clone(),
                            original: a,
                            mutant: b,
                        });
                    }
                }
                if judgeable {
                    c.judgeable.push((from, to, port, protocol, widening));
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_separate_every_literal_prefix_class() {
        let lits: BTreeSet<String> = ["/api/v1/", "/api/"]
            .into_iter()
            .map(str::to_string)
            .collect();
        let r = representatives(&lits);
        for want in ["", "x", "/api/", "/api/x", "/api/v1/", "/api/v1/x"] {
            assert!(r.contains(want), "{want} missing from {r:?}");
        }
        // `/api/` continues with `v` for the longer literal, so its representative avoids `v`.
        assert!(!r.contains("/api/v"));
    }

    #[test]
    fn only_literal_regexes_are_simple() {
        assert_eq!(
            simple_alternatives("/api/v1/.*"),
            Some(vec![("/api/v1/".to_string(), true)])
        );
        assert_eq!(simple_alternatives("GET|HEAD").map(|v| v.len()), Some(2));
        assert!(simple_alternatives("/api/v[0-9]+/.*").is_none());
        assert!(simple_alternatives("/index.html").is_none());
    }
}
