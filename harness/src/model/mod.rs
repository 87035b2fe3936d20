//! The model of Cilium's policy semantics.
//!
//! [`Model::build`] compiles a set of policies against the stack's identities for one Cilium version;
//! [`Model::decide`] decides one flow fast (no text), and [`Model::explain`] decides it and says why, in a
//! sentence a person can act on. Every rule of Cilium the model follows is cited from
//! `../shared/docs/cilium-semantics.md` (§ numbers) where it is implemented.
//!
//! # Caveats
//! - Only pods are policy subjects; host policies (`nodeSelector`) are parsed but not evaluated.
//! - FQDN, service, node and group peers, TLS interception and authentication are parsed and
//!   treated as matching none of the stack's peers; a decision they could have changed carries a note.
//! - Reply traffic is never policy-checked (§6, §9), so the model decides only the direction a flow is
//!   initiated in.

pub mod http;
pub mod kafka;
pub mod labels;
pub mod version;

use std::fmt::Write as _;
use std::net::IpAddr;

use probe_wire::Outcome;
use serde::{Deserialize, Serialize};

use crate::policy::{
    CidrRule, DnsRule, Entity, HttpRule, IcmpFamily, IcmpRule, IcmpType, KafkaRule, Policy,
    PortDenyRule, PortProtocol, PortRule, PortSpec, Protocol, Rule, Selector,
};
use crate::stack::{NamedPort, Stack};
use http::HttpRequest;
use kafka::KafkaRequest;
use labels::{CompiledSelector, LabelSet, show_selector};
pub use version::{CiliumVersion, DEFAULT_VERSION};

/// The cluster name of the stack's pods (Cilium's default `cluster.name`).
pub const CLUSTER_NAME: &str = "default";

// ---------------------------------------------------------------------------------------------------------
// Identities

/// What kind of peer an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// A Cilium-managed pod.
    Pod,
    /// An address outside the cluster (`reserved:world`, with CIDR labels).
    World,
    /// The local node.
    Host,
    /// Another node of the cluster.
    RemoteNode,
    /// The Kubernetes API server.
    KubeApiserver,
}

/// One peer the model knows.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `namespace/name` for a pod, the host name for an outside host, the entity name otherwise.
    pub name: String,
    pub kind: IdentityKind,
    pub labels: LabelSet,
    pub ip: Option<IpAddr>,
    /// Named container ports (pods).
    pub ports: Vec<NamedPort>,
}

/// A reference to an identity of the model.
pub type IdentityId = usize;

// ---------------------------------------------------------------------------------------------------------
// Flows and verdicts

/// An L7 request carried by a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Request {
    Http(HttpRequest),
    /// The Kafka requests of one client session, in order.
    Kafka(Vec<KafkaRequest>),
    /// A DNS query for a name.
    Dns(String),
    /// A protocol the proxy does not parse (PostgreSQL, TLS): connect and exchange bytes.
    Opaque,
}

/// One flow to decide: a connection (or datagram) from one identity to another.
#[derive(Debug, Clone)]
pub struct Flow {
    pub from: IdentityId,
    pub to: IdentityId,
    pub port: u16,
    pub protocol: Protocol,
    pub l7: Option<L7Request>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// Where a deny happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Dropped in the datapath: the client never connects.
    L4,
    /// Refused by the L7 proxy after the connection was made.
    L7,
}

/// The direction of enforcement: egress at the source, ingress at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn idx(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }
    fn section(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Hubble's drop reason for a policy drop (§8, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DropReason {
    /// 133: no allow rule matched (default deny).
    PolicyDenied,
    /// 181: an explicit ingressDeny/egressDeny rule matched.
    PolicyDeny,
}

impl DropReason {
    pub fn code(self) -> u32 {
        match self {
            DropReason::PolicyDenied => 133,
            DropReason::PolicyDeny => 181,
        }
    }
}

/// The fast result of [`Model::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastDecision {
    pub decision: Decision,
    pub layer: Option<Layer>,
    pub direction: Option<Direction>,
    pub drop_reason: Option<DropReason>,
    pub outcome: Outcome,
    /// Whether the flow goes through Cilium's L7 proxy (Hubble then shows L7 flows).
    pub proxied: bool,
    /// The rules that decided: (rule index, element index) of the model.
    pub deciding: Vec<(usize, usize)>,
    /// For an L7 deny of a Kafka session: the API key name of the request that was refused.
    pub denied_kafka_key: Option<String>,
}

/// A decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    /// For a deny: where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// For a deny: at the source's egress or the destination's ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// For an L3/L4 deny: Hubble's drop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<DropReason>,
    /// What the client should see.
    pub expected_outcome: Outcome,
    /// Whether the flow passes Cilium's L7 proxy.
    pub proxied: bool,
    /// The policies that decided (`namespace/name`); empty when no policy applies.
    pub policies: Vec<String>,
    /// One line a person can act on.
    pub explanation: String,
    /// Further facts that matter for this flow (unmodelled fields, rejected policies, caveats).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// For an L7 deny of a Kafka session: the API key name of the request the proxy refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_kafka_key: Option<String>,
    /// Set when Cilium cannot compute the policy of an endpoint of the flow (§2, conflicting L7 parsers):
    /// the agent refuses to regenerate that endpoint and keeps its previous policy, so the decision above
    /// (what the rules would say) is not what the datapath does, and no verdict can be predicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_policy_error: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------
// Compiled policies

/// Whether a policy is in force on the modelled Cilium version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PolicyStatus {
    InForce,
    /// Rejected: a strict apply fails, or the agent refuses it; it has no effect.
    Rejected {
        reason: String,
    },
}

/// A loaded policy and its status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub file: String,
    pub line: u64,
    #[serde(flatten)]
    pub status: PolicyStatus,
    /// Warnings about the policy as written (things that do not do what they seem to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
enum Peer {
    Endpoints {
        written: Selector,
        compiled: CompiledSelector,
        /// The selector as written, without namespace defaulting (for near-miss hints).
        unscoped: CompiledSelector,
        namespace_added: Option<String>,
    },
    Cidr {
        cidr: ipnet::IpNet,
        except: Vec<ipnet::IpNet>,
    },
    Entity(Entity),
    /// A peer kind the model does not evaluate (FQDNs, services, nodes, groups, CIDR group references).
    Unmodelled(&'static str),
}

#[derive(Debug, Clone)]
enum L7 {
    None,
    Http(Vec<HttpRule>),
    Kafka(Vec<KafkaRule>),
    Dns(Vec<DnsRule>),
    /// proxylib `l7proto` or generic `l7` rules: not evaluated.
    Other,
}

#[derive(Debug, Clone)]
struct PortMatch {
    port: PortSpec,
    end_port: Option<u16>,
    protocol: Protocol,
}

#[derive(Debug, Clone)]
struct PortGroup {
    /// Empty: any port, any protocol.
    ports: Vec<PortMatch>,
    l7: L7,
}

#[derive(Debug, Clone)]
struct Element {
    /// `None`: no peer field was written (every peer, when ports are given).
    peers: Option<Vec<Peer>>,
    /// `None`: no `toPorts` (every port).
    groups: Option<Vec<PortGroup>>,
    /// Per identity: whether the element's peers match it.
    peer_bits: Vec<u64>,
    unmodelled: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    policy: usize,
    /// The subject selector after Cilium's namespace rewriting.
    subject: CompiledSelector,
    /// [ingress, egress] allow elements.
    allow: [Vec<Element>; 2],
    /// [ingress, egress] deny elements.
    deny: [Vec<Element>; 2],
    /// Whether the rule switches the direction to default deny.
    default_deny: [bool; 2],
    /// Whether the rule has any element in the direction (allow or deny).
    has_direction: [bool; 2],
    /// Whether a section was written but empty (`egress: []`).
    empty_written: [bool; 2],
}

/// The compiled model.
pub struct Model {
    pub version: CiliumVersion,
    pub identities: Vec<Identity>,
    pub policies: Vec<PolicyInfo>,
    rules: Vec<CompiledRule>,
    /// Per identity: indices of the rules whose subject selects it.
    selected_by: Vec<Vec<usize>>,
    /// Policies with a nodeSelector (host policies), not evaluated.
    host_policies: Vec<usize>,
    /// The named ports an egress rule can resolve: every pod's, by (name, protocol), when the name means
    /// one port cluster-wide (see [`Model::named_ports`]).
    egress_named_ports: Vec<NamedPort>,
    /// Per identity: why Cilium cannot compute its policy, if it cannot ([`l7_parser_conflict`]).
    endpoint_errors: Vec<Option<String>>,
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

impl Model {
    /// The identities of a stack: its workloads (pods), its outside hosts (world), and the host, a remote
    /// node and the API server.
    pub fn identities_of(stack: &Stack) -> Vec<Identity> {
        let mut ids = Vec::new();
        for w in &stack.workloads {
            ids.push(Identity {
                name: w.id(),
                kind: IdentityKind::Pod,
                labels: LabelSet::for_pod(
                    &w.namespace,
                    &w.labels,
                    &stack.namespace_labels(&w.namespace),
                    &w.service_account,
                    CLUSTER_NAME,
                ),
                ip: None,
                ports: w.ports.clone(),
            });
        }
        for h in &stack.outside {
            ids.push(Identity::world(&h.name, h.ip));
        }
        for (name, kind, label) in [
            ("host", IdentityKind::Host, "host"),
            ("remote-node", IdentityKind::RemoteNode, "remote-node"),
            (
                "kube-apiserver",
                IdentityKind::KubeApiserver,
                "kube-apiserver",
            ),
        ] {
            let mut l = LabelSet::default();
            l.add("reserved", label, "");
            ids.push(Identity {
                name: name.into(),
                kind,
                labels: l,
                ip: None,
                ports: Vec::new(),
            });
        }
        ids
    }

    /// Compile `policies` against `identities` for `version`.
    pub fn build(policies: &[Policy], identities: Vec<Identity>, version: CiliumVersion) -> Model {
        let mut infos = Vec::new();
        let mut rules = Vec::new();
        let mut host_policies = Vec::new();
        for (pi, p) in policies.iter().enumerate() {
            let status = policy_status(p, version);
            let warnings = policy_warnings(p, version);
            infos.push(PolicyInfo {
                name: p.qualified_name(),
                file: p.file.display().to_string(),
                line: p.line,
                status: status.clone(),
                warnings,
            });
            if status != PolicyStatus::InForce {
                continue;
            }
            for r in &p.rules {
                if r.node_selector.is_some() {
                    host_policies.push(pi);
                    continue;
                }
                rules.push(compile_rule(p, pi, r, &identities));
            }
        }
        let egress_named_ports = egress_named_ports(&identities);
        let mut selected_by = vec![Vec::new(); identities.len()];
        for (ri, rule) in rules.iter().enumerate() {
            for (ii, id) in identities.iter().enumerate() {
                if id.kind == IdentityKind::Pod && rule.subject.matches(&id.labels) {
                    selected_by[ii].push(ri);
                }
            }
        }
        let endpoint_errors = (0..identities.len())
            .map(|i| l7_parser_conflict(&rules, &selected_by[i], policies))
            .collect();
        Model {
            version,
            identities,
            policies: infos,
            rules,
            selected_by,
            host_policies,
            egress_named_ports,
            endpoint_errors,
        }
    }

    /// Why Cilium cannot compute the policy of `endpoint`, if it cannot (conflicting L7 parsers).
    pub fn endpoint_policy_error(&self, endpoint: IdentityId) -> Option<&str> {
        self.endpoint_errors.get(endpoint)?.as_deref()
    }

    /// Find an identity by name.
    pub fn identity(&self, name: &str) -> Option<IdentityId> {
        self.identities.iter().position(|i| i.name == name)
    }

    fn rule_policy(&self, rule: usize) -> &str {
        &self.policies[self.rules[rule].policy].name
    }

    /// Whether a direction of an endpoint is enforced, and whether it is default-deny (§9, §4).
    fn enforcement(&self, endpoint: IdentityId, dir: Direction) -> (bool, bool) {
        let d = dir.idx();
        let mut has = false;
        let mut default_deny = false;
        for &r in &self.selected_by[endpoint] {
            let rule = &self.rules[r];
            if rule.has_direction[d] {
                has = true;
                default_deny |= rule.default_deny[d];
            }
        }
        (has, default_deny)
    }

    /// The named ports a rule of `endpoint`'s `dir` resolves against. At ingress: the endpoint's own
    /// container ports. At egress: the named ports of every pod of the cluster, where a name means one port
    /// only if every pod that declares it (for that protocol) gives it the same number; the destination's
    /// own ports do not matter, and an ambiguous name matches nothing (Cilium's `GetNamedPort` for egress,
    /// `NamedPortMultiMap`; found by the differential oracle).
    fn named_ports(&self, endpoint: IdentityId, dir: Direction, peer: IdentityId) -> &[NamedPort] {
        match dir {
            Direction::Ingress => &self.identities[endpoint].ports,
            // 1.20 resolves an egress named port per destination: the peer's own port of that name.
            Direction::Egress if self.version.egress_named_ports_per_destination() => {
                &self.identities[peer].ports
            }
            Direction::Egress => &self.egress_named_ports,
        }
    }

    /// Decide a flow, fast: no text is produced.
    pub fn decide(&self, flow: &Flow) -> FastDecision {
        let src = &self.identities[flow.from];
        let dst = &self.identities[flow.to];
        let mut proxied = false;
        // Egress at the source (only pods have policy), then ingress at the destination.
        if src.kind == IdentityKind::Pod {
            match self.decide_direction(flow.from, Direction::Egress, flow.to, flow) {
                DirResult::Allowed {
                    proxied: p,
                    deciding,
                } => {
                    proxied |= p;
                    let _ = deciding;
                }
                DirResult::Denied(d) => return d,
                DirResult::NotEnforced => {}
            }
        }
        if dst.kind == IdentityKind::Pod {
            match self.decide_direction(flow.to, Direction::Ingress, flow.from, flow) {
                DirResult::Allowed {
                    proxied: p,
                    deciding,
                } => {
                    proxied |= p;
                    return FastDecision {
                        decision: Decision::Allow,
                        layer: None,
                        direction: None,
                        drop_reason: None,
                        outcome: Outcome::Completed,
                        proxied,
                        deciding,
                        denied_kafka_key: None,
                    };
                }
                DirResult::Denied(d) => return d,
                DirResult::NotEnforced => {}
            }
        }
        FastDecision {
            decision: Decision::Allow,
            layer: None,
            direction: None,
            drop_reason: None,
            outcome: Outcome::Completed,
            proxied,
            deciding: Vec::new(),
            denied_kafka_key: None,
        }
    }

    /// Decide one direction at `endpoint` for traffic with `peer`.
    fn decide_direction(
        &self,
        endpoint: IdentityId,
        dir: Direction,
        peer: IdentityId,
        flow: &Flow,
    ) -> DirResult {
        let (enforced, default_deny) = self.enforcement(endpoint, dir);
        if !enforced {
            return DirResult::NotEnforced;
        }
        let d = dir.idx();
        let owner_ports = self.named_ports(endpoint, dir, peer);
        // §10: a matching deny rule wins over every allow, whatever its specificity.
        let mut denied_by = Vec::new();
        for &r in &self.selected_by[endpoint] {
            for (ei, e) in self.rules[r].deny[d].iter().enumerate() {
                if e.matches_peer(peer)
                    && (e.groups.is_none()
                        || e.port_group(flow.port, flow.protocol, owner_ports)
                            .is_some())
                {
                    denied_by.push((r, ei));
                }
            }
        }
        if !denied_by.is_empty() {
            return DirResult::Denied(FastDecision {
                decision: Decision::Deny,
                layer: Some(Layer::L4),
                direction: Some(dir),
                drop_reason: Some(DropReason::PolicyDeny),
                outcome: l4_drop_outcome(flow.protocol),
                proxied: false,
                deciding: denied_by,
                denied_kafka_key: None,
            });
        }
        // Allow rules are a union (§2): collect every element that admits the peer on this port.
        let mut groups: Vec<(usize, usize, &PortGroup)> = Vec::new();
        let mut l3_only = Vec::new();
        for &r in &self.selected_by[endpoint] {
            for (ei, e) in self.rules[r].allow[d].iter().enumerate() {
                if !e.matches_peer(peer) {
                    continue;
                }
                match &e.groups {
                    None => l3_only.push((r, ei)),
                    Some(_) => {
                        if let Some(g) = e.port_group(flow.port, flow.protocol, owner_ports) {
                            groups.push((r, ei, g));
                        }
                    }
                }
            }
        }
        // §9: allow-localhost=always is an L3 allow of the local host that only an explicit deny rule
        // overrides (checked above). An ingress rule with L7 rules that also selects the host still
        // redirects its traffic to the proxy, where the host is allowed every request: Cilium gives the host
        // its own entry without L7 rules on that port, unless a rule naming the `host` entity (itself, or
        // within `cluster`) already keys one with L7 rules; then the host's requests are filtered like any
        // peer's. Both found by the differential oracle.
        if dir == Direction::Ingress && self.identities[peer].kind == IdentityKind::Host {
            let proxied = groups.iter().any(|(_, _, g)| !matches!(g.l7, L7::None));
            let host_keyed_l7 = !self.version.host_always_wildcarded_at_l7()
                && groups.iter().any(|(r, ei, g)| {
                    !matches!(g.l7, L7::None)
                        && element_keys(&self.rules[*r].allow[d][*ei])
                            .iter()
                            .any(|k| k == "entity host")
                });
            if !host_keyed_l7 {
                return DirResult::Allowed {
                    proxied,
                    deciding: Vec::new(),
                };
            }
        }
        if groups.is_empty() && l3_only.is_empty() {
            if !default_deny {
                // §4: only default-allow rules select the endpoint: a wildcard allow is synthesised.
                return DirResult::Allowed {
                    proxied: false,
                    deciding: Vec::new(),
                };
            }
            return DirResult::Denied(FastDecision {
                decision: Decision::Deny,
                layer: Some(Layer::L4),
                direction: Some(dir),
                drop_reason: Some(DropReason::PolicyDenied),
                outcome: l4_drop_outcome(flow.protocol),
                proxied: false,
                deciding: Vec::new(),
                denied_kafka_key: None,
            });
        }
        let proxied = groups.iter().any(|(_, _, g)| !matches!(g.l7, L7::None));
        // §2: an L3/L4 allow for an overlapping peer on the same port makes every request allowed (the
        // empty side is an L7 wildcard), though traffic is still proxied. So is an element without ports.
        // §2 (v1.18+): in a default-allow direction, L7 rules get a wildcard appended.
        let l7_wildcard = !l3_only.is_empty()
            || groups.iter().any(|(_, _, g)| matches!(g.l7, L7::None))
            || (!default_deny && self.version.default_allow_l7_is_wildcarded());
        let mut deciding: Vec<(usize, usize)> = l3_only
            .iter()
            .copied()
            .chain(groups.iter().map(|(r, e, _)| (*r, *e)))
            .collect();
        if !proxied || l7_wildcard {
            return DirResult::Allowed { proxied, deciding };
        }
        match self.evaluate_l7(&groups, flow) {
            None => DirResult::Allowed { proxied, deciding },
            Some((outcome, denied_kafka_key)) => {
                deciding.retain(|(r, e)| {
                    groups
                        .iter()
                        .any(|(gr, ge, g)| gr == r && ge == e && !matches!(g.l7, L7::None))
                });
                DirResult::Denied(FastDecision {
                    decision: Decision::Deny,
                    layer: Some(Layer::L7),
                    direction: Some(dir),
                    drop_reason: None,
                    outcome,
                    proxied: true,
                    deciding,
                    denied_kafka_key,
                })
            }
        }
    }

    /// Evaluate the flow's L7 request against the union of the L7 rules that apply. `None` when allowed,
    /// otherwise what the client sees.
    fn evaluate_l7(
        &self,
        groups: &[(usize, usize, &PortGroup)],
        flow: &Flow,
    ) -> Option<(Outcome, Option<String>)> {
        // The union of the rules of one L7 kind over every group that applies.
        fn union<'a, T>(
            groups: &[(usize, usize, &'a PortGroup)],
            pick: fn(&L7) -> Option<&Vec<T>>,
        ) -> Vec<&'a T> {
            groups
                .iter()
                .filter_map(|(_, _, g)| pick(&g.l7))
                .flatten()
                .collect()
        }
        let http: Vec<&HttpRule> =
            union(groups, |l| if let L7::Http(r) = l { Some(r) } else { None });
        let kafka: Vec<&KafkaRule> =
            union(
                groups,
                |l| if let L7::Kafka(r) = l { Some(r) } else { None },
            );
        let dns: Vec<&DnsRule> = union(groups, |l| if let L7::Dns(r) = l { Some(r) } else { None });
        match &flow.l7 {
            Some(L7Request::Http(req)) if !http.is_empty() => {
                // §5: a request passes if any rule matches; otherwise Envoy answers 403 (§6).
                if http.iter().any(|r| http::rule_matches(r, req)) {
                    None
                } else {
                    Some((Outcome::ProxyDenied, None))
                }
            }
            Some(L7Request::Kafka(reqs)) if !kafka.is_empty() => {
                for req in reqs {
                    if !kafka::allows(&kafka, req) {
                        // §6: error 29 is injected for some keys; others are dropped unanswered.
                        let outcome = if kafka::deny_is_answered(req.api_key) {
                            Outcome::KafkaTopicAuthorizationFailed
                        } else {
                            Outcome::KafkaNoResponse
                        };
                        return Some((outcome, Some(kafka::api_key_name(req.api_key))));
                    }
                }
                None
            }
            Some(L7Request::Dns(name)) if !dns.is_empty() => {
                if dns.iter().any(|r| dns_matches(r, name)) {
                    None
                } else {
                    // Cilium's DNS proxy answers a denied query with REFUSED.
                    Some((Outcome::DnsRefused, None))
                }
            }
            // The request is not of the kind the proxy parses, or there is none: nothing is decided at L7.
            _ => None,
        }
    }

    /// Decide a flow and explain the decision.
    pub fn explain(&self, flow: &Flow) -> Verdict {
        let fast = self.decide(flow);
        let src = &self.identities[flow.from];
        let dst = &self.identities[flow.to];
        let mut notes = Vec::new();
        let mut policies: Vec<String> = fast
            .deciding
            .iter()
            .map(|(r, _)| self.rule_policy(*r).to_string())
            .collect();
        policies.sort();
        policies.dedup();
        let port = format!("{}/{}", flow.port, flow.protocol);
        let explanation = match (fast.decision, fast.layer, fast.direction) {
            (Decision::Deny, Some(Layer::L4), Some(dir)) => {
                let (endpoint, peer) = match dir {
                    Direction::Ingress => (flow.to, flow.from),
                    Direction::Egress => (flow.from, flow.to),
                };
                if fast.drop_reason == Some(DropReason::PolicyDeny) {
                    format!(
                        "denied at {}'s {}: an explicit {}Deny rule of {} matches {} on {port}; deny rules win over every allow",
                        self.identities[endpoint].name,
                        dir.section(),
                        dir.section(),
                        policies.join(", "),
                        self.identities[peer].name
                    )
                } else {
                    let selecting = self.policies_with_direction(endpoint, dir);
                    policies = selecting.clone();
                    let mut s = format!(
                        "denied at {}'s {} (default deny): no allow rule of {} admits {} on {port}",
                        self.identities[endpoint].name,
                        dir.section(),
                        selecting.join(", "),
                        self.identities[peer].name
                    );
                    for hint in self.near_misses(endpoint, dir, peer, flow) {
                        let _ = write!(s, "; {hint}");
                    }
                    s
                }
            }
            (Decision::Deny, Some(Layer::L7), Some(dir)) => {
                let endpoint = match dir {
                    Direction::Ingress => flow.to,
                    Direction::Egress => flow.from,
                };
                let what = match fast.outcome {
                    Outcome::ProxyDenied => "the proxy answers HTTP 403",
                    Outcome::KafkaTopicAuthorizationFailed => {
                        "the Kafka proxy answers error 29 TOPIC_AUTHORIZATION_FAILED"
                    }
                    Outcome::KafkaNoResponse => {
                        "the Kafka proxy drops the request without an answer (it cannot build an error response for that API key)"
                    }
                    Outcome::DnsFailure => "the DNS proxy answers REFUSED",
                    _ => "the proxy refuses it",
                };
                let mut s = format!(
                    "denied at L7 at {}'s {}: the request matches no {} rule of {}; {what}",
                    self.identities[endpoint].name,
                    dir.section(),
                    l7_kind_name(flow.l7.as_ref()),
                    policies.join(", ")
                );
                for hint in self.l7_hints(&fast, flow) {
                    let _ = write!(s, "; {hint}");
                }
                s
            }
            _ => {
                let mut parts = Vec::new();
                for dir in [Direction::Egress, Direction::Ingress] {
                    let (endpoint, peer) = match dir {
                        Direction::Ingress => (flow.to, flow.from),
                        Direction::Egress => (flow.from, flow.to),
                    };
                    if self.identities[endpoint].kind != IdentityKind::Pod {
                        continue;
                    }
                    parts.push(self.allow_reason(endpoint, dir, peer, flow));
                }
                if parts.is_empty() {
                    format!(
                        "allowed: neither {} nor {} is a policy subject",
                        src.name, dst.name
                    )
                } else {
                    format!("allowed: {}", parts.join("; "))
                }
            }
        };
        // Facts that may matter for this flow.
        for info in &self.policies {
            if let PolicyStatus::Rejected { reason } = &info.status
                && self.policy_would_select(info, flow)
            {
                notes.push(format!(
                    "{} is not in force on Cilium {}: {reason}",
                    info.name, self.version
                ));
            }
        }
        for (ep, dir) in [
            (flow.from, Direction::Egress),
            (flow.to, Direction::Ingress),
        ] {
            if self.identities[ep].kind != IdentityKind::Pod {
                continue;
            }
            for &r in &self.selected_by[ep] {
                let rule = &self.rules[r];
                let d = dir.idx();
                if rule.empty_written[d] && !rule.has_direction[d] {
                    notes.push(format!(
                        "{}: `{}: []` is the same as no {} section and denies nothing; `{}: [{{}}]` denies all {} (docs/semantics.md#empty-sections-and-default-deny)",
                        self.rule_policy(r), dir.section(), dir.section(), dir.section(), dir.section()
                    ));
                }
                for e in rule.allow[d].iter().chain(rule.deny[d].iter()) {
                    for u in &e.unmodelled {
                        let n = format!(
                            "{}: `{u}` is not evaluated by the model (treated as matching none of the stack's peers)",
                            self.rule_policy(r)
                        );
                        if !notes.contains(&n) {
                            notes.push(n);
                        }
                    }
                }
            }
        }
        if !self.host_policies.is_empty()
            && (src.kind != IdentityKind::Pod || dst.kind != IdentityKind::Pod)
        {
            notes.push("host policies (nodeSelector) are not evaluated by the model".into());
        }
        if src.kind == IdentityKind::Host && dst.kind == IdentityKind::Pod {
            notes.push("traffic from the local host to its pods is allowed unless an explicit deny rule matches the host (allow-localhost=always, docs/semantics.md#default-enforcement)".into());
        }
        if !self.version.is_modelled() {
            notes.push(format!("Cilium {} is outside the versions the model knows ({}-{}); the nearest version's semantics were used", self.version, version::OLDEST, version::NEWEST));
        }
        let endpoint_policy_error = [flow.from, flow.to]
            .into_iter()
            .filter(|&ep| self.identities[ep].kind == IdentityKind::Pod)
            .find_map(|ep| {
                self.endpoint_policy_error(ep).map(|why| {
                    format!(
                        "Cilium cannot compute the policy of {}: {why}",
                        self.identities[ep].name
                    )
                })
            });
        if let Some(e) = &endpoint_policy_error {
            notes.insert(
                0,
                format!("{e}; the agent refuses to regenerate the endpoint and keeps its previous policy, so this flow cannot be predicted (docs/semantics.md#conflicting-l7-parsers)"),
            );
        }
        Verdict {
            decision: fast.decision,
            layer: fast.layer,
            direction: fast.direction,
            drop_reason: fast.drop_reason,
            expected_outcome: fast.outcome,
            proxied: fast.proxied,
            policies,
            explanation,
            notes,
            denied_kafka_key: fast.denied_kafka_key,
            endpoint_policy_error,
        }
    }

    /// Names of the policies that have rules in `dir` for `endpoint`.
    fn policies_with_direction(&self, endpoint: IdentityId, dir: Direction) -> Vec<String> {
        let mut v: Vec<String> = self.selected_by[endpoint]
            .iter()
            .filter(|r| self.rules[**r].has_direction[dir.idx()])
            .map(|r| self.rule_policy(*r).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether a rejected policy would have selected the flow's source or destination.
    fn policy_would_select(&self, info: &PolicyInfo, flow: &Flow) -> bool {
        // Rejected policies are not compiled; compare by namespace, which is enough for a note.
        let ns = info.name.split_once('/').map(|(ns, _)| ns);
        [flow.from, flow.to].iter().any(|&i| {
            let id = &self.identities[i];
            id.kind == IdentityKind::Pod
                && ns.is_none_or(|ns| id.name.starts_with(&format!("{ns}/")))
        })
    }

    /// Why a flow was allowed in one direction.
    fn allow_reason(
        &self,
        endpoint: IdentityId,
        dir: Direction,
        peer: IdentityId,
        flow: &Flow,
    ) -> String {
        let (enforced, default_deny) = self.enforcement(endpoint, dir);
        let ep = &self.identities[endpoint].name;
        if !enforced {
            let mut s = format!(
                "no policy has {} rules for {ep}, so its {} is not enforced",
                dir.section(),
                dir.section()
            );
            let empty: Vec<String> = self.selected_by[endpoint]
                .iter()
                .filter(|r| self.rules[**r].empty_written[dir.idx()])
                .map(|r| self.rule_policy(*r).to_string())
                .collect();
            if !empty.is_empty() {
                let _ = write!(
                    s,
                    " ({} writes `{}: []`, which denies nothing; use `{}: [{{}}]`)",
                    empty.join(", "),
                    dir.section(),
                    dir.section()
                );
            }
            return s;
        }
        if !default_deny {
            return format!(
                "the rules selecting {ep} set enableDefaultDeny.{}: false, so {} is default-allow",
                dir.section(),
                dir.section()
            );
        }
        let d = dir.idx();
        let owner_ports = self.named_ports(endpoint, dir, peer);
        let mut admitted = Vec::new();
        let mut l4_only = Vec::new();
        let mut l7 = Vec::new();
        for &r in &self.selected_by[endpoint] {
            for (ei, e) in self.rules[r].allow[d].iter().enumerate() {
                if !e.matches_peer(peer) {
                    continue;
                }
                let g = match &e.groups {
                    None => None,
                    Some(_) => match e.port_group(flow.port, flow.protocol, owner_ports) {
                        Some(g) => Some(g),
                        None => continue,
                    },
                };
                let who = e.describe_peers();
                admitted.push(format!(
                    "{} ({} rule {}: {who})",
                    self.rule_policy(r),
                    dir.section(),
                    ei + 1
                ));
                match g {
                    Some(g) if !matches!(g.l7, L7::None) => {
                        l7.push(self.rule_policy(r).to_string())
                    }
                    _ => l4_only.push(self.rule_policy(r).to_string()),
                }
            }
        }
        if admitted.is_empty() && self.identities[peer].kind == IdentityKind::Host {
            return format!(
                "{ep}'s ingress admits the local host: allow-localhost=always allows it unless a deny rule matches the host"
            );
        }
        let mut s = format!(
            "{ep}'s {} admits {} on {}/{} by {}",
            dir.section(),
            self.identities[peer].name,
            flow.port,
            flow.protocol,
            admitted.join(" and ")
        );
        if admitted.len() > 1 {
            s.push_str(" (allow rules are a union: the most permissive one decides)");
        }
        // Narrower rules on the same port that do not admit this peer: they restrict nothing.
        let mut narrower: Vec<String> = Vec::new();
        for &r in &self.selected_by[endpoint] {
            for e in &self.rules[r].allow[d] {
                if !e.matches_peer(peer)
                    && e.groups.is_some()
                    && e.port_group(flow.port, flow.protocol, owner_ports)
                        .is_some()
                {
                    narrower.push(format!("{} ({})", self.rule_policy(r), e.describe_peers()));
                }
            }
        }
        narrower.dedup();
        if !narrower.is_empty() {
            let _ = write!(
                s,
                "; allow rules are a union, so the narrower rule of {} restricts nothing here (docs/semantics.md#allow-rules-are-a-union)",
                narrower.join(", ")
            );
        }
        if !l7.is_empty() && !l4_only.is_empty() {
            l4_only.sort();
            l4_only.dedup();
            l7.sort();
            l7.dedup();
            let _ = write!(
                s,
                "; the L7 rules of {} do not filter anything here: {} also allows this peer and port without L7 rules, which makes every request allowed (docs/semantics.md#allow-rules-are-a-union)",
                l7.join(", "),
                l4_only.join(", ")
            );
        }
        s
    }

    /// Hints for a default-deny drop: rules that nearly admit the peer.
    fn near_misses(
        &self,
        endpoint: IdentityId,
        dir: Direction,
        peer: IdentityId,
        flow: &Flow,
    ) -> Vec<String> {
        let d = dir.idx();
        let peer_id = &self.identities[peer];
        let owner_ports = self.named_ports(endpoint, dir, peer);
        let mut hints = Vec::new();
        // (selector as written, namespace it was limited to) -> policies writing it.
        let mut scoped: Vec<(String, String, Vec<String>)> = Vec::new();
        for &r in &self.selected_by[endpoint] {
            let policy = self.rule_policy(r).to_string();
            for e in &self.rules[r].allow[d] {
                if e.matches_peer(peer) {
                    let port_ok = e.groups.is_none()
                        || e.port_group(flow.port, flow.protocol, owner_ports)
                            .is_some();
                    if !port_ok {
                        hints.push(format!(
                            "{policy} admits {} only on {}",
                            peer_id.name,
                            e.describe_ports()
                        ));
                    }
                    continue;
                }
                for p in e.peers.iter().flatten() {
                    if let Peer::Endpoints {
                        written,
                        unscoped,
                        namespace_added: Some(ns),
                        ..
                    } = p
                        && peer_id.kind == IdentityKind::Pod
                        && unscoped.matches(&peer_id.labels)
                    {
                        let shown = show_selector(written);
                        match scoped.iter_mut().find(|(s, n, _)| *s == shown && n == ns) {
                            Some((_, _, ps)) => {
                                if !ps.contains(&policy) {
                                    ps.push(policy.clone());
                                }
                            }
                            None => scoped.push((shown, ns.clone(), vec![policy.clone()])),
                        }
                    }
                }
            }
        }
        let peer_ns = peer_id.name.split('/').next().unwrap_or_default();
        for (sel, ns, ps) in scoped {
            hints.push(format!(
                "the selector {sel} of {} would match {} but is limited to namespace {ns}, because a selector without a namespace key matches only the policy's own namespace (docs/semantics.md#selector-namespaces): add `k8s:io.kubernetes.pod.namespace: {peer_ns}`",
                ps.join(", "),
                peer_id.name
            ));
        }
        hints.dedup();
        hints
    }

    /// Hints for an L7 deny.
    fn l7_hints(&self, fast: &FastDecision, flow: &Flow) -> Vec<String> {
        let mut hints = Vec::new();
        let Some(L7Request::Http(req)) = &flow.l7 else {
            return hints;
        };
        for (r, e) in &fast.deciding {
            let rule = &self.rules[*r];
            for dir in [0, 1] {
                let Some(el) = rule.allow[dir].get(*e) else {
                    continue;
                };
                for g in el.groups.iter().flatten() {
                    let L7::Http(rules) = &g.l7 else { continue };
                    for hr in rules {
                        for entry in hr.headers.iter().flatten() {
                            let check = http::parse_header_entry(entry);
                            if let Some(v) = &check.value
                                && http::looks_like_regex(v)
                                && req
                                    .headers
                                    .iter()
                                    .any(|(n, _)| n.eq_ignore_ascii_case(&check.name))
                            {
                                let h = format!(
                                    "{}: `headers: [\"{entry}\"]` requires {} to equal the literal `{v}` (header values are exact strings, never regexes, docs/semantics.md#http-rules); for presence write `headers: [\"{}\"]`",
                                    self.rule_policy(*r),
                                    check.name,
                                    check.name
                                );
                                if !hints.contains(&h) {
                                    hints.push(h);
                                }
                            }
                        }
                    }
                }
            }
        }
        hints
    }
}

enum DirResult {
    NotEnforced,
    Allowed {
        proxied: bool,
        deciding: Vec<(usize, usize)>,
    },
    Denied(FastDecision),
}

fn l4_drop_outcome(p: Protocol) -> Outcome {
    match p {
        Protocol::Udp | Protocol::Icmp | Protocol::IcmpV6 => Outcome::NoResponse,
        _ => Outcome::ConnectTimeout,
    }
}

fn l7_kind_name(r: Option<&L7Request>) -> &'static str {
    match r {
        Some(L7Request::Http(_)) => "HTTP",
        Some(L7Request::Kafka(_)) => "Kafka",
        Some(L7Request::Dns(_)) => "DNS",
        _ => "L7",
    }
}

impl Identity {
    /// An address outside the cluster.
    pub fn world(name: &str, ip: IpAddr) -> Identity {
        let mut l = LabelSet::default();
        l.add("reserved", "world", "");
        Identity {
            name: name.to_string(),
            kind: IdentityKind::World,
            labels: l,
            ip: Some(ip),
            ports: Vec::new(),
        }
    }
}

impl Element {
    fn matches_peer(&self, peer: IdentityId) -> bool {
        bit(&self.peer_bits, peer)
    }

    /// The port group that admits this port and protocol, if any. An element without `toPorts` admits every
    /// port (returns `None` as "no group" — callers check `groups.is_none()` first).
    fn port_group(
        &self,
        port: u16,
        proto: Protocol,
        owner_ports: &[NamedPort],
    ) -> Option<&PortGroup> {
        let groups = self.groups.as_ref()?;
        // A `toPorts` entry without ports admits no port: Cilium makes no L4 filter of it.
        groups.iter().find(|g| {
            g.ports
                .iter()
                .any(|pm| pm.matches(port, proto, owner_ports))
        })
    }

    fn describe_peers(&self) -> String {
        match &self.peers {
            None => "any peer".into(),
            Some(ps) if ps.is_empty() => "no peer".into(),
            Some(ps) => ps
                .iter()
                .map(|p| match p {
                    Peer::Endpoints {
                        written,
                        namespace_added,
                        ..
                    } => match namespace_added {
                        Some(ns) => {
                            format!("endpoints {} in namespace {ns}", show_selector(written))
                        }
                        None => format!("endpoints {}", show_selector(written)),
                    },
                    Peer::Cidr { cidr, except } if except.is_empty() => format!("CIDR {cidr}"),
                    Peer::Cidr { cidr, except } => format!(
                        "CIDR {cidr} except {}",
                        except
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Peer::Entity(e) => format!(
                        "entity {}",
                        serde_json::to_string(e)
                            .unwrap_or_default()
                            .trim_matches('"')
                    ),
                    Peer::Unmodelled(what) => format!("{what} (not modelled)"),
                })
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    fn describe_ports(&self) -> String {
        match &self.groups {
            None => "every port".into(),
            Some(gs) => gs
                .iter()
                .flat_map(|g| {
                    if g.ports.is_empty() {
                        vec!["no port (a toPorts entry without ports)".to_string()]
                    } else {
                        g.ports
                            .iter()
                            .map(|p| match p.end_port {
                                Some(e) => format!("{}-{e}/{}", p.port, p.protocol),
                                None => format!("{}/{}", p.port, p.protocol),
                            })
                            .collect()
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl PortMatch {
    fn matches(&self, port: u16, proto: Protocol, owner_ports: &[NamedPort]) -> bool {
        let proto_ok = match self.protocol {
            Protocol::Any => matches!(proto, Protocol::Tcp | Protocol::Udp | Protocol::Sctp),
            p => p == proto,
        };
        if !proto_ok {
            return false;
        }
        match &self.port {
            PortSpec::Number(0) => true,
            PortSpec::Number(n) => match self.end_port {
                Some(e) if e >= *n => (*n..=e).contains(&port),
                _ => *n == port,
            },
            // Named ports resolve per protocol (ANY is one filter per protocol) against the ports of
            // `Model::named_ports`.
            PortSpec::Named(name) => owner_ports.iter().any(|np| {
                np.port == port
                    && np
                        .name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    && np.protocol == proto
            }),
        }
    }
}

/// The cluster-wide named ports egress rules resolve against: for each (name, protocol) declared by pods,
/// the port, when every pod declaring it agrees on the number.
fn egress_named_ports(ids: &[Identity]) -> Vec<NamedPort> {
    let mut by_name: std::collections::BTreeMap<(String, Protocol), Vec<u16>> = Default::default();
    for id in ids.iter().filter(|i| i.kind == IdentityKind::Pod) {
        for np in &id.ports {
            if let Some(n) = &np.name {
                let ports = by_name
                    .entry((n.to_ascii_lowercase(), np.protocol))
                    .or_default();
                if !ports.contains(&np.port) {
                    ports.push(np.port);
                }
            }
        }
    }
    by_name
        .into_iter()
        .filter(|(_, ports)| ports.len() == 1)
        .map(|((name, protocol), ports)| NamedPort {
            name: Some(name),
            port: ports[0],
            protocol,
        })
        .collect()
}

fn dns_matches(rule: &DnsRule, name: &str) -> bool {
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    let q = norm(name);
    if let Some(n) = &rule.match_name
        && norm(n) == q
    {
        return true;
    }
    if let Some(p) = &rule.match_pattern {
        let p = norm(p);
        if p == "*" {
            return true;
        }
        let mut re = String::from("^");
        for c in p.chars() {
            match c {
                '*' => re.push_str("[-a-z0-9_]*"),
                '.' => re.push_str("\\."),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        return regex::Regex::new(&re).is_ok_and(|r| r.is_match(&q));
    }
    false
}

/// Whether a policy is accepted on `version` (§0, §4, §7).
fn policy_status(p: &Policy, version: CiliumVersion) -> PolicyStatus {
    if !version.has_kafka_rules() {
        let uses = |f: &dyn Fn(&crate::policy::L7Rules) -> bool| {
            p.rules.iter().any(|r| {
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
                    .any(|pr| pr.rules.as_ref().is_some_and(f))
            })
        };
        if uses(&|l| l.kafka.is_some()) {
            return PolicyStatus::Rejected {
                reason: "`rules.kafka` was removed in Cilium 1.20; a strict apply fails (a non-strict apply prunes the field and the rule becomes an L4 allow of the whole port)".into(),
            };
        }
        if uses(&|l| l.l7proto.is_some() || l.l7.is_some()) {
            return PolicyStatus::Rejected {
                reason: "`rules.l7proto`/`rules.l7` (proxylib) were removed in Cilium 1.20".into(),
            };
        }
    }
    if let Some(reason) = sanitize_rejection(p) {
        return PolicyStatus::Rejected {
            reason: format!("the agent refuses it (Cilium's rule sanitising): {reason}"),
        };
    }
    if version.rejects_rules_without_sections() {
        for r in &p.rules {
            let n = |v: usize| v;
            let count = n(r.ingress.as_ref().map_or(0, Vec::len))
                + r.ingress_deny.as_ref().map_or(0, Vec::len)
                + r.egress.as_ref().map_or(0, Vec::len)
                + r.egress_deny.as_ref().map_or(0, Vec::len);
            if count == 0 {
                return PolicyStatus::Rejected {
                    reason: "the agent rejects a rule with no ingress, ingressDeny, egress or egressDeny element (since 1.18; the API server accepts it, so `kubectl apply` succeeds and nothing is enforced)".into(),
                };
            }
        }
    }
    PolicyStatus::InForce
}

/// What Cilium's agent refuses when it parses a rule (`Rule.Sanitize`, pkg/policy/api/rule_validation.go),
/// for the fields the model reads. The API server accepts such a policy (the CRD schema does not check
/// these), so `kubectl apply` succeeds and nothing of the policy is enforced. Found by the differential
/// oracle (oracle/), which runs Cilium's own sanitising.
fn sanitize_rejection(p: &Policy) -> Option<String> {
    fn port_rule(pr: &PortRule, ingress: bool) -> Option<String> {
        let l7 = pr.rules.as_ref();
        let dns = l7.is_some_and(|l| l.dns.as_ref().is_some_and(|d| !d.is_empty()));
        if ingress && dns {
            return Some("DNS rules are not allowed on ingress".into());
        }
        // `IsEmpty`: no rule of any kind.
        let has_l7 = l7.is_some_and(|l| {
            l.http.as_ref().is_some_and(|v| !v.is_empty())
                || l.kafka.as_ref().is_some_and(|v| !v.is_empty())
                || l.dns.as_ref().is_some_and(|v| !v.is_empty())
                || l.l7proto.is_some()
        });
        let ports = pr.ports.as_deref().unwrap_or_default();
        let mut zero = false;
        for pp in ports {
            match &pp.port {
                None => return Some("port must be specified".into()),
                Some(PortSpec::Number(n)) => {
                    zero |= *n == 0;
                    if dns && pp.end_port.is_some_and(|e| e > *n) {
                        return Some("DNS rules do not support port ranges".into());
                    }
                }
                Some(PortSpec::Named(_)) => {}
            }
            // L7 rules other than DNS need TCP; an omitted protocol is ANY.
            if has_l7 && !dns && pp.protocol != Some(Protocol::Tcp) {
                return Some(format!(
                    "L7 rules can only apply to TCP (not {}) except for DNS rules",
                    pp.protocol.unwrap_or(Protocol::Any)
                ));
            }
        }
        if has_l7 {
            if zero {
                return Some("L7 rules can not be used when a port is 0".into());
            }
            if let Some(l) = l7 {
                if l.dns.is_some() && ports.is_empty() {
                    return Some("port 53 must be specified for DNS rules".into());
                }
                let kinds = [
                    l.http.is_some(),
                    l.kafka.is_some(),
                    l.dns.is_some(),
                    l.l7proto.is_some(),
                ];
                if kinds.iter().filter(|k| **k).count() > 1 {
                    return Some("multiple L7 protocol rule types specified in single rule".into());
                }
            }
        }
        None
    }
    fn deny_ports(prs: Option<&Vec<PortDenyRule>>) -> Option<String> {
        prs.into_iter()
            .flatten()
            .flat_map(|pr| pr.ports.iter().flatten())
            .find(|pp| pp.port.is_none())
            .map(|_| "port must be specified".to_string())
    }
    // At most one kind of peer per element (`combining X and Y is not supported yet`).
    fn peers(kinds: &[(&str, bool)]) -> Option<String> {
        let set: Vec<&str> = kinds.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
        (set.len() > 1).then(|| format!("combining {} and {} is not supported yet", set[0], set[1]))
    }
    fn cidr_sets(sets: Option<&Vec<CidrRule>>) -> Option<String> {
        for cs in sets.into_iter().flatten() {
            if let Some(c) = cs.cidr {
                for e in cs.except.iter().flatten() {
                    if !c.0.contains(&e.0.addr()) {
                        return Some(format!(
                            "allow CIDR prefix {} does not contain exclude CIDR prefix {}",
                            c.0, e.0
                        ));
                    }
                }
            }
        }
        None
    }
    // `icmps` only without `toPorts`, and type names of the field's family (Cilium's ICMPField parsing).
    fn icmps(rules: Option<&Vec<IcmpRule>>, has_ports: bool) -> Option<String> {
        let rules = rules.filter(|r| !r.is_empty())?;
        if has_ports {
            return Some(
                "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts"
                    .into(),
            );
        }
        rules
            .iter()
            .flat_map(|r| r.fields.iter().flatten())
            .find(|f| f.code().is_none())
            .map(|f| {
                let name = match &f.icmp_type {
                    IcmpType::Name(n) => n.clone(),
                    IcmpType::Code(c) => c.to_string(),
                };
                let family = match f.family {
                    Some(IcmpFamily::IPv6) => "IPv6",
                    _ => "IPv4",
                };
                format!("ICMP type {name} not found in {family}")
            })
    }
    let non_empty = |v: Option<usize>| v.is_some_and(|n| n > 0);
    for r in &p.rules {
        for e in r.ingress.iter().flatten() {
            let why = peers(&[
                (
                    "FromEndpoints",
                    non_empty(e.from_endpoints.as_ref().map(Vec::len)),
                ),
                ("FromCIDR", non_empty(e.from_cidr.as_ref().map(Vec::len))),
                (
                    "FromCIDRSet",
                    non_empty(e.from_cidr_set.as_ref().map(Vec::len)),
                ),
                (
                    "FromEntities",
                    non_empty(e.from_entities.as_ref().map(Vec::len)),
                ),
                ("FromNodes", e.from_nodes.is_some()),
                ("FromGroups", e.from_groups.is_some()),
            ])
            .or_else(|| cidr_sets(e.from_cidr_set.as_ref()))
            .or_else(|| {
                icmps(
                    e.icmps.as_ref(),
                    non_empty(e.to_ports.as_ref().map(Vec::len)),
                )
            })
            .or_else(|| {
                e.to_ports
                    .iter()
                    .flatten()
                    .find_map(|pr| port_rule(pr, true))
            });
            if why.is_some() {
                return why;
            }
        }
        for e in r.ingress_deny.iter().flatten() {
            let why = peers(&[
                (
                    "FromEndpoints",
                    non_empty(e.from_endpoints.as_ref().map(Vec::len)),
                ),
                ("FromCIDR", non_empty(e.from_cidr.as_ref().map(Vec::len))),
                (
                    "FromCIDRSet",
                    non_empty(e.from_cidr_set.as_ref().map(Vec::len)),
                ),
                (
                    "FromEntities",
                    non_empty(e.from_entities.as_ref().map(Vec::len)),
                ),
                ("FromNodes", e.from_nodes.is_some()),
                ("FromGroups", e.from_groups.is_some()),
            ])
            .or_else(|| cidr_sets(e.from_cidr_set.as_ref()))
            .or_else(|| {
                icmps(
                    e.icmps.as_ref(),
                    non_empty(e.to_ports.as_ref().map(Vec::len)),
                )
            })
            .or_else(|| deny_ports(e.to_ports.as_ref()));
            if why.is_some() {
                return why;
            }
        }
        for e in r.egress.iter().flatten() {
            let why = peers(&[
                (
                    "ToEndpoints",
                    non_empty(e.to_endpoints.as_ref().map(Vec::len)),
                ),
                ("ToCIDR", non_empty(e.to_cidr.as_ref().map(Vec::len))),
                ("ToCIDRSet", non_empty(e.to_cidr_set.as_ref().map(Vec::len))),
                (
                    "ToEntities",
                    non_empty(e.to_entities.as_ref().map(Vec::len)),
                ),
                ("ToServices", e.to_services.is_some()),
                ("ToNodes", e.to_nodes.is_some()),
                ("ToGroups", e.to_groups.is_some()),
            ])
            .or_else(|| cidr_sets(e.to_cidr_set.as_ref()))
            .or_else(|| {
                icmps(
                    e.icmps.as_ref(),
                    non_empty(e.to_ports.as_ref().map(Vec::len)),
                )
            })
            .or_else(|| {
                e.to_ports
                    .iter()
                    .flatten()
                    .find_map(|pr| port_rule(pr, false))
            });
            if why.is_some() {
                return why;
            }
        }
        for e in r.egress_deny.iter().flatten() {
            let why = peers(&[
                (
                    "ToEndpoints",
                    non_empty(e.to_endpoints.as_ref().map(Vec::len)),
                ),
                ("ToCIDR", non_empty(e.to_cidr.as_ref().map(Vec::len))),
                ("ToCIDRSet", non_empty(e.to_cidr_set.as_ref().map(Vec::len))),
                (
                    "ToEntities",
                    non_empty(e.to_entities.as_ref().map(Vec::len)),
                ),
                ("ToServices", e.to_services.is_some()),
                ("ToNodes", e.to_nodes.is_some()),
                ("ToGroups", e.to_groups.is_some()),
            ])
            .or_else(|| cidr_sets(e.to_cidr_set.as_ref()))
            .or_else(|| {
                icmps(
                    e.icmps.as_ref(),
                    non_empty(e.to_ports.as_ref().map(Vec::len)),
                )
            })
            .or_else(|| deny_ports(e.to_ports.as_ref()));
            if why.is_some() {
                return why;
            }
        }
    }
    None
}

/// Things in a policy that do not do what they seem to, independent of any flow.
fn policy_warnings(p: &Policy, version: CiliumVersion) -> Vec<String> {
    let mut w = Vec::new();
    for r in &p.rules {
        if let Some(sel) = &r.endpoint_selector {
            let (_, overwritten) = CompiledSelector::subject(sel, p.namespace.as_deref());
            if overwritten {
                w.push("endpointSelector names another namespace; Cilium overwrites it with the policy's namespace (docs/semantics.md#selector-namespaces)".into());
            }
        }
        if r.egress.as_ref().is_some_and(Vec::is_empty) {
            w.push("`egress: []` denies nothing (same as no egress section); `egress: [{}]` denies all egress (docs/semantics.md#empty-sections-and-default-deny)".into());
        }
        if r.ingress.as_ref().is_some_and(Vec::is_empty) {
            w.push("`ingress: []` denies nothing (same as no ingress section); `ingress: [{}]` denies all ingress (docs/semantics.md#empty-sections-and-default-deny)".into());
        }
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
            for hr in pr.rules.iter().flat_map(|l| l.http.iter().flatten()) {
                for h in hr.headers.iter().flatten() {
                    let c = http::parse_header_entry(h);
                    if let Some(v) = &c.value
                        && http::looks_like_regex(v)
                    {
                        w.push(format!("headers entry `{h}` requires the literal value `{v}`; header values are never regexes (docs/semantics.md#http-rules)"));
                    }
                }
            }
            if pr.rules.as_ref().is_some_and(|l| l.kafka.is_some())
                && version.kafka_deprecated()
                && version.has_kafka_rules()
            {
                w.push(format!(
                    "Kafka rules are deprecated in Cilium {version} and removed in 1.20 (docs/semantics.md#kafka-rules)"
                ));
            }
        }
    }
    w.dedup();
    w
}

fn compile_rule(p: &Policy, pi: usize, r: &Rule, ids: &[Identity]) -> CompiledRule {
    let ns = p.namespace.as_deref();
    // §1: a CNP's endpointSelector only ever selects its own namespace.
    let subject = r
        .endpoint_selector
        .as_ref()
        .map(|sel| CompiledSelector::subject(sel, ns).0)
        .unwrap_or_default();
    // Peer fields the model does not evaluate still count as peers (they select none of the stack's).
    let names = |fields: &[(&'static str, bool)]| -> Vec<&'static str> {
        fields
            .iter()
            .filter(|(_, set)| *set)
            .map(|(n, _)| *n)
            .collect()
    };
    let peers = |ep, cidr, set, ent, other| Peers {
        endpoints: ep,
        cidrs: cidr,
        cidr_sets: set,
        entities: ent,
        other,
    };
    let ing: Vec<Element> = r
        .ingress
        .iter()
        .flatten()
        .map(|e| {
            let mut un = names(&[
                ("fromNodes", e.from_nodes.is_some()),
                ("fromGroups", e.from_groups.is_some()),
                ("fromRequires", e.from_requires.is_some()),
                ("authentication", e.authentication.is_some()),
            ]);
            let groups = icmp_groups(e.icmps.as_deref())
                .or_else(|| allow_groups(e.to_ports.as_deref(), &mut un));
            let other = e.from_nodes.is_some() || e.from_groups.is_some();
            let p = peers(
                e.from_endpoints.as_deref(),
                e.from_cidr.as_deref(),
                e.from_cidr_set.as_deref(),
                e.from_entities.as_deref(),
                other,
            );
            element(ns, p, groups, un, ids)
        })
        .collect();
    let eg: Vec<Element> = r
        .egress
        .iter()
        .flatten()
        .map(|e| {
            let mut un = names(&[
                ("toFQDNs", e.to_fqdns.is_some()),
                ("toServices", e.to_services.is_some()),
                ("toNodes", e.to_nodes.is_some()),
                ("toGroups", e.to_groups.is_some()),
                ("toRequires", e.to_requires.is_some()),
                ("authentication", e.authentication.is_some()),
            ]);
            let groups = icmp_groups(e.icmps.as_deref())
                .or_else(|| allow_groups(e.to_ports.as_deref(), &mut un));
            let other = e.to_fqdns.is_some()
                || e.to_services.is_some()
                || e.to_nodes.is_some()
                || e.to_groups.is_some();
            let p = peers(
                e.to_endpoints.as_deref(),
                e.to_cidr.as_deref(),
                e.to_cidr_set.as_deref(),
                e.to_entities.as_deref(),
                other,
            );
            element(ns, p, groups, un, ids)
        })
        .collect();
    let ing_deny: Vec<Element> = r
        .ingress_deny
        .iter()
        .flatten()
        .map(|e| {
            let un = names(&[
                ("fromNodes", e.from_nodes.is_some()),
                ("fromGroups", e.from_groups.is_some()),
            ]);
            let other = e.from_nodes.is_some() || e.from_groups.is_some();
            let p = peers(
                e.from_endpoints.as_deref(),
                e.from_cidr.as_deref(),
                e.from_cidr_set.as_deref(),
                e.from_entities.as_deref(),
                other,
            );
            let groups =
                icmp_groups(e.icmps.as_deref()).or_else(|| deny_groups(e.to_ports.as_deref()));
            element(ns, p, groups, un, ids)
        })
        .collect();
    let eg_deny: Vec<Element> = r
        .egress_deny
        .iter()
        .flatten()
        .map(|e| {
            let un = names(&[
                ("toServices", e.to_services.is_some()),
                ("toNodes", e.to_nodes.is_some()),
                ("toGroups", e.to_groups.is_some()),
            ]);
            let other = e.to_services.is_some() || e.to_nodes.is_some() || e.to_groups.is_some();
            let p = peers(
                e.to_endpoints.as_deref(),
                e.to_cidr.as_deref(),
                e.to_cidr_set.as_deref(),
                e.to_entities.as_deref(),
                other,
            );
            let groups =
                icmp_groups(e.icmps.as_deref()).or_else(|| deny_groups(e.to_ports.as_deref()));
            element(ns, p, groups, un, ids)
        })
        .collect();
    let has_ing = !ing.is_empty() || !ing_deny.is_empty();
    let has_eg = !eg.is_empty() || !eg_deny.is_empty();
    // §4: enableDefaultDeny defaults to true for each direction that has rules.
    let dd = r.enable_default_deny.unwrap_or_default();
    CompiledRule {
        policy: pi,
        subject,
        default_deny: [
            has_ing && dd.ingress.unwrap_or(true),
            has_eg && dd.egress.unwrap_or(true),
        ],
        has_direction: [has_ing, has_eg],
        empty_written: [
            r.ingress.as_ref().is_some_and(Vec::is_empty),
            r.egress.as_ref().is_some_and(Vec::is_empty),
        ],
        allow: [ing, eg],
        deny: [ing_deny, eg_deny],
    }
}

/// `icmps` as port groups: each ICMP type is a port of the ICMP (or ICMPv6) protocol, as Cilium turns
/// them into L4 filters. `None` without `icmps` (an empty list is none).
fn icmp_groups(icmps: Option<&[IcmpRule]>) -> Option<Vec<PortGroup>> {
    let icmps = icmps.filter(|i| !i.is_empty())?;
    Some(
        icmps
            .iter()
            .map(|r| PortGroup {
                ports: r
                    .fields
                    .iter()
                    .flatten()
                    .filter_map(|f| {
                        Some(PortMatch {
                            port: PortSpec::Number(u16::from(f.code()?)),
                            end_port: None,
                            protocol: f.protocol(),
                        })
                    })
                    .collect(),
                l7: L7::None,
            })
            .collect(),
    )
}

fn port_matches(ports: Option<&[PortProtocol]>) -> Vec<PortMatch> {
    ports
        .unwrap_or_default()
        .iter()
        .map(|p| PortMatch {
            port: p.port.clone().unwrap_or(PortSpec::Number(0)),
            end_port: p.end_port,
            protocol: p.protocol.unwrap_or(Protocol::Any),
        })
        .collect()
}

fn allow_groups(tp: Option<&[PortRule]>, un: &mut Vec<&'static str>) -> Option<Vec<PortGroup>> {
    let tp = tp.filter(|t| !t.is_empty())?;
    Some(
        tp.iter()
            .map(|pr| {
                if pr.terminating_tls.is_some() {
                    un.push("terminatingTLS");
                }
                if pr.originating_tls.is_some() {
                    un.push("originatingTLS");
                }
                if pr.server_names.is_some() {
                    un.push("serverNames");
                }
                if pr.listener.is_some() {
                    un.push("listener");
                }
                let l7 = match &pr.rules {
                    None => L7::None,
                    Some(l) => {
                        if let Some(h) = &l.http {
                            L7::Http(h.clone())
                        } else if let Some(k) = &l.kafka {
                            L7::Kafka(k.clone())
                        } else if let Some(d) = &l.dns {
                            L7::Dns(d.clone())
                        } else if l.l7proto.is_some() || l.l7.is_some() {
                            un.push("rules.l7proto/rules.l7");
                            L7::Other
                        } else {
                            L7::None
                        }
                    }
                };
                PortGroup {
                    ports: port_matches(pr.ports.as_deref()),
                    l7,
                }
            })
            .collect(),
    )
}

fn deny_groups(tp: Option<&[PortDenyRule]>) -> Option<Vec<PortGroup>> {
    let tp = tp.filter(|t| !t.is_empty())?;
    Some(
        tp.iter()
            .map(|pr| PortGroup {
                ports: port_matches(pr.ports.as_deref()),
                l7: L7::None,
            })
            .collect(),
    )
}

/// The peer fields of one rule element, as written.
struct Peers<'a> {
    endpoints: Option<&'a [Selector]>,
    cidrs: Option<&'a [crate::policy::Cidr]>,
    cidr_sets: Option<&'a [CidrRule]>,
    entities: Option<&'a [Entity]>,
    /// Whether a peer field the model does not evaluate was written.
    other: bool,
}

fn element(
    ns: Option<&str>,
    written: Peers<'_>,
    groups: Option<Vec<PortGroup>>,
    unmodelled: Vec<&'static str>,
    ids: &[Identity],
) -> Element {
    let Peers {
        endpoints,
        cidrs,
        cidr_sets,
        entities,
        other: other_peer_field,
    } = written;
    let any_peer_field = endpoints.is_some()
        || cidrs.is_some()
        || cidr_sets.is_some()
        || entities.is_some()
        || other_peer_field;
    let peers = if any_peer_field {
        let mut v = Vec::new();
        for s in endpoints.unwrap_or_default() {
            let (compiled, added) = CompiledSelector::peer(s, ns);
            v.push(Peer::Endpoints {
                written: s.clone(),
                compiled,
                unscoped: CompiledSelector::from_selector(s),
                namespace_added: if added { ns.map(str::to_string) } else { None },
            });
        }
        for c in cidrs.unwrap_or_default() {
            v.push(Peer::Cidr {
                cidr: c.0,
                except: Vec::new(),
            });
        }
        for cs in cidr_sets.unwrap_or_default() {
            match cs.cidr {
                Some(c) => v.push(Peer::Cidr {
                    cidr: c.0,
                    except: cs.except.iter().flatten().map(|e| e.0).collect(),
                }),
                None => v.push(Peer::Unmodelled("cidrGroupRef/cidrGroupSelector")),
            }
        }
        for e in entities.unwrap_or_default() {
            v.push(Peer::Entity(*e));
        }
        Some(v)
    } else {
        None
    };
    let words = ids.len().div_ceil(64);
    let mut bits = vec![0u64; words.max(1)];
    for (i, id) in ids.iter().enumerate() {
        let m = match &peers {
            // §4: no peer field and ports given: every peer; no peer field and no ports: no filter at all.
            None => groups.is_some(),
            Some(ps) => ps.iter().any(|p| peer_matches(p, id)),
        };
        if m {
            set_bit(&mut bits, i);
        }
    }
    Element {
        peers,
        groups,
        peer_bits: bits,
        unmodelled,
    }
}

/// §2: the L7 rules of one peer selector on one port must be of one kind. Cilium keeps one policy per
/// (port, protocol, selector) and refuses to merge HTTP, Kafka and DNS rules into it ("cannot merge
/// conflicting L7 parsers"); it then cannot compute the endpoint's policy at all. Selectors are the same
/// when they are written the same after namespace defaulting; different selectors that select the same
/// peers do not conflict (checked against Cilium's engine by the oracle).
fn l7_parser_conflict(
    rules: &[CompiledRule],
    selected_by: &[usize],
    policies: &[Policy],
) -> Option<String> {
    use std::collections::BTreeMap;
    let mut seen: BTreeMap<(usize, String, String), (&'static str, usize)> = BTreeMap::new();
    for dir in [Direction::Ingress, Direction::Egress] {
        for &r in selected_by {
            let rule = &rules[r];
            for e in &rule.allow[dir.idx()] {
                let peers = element_keys(e);
                for g in e.groups.iter().flatten() {
                    let kind = match &g.l7 {
                        L7::None => continue,
                        L7::Http(_) => "http",
                        L7::Kafka(_) => "kafka",
                        L7::Dns(_) => "dns",
                        // proxylib parsers are named by `l7proto`: not evaluated by the model.
                        L7::Other => continue,
                    };
                    for pm in &g.ports {
                        let protos: &[Protocol] = if pm.protocol == Protocol::Any {
                            &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                        } else {
                            std::slice::from_ref(&pm.protocol)
                        };
                        for proto in protos {
                            let port = match pm.end_port {
                                Some(end) => format!("{}-{end}/{proto}", pm.port),
                                None => format!("{}/{proto}", pm.port),
                            };
                            for peer in &peers {
                                let key = (dir.idx(), port.clone(), peer.clone());
                                match seen.get(&key) {
                                    Some((k, other)) if *k != kind => {
                                        let name =
                                            |i: usize| policies[rules[i].policy].qualified_name();
                                        return Some(format!(
                                            "cannot merge conflicting L7 parsers ({k}/{kind}) at {} port {port} for the peer {peer} ({} and {})",
                                            dir.section(),
                                            name(*other),
                                            name(r)
                                        ));
                                    }
                                    Some(_) => {}
                                    None => {
                                        seen.insert(key, (kind, r));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    None
}

/// The selectors an element's peers are keyed by. A list that includes the wildcard is the wildcard alone:
/// Cilium keeps only the wildcard selector (so `fromEntities: [all, host]` does not key the host).
fn element_keys(e: &Element) -> Vec<String> {
    let keys: Vec<String> = match &e.peers {
        None => return vec!["*".to_string()],
        Some(ps) => ps.iter().flat_map(peer_keys).collect(),
    };
    if keys.iter().any(|k| k == "*") {
        vec!["*".to_string()]
    } else {
        keys
    }
}

/// A peer as Cilium keys its per-selector policies: selectors written the same (after namespace
/// defaulting, in any order) are one; every entity `all` and a missing peer field are the wildcard; an
/// entity stands for the selectors Cilium expands it into (`world`: world, world-ipv4 and world-ipv6;
/// `cluster`: the host, remote-node, init, ingress, health, unmanaged and kube-apiserver selectors and the
/// cluster-name label).
fn peer_keys(p: &Peer) -> Vec<String> {
    let entity = |n: &str| format!("entity {n}");
    match p {
        Peer::Endpoints { compiled, .. } => {
            let mut reqs: Vec<String> = compiled.reqs.iter().map(|r| format!("{r:?}")).collect();
            reqs.sort();
            reqs.dedup();
            if reqs.is_empty() {
                vec!["*".to_string()]
            } else {
                vec![format!("{{{}}}", reqs.join(", "))]
            }
        }
        Peer::Cidr { cidr, except } => {
            let mut ex: Vec<String> = except.iter().map(ToString::to_string).collect();
            ex.sort();
            vec![format!("cidr {cidr} except [{}]", ex.join(", "))]
        }
        Peer::Entity(Entity::All) => vec!["*".to_string()],
        Peer::Entity(Entity::World) => ["world", "world-ipv4", "world-ipv6"]
            .iter()
            .map(|n| entity(n))
            .collect(),
        Peer::Entity(Entity::Cluster) => [
            "host",
            "remote-node",
            "init",
            "ingress",
            "health",
            "unmanaged",
            "kube-apiserver",
            "cluster-name",
        ]
        .iter()
        .map(|n| entity(n))
        .collect(),
        Peer::Entity(e) => vec![entity(match e {
            Entity::WorldIpv4 => "world-ipv4",
            Entity::WorldIpv6 => "world-ipv6",
            Entity::Host => "host",
            Entity::RemoteNode => "remote-node",
            Entity::KubeApiserver => "kube-apiserver",
            Entity::Init => "init",
            Entity::Ingress => "ingress",
            Entity::Unmanaged => "unmanaged",
            Entity::Health => "health",
            _ => "none",
        })],
        Peer::Unmodelled(_) => Vec::new(),
    }
}

fn peer_matches(p: &Peer, id: &Identity) -> bool {
    match p {
        Peer::Endpoints { compiled, .. } => compiled.matches(&id.labels),
        // §3: CIDR selectors match only peers outside the cluster.
        Peer::Cidr { cidr, except } => {
            id.kind == IdentityKind::World
                && id
                    .ip
                    .is_some_and(|ip| cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip)))
        }
        Peer::Entity(e) => match e {
            Entity::All => true,
            Entity::World => id.kind == IdentityKind::World,
            Entity::WorldIpv4 => {
                id.kind == IdentityKind::World && id.ip.is_some_and(|ip| ip.is_ipv4())
            }
            Entity::WorldIpv6 => {
                id.kind == IdentityKind::World && id.ip.is_some_and(|ip| ip.is_ipv6())
            }
            Entity::Cluster => id.kind != IdentityKind::World,
            Entity::Host => id.kind == IdentityKind::Host,
            Entity::RemoteNode => id.kind == IdentityKind::RemoteNode,
            Entity::KubeApiserver => id.kind == IdentityKind::KubeApiserver,
            Entity::Init | Entity::Ingress | Entity::Unmanaged | Entity::Health | Entity::None => {
                false
            }
        },
        Peer::Unmodelled(_) => false,
    }
}

#[cfg(test)]
mod tests;
