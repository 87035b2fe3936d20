//! Hubble's verdict for one probe, and the report that carries it.

use std::fmt;
use std::sync::Arc;

use crate::model::{DropReason, Flow, LostEventSource, NodeState, PolicyRef, TrafficDirection};

/// What Hubble's flows say happened to a probe.
///
/// `Inconclusive` is never an allow or a deny: callers must report it as a
/// collection problem, not as a policy result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubbleVerdict {
    /// The connection passed L3/L4 policy.
    Forwarded(L34Forwarded),
    /// The datapath dropped the connection (by policy or for another reason).
    Dropped(L34Dropped),
    /// The proxy denied the L7 request.
    L7Denied(L7Verdict),
    /// The proxy allowed the L7 request.
    L7Allowed(L7Verdict),
    /// No flow of this probe was seen and collection was clean.
    NothingSeen,
    /// The evidence cannot support a verdict.
    Inconclusive {
        /// Why.
        reason: InconclusiveReason,
    },
}

/// The policy-level reading of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allowed (L3/L4 forwarded, or L7 allowed).
    Allow,
    /// Denied by policy (drop reason POLICY_DENIED/POLICY_DENY, or L7 denied).
    PolicyDeny,
    /// Dropped for a reason other than policy.
    OtherDrop,
}

impl HubbleVerdict {
    /// False only for [`HubbleVerdict::Inconclusive`].
    pub fn is_conclusive(&self) -> bool {
        !matches!(self, HubbleVerdict::Inconclusive { .. })
    }

    /// The policy-level reading; `None` for `NothingSeen` and `Inconclusive`.
    pub fn decision(&self) -> Option<Decision> {
        match self {
            HubbleVerdict::Forwarded(_) | HubbleVerdict::L7Allowed(_) => Some(Decision::Allow),
            HubbleVerdict::Dropped(d) if d.reason.is_policy() => Some(Decision::PolicyDeny),
            HubbleVerdict::Dropped(_) => Some(Decision::OtherDrop),
            HubbleVerdict::L7Denied(_) => Some(Decision::PolicyDeny),
            HubbleVerdict::NothingSeen | HubbleVerdict::Inconclusive { .. } => None,
        }
    }
}

impl fmt::Display for HubbleVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubbleVerdict::Forwarded(fw) => write!(f, "forwarded ({fw})"),
            HubbleVerdict::Dropped(d) => write!(f, "dropped ({d})"),
            HubbleVerdict::L7Denied(v) => write!(f, "L7 denied ({v})"),
            HubbleVerdict::L7Allowed(v) => write!(f, "L7 allowed ({v})"),
            HubbleVerdict::NothingSeen => f.write_str("no flow seen"),
            HubbleVerdict::Inconclusive { reason } => write!(f, "inconclusive: {reason}"),
        }
    }
}

fn write_policies(f: &mut fmt::Formatter<'_>, word: &str, list: &[PolicyRef]) -> fmt::Result {
    if !list.is_empty() {
        let names: Vec<String> = list.iter().map(ToString::to_string).collect();
        write!(f, ", {word} {}", names.join(" + "))?;
    }
    Ok(())
}

/// Evidence that a connection passed L3/L4 policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L34Forwarded {
    /// A reply from the destination (or the proxy standing in for it) was seen.
    pub reply_seen: bool,
    /// A packet was delivered to the destination endpoint (`to-endpoint`).
    pub delivered: bool,
    /// An ingress policy-verdict event allowed it.
    pub ingress_allowed: bool,
    /// An egress policy-verdict event allowed it.
    pub egress_allowed: bool,
    /// A policy-verdict event said AUDIT (audit mode: policy would have dropped it).
    pub audited: bool,
    /// Policies named in `ingress_allowed_by` / `egress_allowed_by`.
    pub allowed_by: Vec<PolicyRef>,
    /// Nodes that reported the evidence.
    pub nodes: Vec<String>,
}

impl fmt::Display for L34Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.reply_seen {
            parts.push("reply seen");
        }
        if self.delivered {
            parts.push("delivered");
        }
        if self.ingress_allowed {
            parts.push("ingress policy allowed");
        }
        if self.egress_allowed {
            parts.push("egress policy allowed");
        }
        if self.audited {
            parts.push("AUDIT: policy would have dropped it");
        }
        f.write_str(&parts.join(", "))?;
        write_policies(f, "allowed by", &self.allowed_by)
    }
}

/// Evidence that the datapath dropped a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L34Dropped {
    /// Drop reason (POLICY_DENIED 133: no allow rule; POLICY_DENY 181: deny rule).
    pub reason: DropReason,
    /// Where it was enforced.
    pub direction: TrafficDirection,
    /// Node that dropped it.
    pub node: String,
    /// Policies named in `ingress_denied_by` / `egress_denied_by` (only deny
    /// rules are named; a default-deny drop names none).
    pub denied_by: Vec<PolicyRef>,
    /// Drop events seen for the probe (one per retransmitted SYN).
    pub attempts: u32,
}

impl fmt::Display for L34Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.reason, self.direction)?;
        if !self.node.is_empty() {
            write!(f, ", node {}", self.node)?;
        }
        write!(f, ", {} drop event(s)", self.attempts)?;
        write_policies(f, "denied by", &self.denied_by)
    }
}

/// L7 protocol of a proxy verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L7Protocol {
    /// HTTP.
    Http,
    /// Kafka.
    Kafka,
    /// DNS.
    Dns,
}

/// The proxy's verdict on an L7 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7Verdict {
    /// Protocol.
    pub protocol: L7Protocol,
    /// HTTP status, or DNS rcode, or Kafka error code of the response when
    /// one was seen (a denied HTTP request answers 403, a refused DNS query
    /// rcode 5).
    pub status: Option<u32>,
    /// Node whose proxy logged the request.
    pub node: String,
    /// Direction of the L7 rule that applied.
    pub direction: TrafficDirection,
    /// Policies named on the L7 records, if any.
    pub policies: Vec<PolicyRef>,
}

impl fmt::Display for L7Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.protocol)?;
        if let Some(status) = self.status {
            write!(f, " status {status}")?;
        }
        write!(f, ", {}", self.direction)?;
        if !self.node.is_empty() {
            write!(f, ", node {}", self.node)?;
        }
        write_policies(f, "by", &self.policies)
    }
}

/// Why a result is inconclusive. The collection problems (all but
/// `PartialEvidence`) also appear as caveats on conclusive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InconclusiveReason {
    /// Hubble lost events while the probe ran.
    LostEvents {
        /// Node that lost them (empty when not named).
        node: String,
        /// Where they were lost.
        source: LostEventSource,
        /// How many.
        count: u64,
    },
    /// Relay could not see a node while the probe ran.
    NodeUnavailable {
        /// The node.
        node: String,
        /// Its state.
        state: NodeState,
        /// Relay's message, if any.
        message: String,
    },
    /// The flow stream failed or ended (e.g. the port-forward dropped).
    StreamFailed {
        /// What happened.
        message: String,
    },
    /// Some flows were seen but not the ones that decide.
    PartialEvidence {
        /// What was seen.
        seen: String,
        /// What was missing.
        missing: String,
    },
}

impl fmt::Display for InconclusiveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InconclusiveReason::LostEvents {
                node,
                source,
                count,
            } => {
                write!(f, "Hubble lost {count} event(s) ({source})")?;
                if !node.is_empty() {
                    write!(f, " on {node}")?;
                }
                f.write_str(" while the probe ran")
            }
            InconclusiveReason::NodeUnavailable {
                node,
                state,
                message,
            } => {
                write!(f, "Relay reported {node} as {state} while the probe ran")?;
                if !message.is_empty() {
                    write!(f, " ({message})")?;
                }
                Ok(())
            }
            InconclusiveReason::StreamFailed { message } => {
                write!(f, "the flow stream failed: {message}")
            }
            InconclusiveReason::PartialEvidence { seen, missing } => {
                write!(f, "saw {seen} but not {missing}")
            }
        }
    }
}

/// The part a flow played in a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowRole {
    /// A policy drop (decisive for a deny).
    PolicyDrop,
    /// A drop for another reason.
    Drop,
    /// A policy-verdict event that allowed the packet.
    PolicyAllowed,
    /// Delivered to the destination endpoint.
    Delivered,
    /// A reply from the destination side.
    Reply,
    /// A forward packet seen on the way (no verdict by itself).
    Forward,
    /// The proxy's record of the probe's L7 request.
    L7Request,
    /// The proxy's record of the response.
    L7Response,
    /// An L7 record on the probe's connection that does not match its request.
    OtherL7,
}

/// A flow attributed to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedFlow {
    /// Its part in the verdict.
    pub role: FlowRole,
    /// The flow.
    pub flow: Arc<Flow>,
}

/// How a probe's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// All decisive flows were seen (early verdict).
    Complete,
    /// Decisive flows were seen; the settle window for companion flows
    /// (attribution, L7 response) ran out.
    Settled,
    /// The caller's deadline passed.
    Deadline,
    /// The stream ended or failed before a decision.
    StreamEnded,
}

/// Everything Hubble said about one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The verdict.
    pub verdict: HubbleVerdict,
    /// Flows attributed to the probe, in stream order.
    pub flows: Vec<MatchedFlow>,
    /// Flows attributed but not kept (over the per-probe limit).
    pub omitted_flows: usize,
    /// Collection problems seen while the probe ran (also on conclusive
    /// reports: positive evidence stands, but the reader should know).
    pub caveats: Vec<InconclusiveReason>,
    /// How the wait ended.
    pub resolution: Resolution,
}

impl ProbeReport {
    /// The flows that decided the verdict (drops, allowing policy verdicts,
    /// deliveries, replies, L7 records).
    pub fn decisive_flows(&self) -> impl Iterator<Item = &MatchedFlow> {
        self.flows
            .iter()
            .filter(|m| !matches!(m.role, FlowRole::Forward | FlowRole::OtherL7))
    }
}
