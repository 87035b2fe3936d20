//! The flow model: what one Hubble event says, independent of how it arrived
//! (gRPC from Relay, or a line of `hubble observe -o json`).
//!
//! Enum values keep Hubble's wire codes, so a value this crate does not know
//! yet (a newer Cilium) survives as `Other(code)` instead of failing.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Defines a Hubble enum: known variants with their wire code and wire
/// name, plus `Other(code)` for values this crate does not know.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A code this crate does not know (for example from a newer Cilium).
            Other(i32),
        }

        impl $name {
            /// The value for a wire code.
            pub fn from_code(code: i32) -> Self {
                match code {
                    $( $code => Self::$variant, )+
                    other => Self::Other(other),
                }
            }

            /// The wire code.
            pub fn code(self) -> i32 {
                match self {
                    $( Self::$variant => $code, )+
                    Self::Other(code) => code,
                }
            }

            /// The value for the name Hubble prints in JSON, if known.
            pub fn from_wire_name(name: &str) -> Option<Self> {
                match name {
                    $( $wire => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// The name Hubble prints in JSON (`None` for `Other`).
            pub fn wire_name(self) -> Option<&'static str> {
                match self {
                    $( Self::$variant => Some($wire), )+
                    Self::Other(_) => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.wire_name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.code()),
                }
            }
        }
    };
}

wire_enum! {
    /// What the datapath or proxy did with a flow.
    Verdict {
        /// No verdict (some trace events).
        Unknown = 0 => "VERDICT_UNKNOWN",
        /// Passed on to the next processing step.
        Forwarded = 1 => "FORWARDED",
        /// Dropped; see the drop reason.
        Dropped = 2 => "DROPPED",
        /// Processing error.
        Error = 3 => "ERROR",
        /// Policy audit mode: would have been dropped, was forwarded.
        Audit = 4 => "AUDIT",
        /// Redirected to the L7 proxy.
        Redirected = 5 => "REDIRECTED",
        /// Seen at a trace point, no verdict yet.
        Traced = 6 => "TRACED",
        /// An address was translated.
        Translated = 7 => "TRANSLATED",
    }
}

wire_enum! {
    /// Whether a flow comes from the datapath (L3/L4) or the proxy (L7).
    FlowType {
        /// Not set.
        Unknown = 0 => "UNKNOWN_TYPE",
        /// A datapath event.
        L3L4 = 1 => "L3_L4",
        /// A proxy access-log record.
        L7 = 2 => "L7",
        /// A socket-level trace.
        Sock = 3 => "SOCK",
    }
}

wire_enum! {
    /// Direction of the connection relative to the endpoint that enforced policy.
    TrafficDirection {
        /// Not known.
        Unknown = 0 => "TRAFFIC_DIRECTION_UNKNOWN",
        /// Into the endpoint.
        Ingress = 1 => "INGRESS",
        /// Out of the endpoint.
        Egress = 2 => "EGRESS",
    }
}

wire_enum! {
    /// Kind of an L7 record.
    L7Type {
        /// Not set.
        Unknown = 0 => "UNKNOWN_L7_TYPE",
        /// A request as the proxy saw it (with the proxy's verdict).
        Request = 1 => "REQUEST",
        /// A response (for HTTP, carries the status code).
        Response = 2 => "RESPONSE",
        /// A sampled record.
        Sample = 3 => "SAMPLE",
    }
}

wire_enum! {
    /// Where in the datapath a trace event was taken.
    TraceObservationPoint {
        /// Not a trace event, or unknown.
        Unknown = 0 => "UNKNOWN_POINT",
        /// Towards the L7 proxy.
        ToProxy = 1 => "TO_PROXY",
        /// Towards the host namespace.
        ToHost = 2 => "TO_HOST",
        /// Towards the host network stack.
        ToStack = 3 => "TO_STACK",
        /// Towards the tunnel device.
        ToOverlay = 4 => "TO_OVERLAY",
        /// Delivered to the destination endpoint.
        ToEndpoint = 101 => "TO_ENDPOINT",
        /// Received from an endpoint.
        FromEndpoint = 5 => "FROM_ENDPOINT",
        /// Received from the L7 proxy.
        FromProxy = 6 => "FROM_PROXY",
        /// Received from the host namespace.
        FromHost = 7 => "FROM_HOST",
        /// Received from the host network stack.
        FromStack = 8 => "FROM_STACK",
        /// Received from the tunnel device.
        FromOverlay = 9 => "FROM_OVERLAY",
        /// Received from a native device.
        FromNetwork = 10 => "FROM_NETWORK",
        /// Towards a native device.
        ToNetwork = 11 => "TO_NETWORK",
    }
}

wire_enum! {
    /// Where Hubble lost events.
    LostEventSource {
        /// Not known.
        Unknown = 0 => "UNKNOWN_LOST_EVENT_SOURCE",
        /// The BPF perf ring buffer overflowed (agent did not keep up).
        PerfEventRingBuffer = 1 => "PERF_EVENT_RING_BUFFER",
        /// Hubble's event queue was full.
        ObserverEventsQueue = 2 => "OBSERVER_EVENTS_QUEUE",
        /// Events were overwritten in Hubble's ring buffer before being read.
        HubbleRingBuffer = 3 => "HUBBLE_RING_BUFFER",
    }
}

wire_enum! {
    /// Relay's view of one node.
    NodeState {
        /// Not known.
        Unknown = 0 => "UNKNOWN_NODE_STATE",
        /// Connected: its flows are in the stream.
        Connected = 1 => "NODE_CONNECTED",
        /// Not reachable: its flows are missing until it reconnects.
        Unavailable = 2 => "NODE_UNAVAILABLE",
        /// Removed from the cluster.
        Gone = 3 => "NODE_GONE",
        /// Reported an error; Relay will not retry.
        Error = 4 => "NODE_ERROR",
    }
}

/// A datapath drop reason (Hubble `DropReason`, the BPF drop code taken positive).
///
/// A newtype rather than an enum: Cilium adds reasons often, and the code is
/// what matters. The two policy reasons have constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropReason(pub u32);

impl DropReason {
    /// No allow rule matched (default deny), BPF `DROP_POLICY`.
    pub const POLICY_DENIED: DropReason = DropReason(133);
    /// An explicit `ingressDeny`/`egressDeny` rule matched, BPF `DROP_POLICY_DENY`.
    pub const POLICY_DENY: DropReason = DropReason(181);
    /// Mutual authentication required and not yet done (transient by design).
    pub const AUTH_REQUIRED: DropReason = DropReason(189);

    /// True for the two reasons that mean "network policy refused this packet".
    pub fn is_policy(self) -> bool {
        self == Self::POLICY_DENIED || self == Self::POLICY_DENY
    }

    /// Hubble's name for the reason, if this crate knows it.
    pub fn name(self) -> Option<&'static str> {
        i32::try_from(self.0)
            .ok()
            .and_then(|code| crate::proto::flow::DropReason::try_from(code).ok())
            .map(|reason| reason.as_str_name())
    }

    /// The reason for a name as Hubble prints it (`"POLICY_DENIED"`).
    pub fn from_name(name: &str) -> Option<DropReason> {
        crate::proto::flow::DropReason::from_str_name(name)
            .and_then(|reason| u32::try_from(reason as i32).ok())
            .map(DropReason)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "drop reason {}", self.0),
        }
    }
}

/// The Cilium monitor event a flow came from (`event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    /// Monitor message type (see the constants).
    pub kind: i32,
    /// Sub-type; for drops, the drop reason.
    pub sub_type: i32,
}

impl EventType {
    /// A drop notification.
    pub const DROP: i32 = 1;
    /// A trace notification.
    pub const TRACE: i32 = 4;
    /// A policy-verdict notification (carries the policy attribution).
    pub const POLICY_VERDICT: i32 = 5;
    /// A socket trace.
    pub const TRACE_SOCK: i32 = 7;
    /// An L7 access-log record.
    pub const ACCESS_LOG: i32 = 129;
    /// An agent event.
    pub const AGENT: i32 = 130;

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self.kind {
            Self::DROP => "drop",
            Self::TRACE => "trace",
            Self::POLICY_VERDICT => "policy-verdict",
            Self::TRACE_SOCK => "trace-sock",
            Self::ACCESS_LOG => "l7",
            Self::AGENT => "agent",
            _ => "event",
        }
    }
}

/// A Kubernetes Service a flow was addressed through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One side of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// IP address from the IP header (`None` when absent or unparsable).
    pub ip: Option<IpAddr>,
    /// Security identity (2 = world; >= 2^24 = local CIDR identities).
    pub identity: u32,
    /// Cilium endpoint ID (0 when not a local endpoint).
    pub id: u32,
    /// Cluster name.
    pub cluster_name: String,
    /// Pod namespace (empty when not a pod).
    pub namespace: String,
    /// Pod name (empty when not a pod).
    pub pod_name: String,
    /// Labels as Cilium writes them, e.g. `k8s:app=api`, `reserved:world`.
    pub labels: Vec<String>,
    /// The Service the flow was addressed through, if any.
    pub service: Option<ServiceRef>,
    /// DNS names Cilium knows for the IP.
    pub names: Vec<String>,
}

impl Endpoint {
    /// The reserved `world` identity.
    pub const IDENTITY_WORLD: u32 = 2;
    /// The reserved `world-ipv4` identity (dual-stack clusters).
    pub const IDENTITY_WORLD_IPV4: u32 = 9;
    /// The reserved `world-ipv6` identity (dual-stack clusters).
    pub const IDENTITY_WORLD_IPV6: u32 = 10;
    /// First locally allocated (CIDR) identity.
    pub const LOCAL_IDENTITY_MIN: u32 = 1 << 24;

    /// True when the peer is outside the cluster (world or a CIDR identity),
    /// so no Cilium ingress policy applies to it.
    pub fn is_outside_cluster(&self) -> bool {
        matches!(
            self.identity,
            Self::IDENTITY_WORLD | Self::IDENTITY_WORLD_IPV4 | Self::IDENTITY_WORLD_IPV6
        ) || self.identity >= Self::LOCAL_IDENTITY_MIN
            || self.labels.iter().any(|l| l.starts_with("reserved:world"))
    }

    /// `namespace/pod`, or the IP, or `?` for reports.
    pub fn display_name(&self) -> String {
        if !self.pod_name.is_empty() {
            format!("{}/{}", self.namespace, self.pod_name)
        } else if let Some(ip) = self.ip {
            ip.to_string()
        } else if let Some(label) = self.labels.iter().find(|l| l.starts_with("reserved:")) {
            label.clone()
        } else {
            "?".to_string()
        }
    }
}

/// TCP flags of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[allow(missing_docs)]
pub struct TcpFlags {
    pub fin: bool,
    pub syn: bool,
    pub rst: bool,
    pub psh: bool,
    pub ack: bool,
    pub urg: bool,
    pub ece: bool,
    pub cwr: bool,
    pub ns: bool,
}

impl TcpFlags {
    /// A connection attempt: SYN without ACK.
    pub fn is_syn_only(self) -> bool {
        self.syn && !self.ack
    }

    /// The server's answer to a SYN.
    pub fn is_syn_ack(self) -> bool {
        self.syn && self.ack
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.syn, "SYN"),
            (self.ack, "ACK"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.urg, "URG"),
            (self.ece, "ECE"),
            (self.cwr, "CWR"),
            (self.ns, "NS"),
        ];
        let mut first = true;
        for (set, name) in names {
            if set {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Transport protocol of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// The L4 header of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum L4 {
    Tcp {
        source_port: u16,
        destination_port: u16,
        flags: TcpFlags,
    },
    Udp {
        source_port: u16,
        destination_port: u16,
    },
    Sctp {
        source_port: u16,
        destination_port: u16,
    },
    Icmpv4 {
        icmp_type: u32,
        code: u32,
    },
    Icmpv6 {
        icmp_type: u32,
        code: u32,
    },
}

impl L4 {
    /// Source and destination port (`None` for ICMP).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            L4::Tcp {
                source_port,
                destination_port,
                ..
            }
            | L4::Udp {
                source_port,
                destination_port,
            }
            | L4::Sctp {
                source_port,
                destination_port,
            } => Some((source_port, destination_port)),
            L4::Icmpv4 { .. } | L4::Icmpv6 { .. } => None,
        }
    }

    /// TCP or UDP (`None` for the others).
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            L4::Tcp { .. } => Some(Protocol::Tcp),
            L4::Udp { .. } => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// TCP flags (`None` unless TCP).
    pub fn tcp_flags(&self) -> Option<TcpFlags> {
        match self {
            L4::Tcp { flags, .. } => Some(*flags),
            _ => None,
        }
    }
}

/// An HTTP access-log record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRecord {
    /// Status code (0 on requests: request records carry none).
    pub code: u32,
    /// Method.
    pub method: String,
    /// Full URL as Envoy logged it, e.g. `http://api:8080/v1/items?x=1`.
    pub url: String,
    /// Protocol, e.g. `HTTP/1.1`.
    pub protocol: String,
    /// Headers as logged (key, value).
    pub headers: Vec<(String, String)>,
}

impl HttpRecord {
    /// The path of [`HttpRecord::url`], without scheme, authority or query.
    pub fn path(&self) -> &str {
        url_path(&self.url)
    }
}

/// The path part of a URL or request target, without the query string.
pub(crate) fn url_path(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(scheme_end) => {
            let after = &url[scheme_end + 3..];
            match after.find('/') {
                Some(slash) => &after[slash..],
                None => "/",
            }
        }
        None => url,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// A Kafka access-log record (Kafka policy is deprecated in Cilium 1.19, removed in 1.20).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KafkaRecord {
    /// Error code; absent (0) on requests.
    pub error_code: i32,
    /// API version of the request.
    pub api_version: i32,
    /// API key name as Hubble reports it, e.g. `produce`.
    pub api_key: String,
    /// Correlation ID.
    pub correlation_id: i32,
    /// Topic (one record per topic).
    pub topic: String,
}

/// A DNS access-log record (from Cilium's DNS proxy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsRecord {
    /// Queried name, e.g. `api.ns1.svc.cluster.local.`.
    pub query: String,
    /// Addresses in the answer.
    pub ips: Vec<String>,
    /// TTL of the answer.
    pub ttl: u32,
    /// CNAMEs in the answer.
    pub cnames: Vec<String>,
    /// Response code (0 NOERROR, 3 NXDOMAIN, 5 REFUSED: the proxy's deny).
    pub rcode: u32,
    /// Query types, e.g. `A`.
    pub qtypes: Vec<String>,
    /// Resource record types in the answer.
    pub rrtypes: Vec<String>,
    /// Where the record came from.
    pub observation_source: String,
}

/// The protocol-specific part of an L7 record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum L7Record {
    Http(HttpRecord),
    Kafka(KafkaRecord),
    Dns(DnsRecord),
}

/// The L7 part of a flow (set only on `Type: L7` flows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7 {
    /// Request, response or sample.
    pub kind: L7Type,
    /// Latency of the response in nanoseconds.
    pub latency_ns: u64,
    /// The record, if the proxy parsed one.
    pub record: Option<L7Record>,
}

/// A policy named in the attribution fields (`*_allowed_by`, `*_denied_by`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRef {
    /// Policy name.
    pub name: String,
    /// Namespace (empty for clusterwide policies).
    pub namespace: String,
    /// Labels Cilium derived for the rule.
    pub labels: Vec<String>,
    /// Policy repository revision.
    pub revision: u64,
    /// Kind, e.g. `CiliumNetworkPolicy`.
    pub kind: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.kind.is_empty() {
            write!(f, "{} ", self.kind)?;
        }
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// One Hubble flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// When the event happened (node clock).
    pub time: Option<SystemTime>,
    /// Unique ID.
    pub uuid: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it was dropped (only on drops).
    pub drop_reason: Option<DropReason>,
    /// Datapath (L3/L4) or proxy (L7).
    pub flow_type: FlowType,
    /// The monitor event it came from.
    pub event_type: Option<EventType>,
    /// Ingress or egress, relative to the enforcing endpoint.
    pub direction: TrafficDirection,
    /// Reply direction of a connection (`None` when Hubble could not tell).
    pub is_reply: Option<bool>,
    /// Trace point (trace events only).
    pub observation_point: TraceObservationPoint,
    /// Policy match type of policy-verdict events (0 none, 1 L3, 2 L3-L4, 3 L4, 4 all, ...).
    pub policy_match_type: u32,
    /// Source side.
    pub source: Endpoint,
    /// Destination side.
    pub destination: Endpoint,
    /// L4 header.
    pub l4: Option<L4>,
    /// L7 record (L7 flows).
    pub l7: Option<L7>,
    /// Policies that allowed the flow on ingress.
    pub ingress_allowed_by: Vec<PolicyRef>,
    /// Policies that allowed the flow on egress.
    pub egress_allowed_by: Vec<PolicyRef>,
    /// Policies whose deny rules dropped the flow on ingress.
    pub ingress_denied_by: Vec<PolicyRef>,
    /// Policies whose deny rules dropped the flow on egress.
    pub egress_denied_by: Vec<PolicyRef>,
    /// Node that observed the flow, e.g. `kind-kind/kind-worker`.
    pub node_name: String,
    /// Proxy port the flow was redirected to (0 if none).
    pub proxy_port: u32,
    /// Hubble's one-line summary (deprecated upstream, still useful in reports).
    pub summary: String,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            time: None,
            uuid: String::new(),
            verdict: Verdict::Unknown,
            drop_reason: None,
            flow_type: FlowType::Unknown,
            event_type: None,
            direction: TrafficDirection::Unknown,
            is_reply: None,
            observation_point: TraceObservationPoint::Unknown,
            policy_match_type: 0,
            source: Endpoint::default(),
            destination: Endpoint::default(),
            l4: None,
            l7: None,
            ingress_allowed_by: Vec::new(),
            egress_allowed_by: Vec::new(),
            ingress_denied_by: Vec::new(),
            egress_denied_by: Vec::new(),
            node_name: String::new(),
            proxy_port: 0,
            summary: String::new(),
        }
    }
}

impl Flow {
    /// True for a policy-verdict event.
    pub fn is_policy_verdict(&self) -> bool {
        self.event_type
            .is_some_and(|e| e.kind == EventType::POLICY_VERDICT)
    }

    /// The policies named in the attribution field for this flow's direction
    /// (`*_denied_by` for drops, `*_allowed_by` otherwise); both directions
    /// when the direction is unknown.
    pub fn deciding_policies(&self) -> Vec<PolicyRef> {
        let dropped = self.verdict == Verdict::Dropped;
        let (ingress, egress) = if dropped {
            (&self.ingress_denied_by, &self.egress_denied_by)
        } else {
            (&self.ingress_allowed_by, &self.egress_allowed_by)
        };
        match self.direction {
            TrafficDirection::Ingress => ingress.clone(),
            TrafficDirection::Egress => egress.clone(),
            _ => ingress.iter().chain(egress.iter()).cloned().collect(),
        }
    }
}

impl fmt::Display for Flow {
    /// One line for reports: time, node, source -> destination, verdict, details.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(time) = self.time {
            write!(f, "{} ", format_time(time))?;
        }
        if !self.node_name.is_empty() {
            write!(f, "[{}] ", self.node_name)?;
        }
        let (sport, dport) = self.l4.and_then(|l4| l4.ports()).unwrap_or((0, 0));
        write!(
            f,
            "{}:{} -> {}:{} {}",
            self.source.display_name(),
            sport,
            self.destination.display_name(),
            dport,
            self.verdict
        )?;
        if let Some(reason) = self.drop_reason {
            write!(f, " {reason}")?;
        }
        if self.direction != TrafficDirection::Unknown {
            write!(f, " {}", self.direction)?;
        }
        if let Some(event) = self.event_type {
            write!(f, " ({})", event.name())?;
        }
        if self.is_reply == Some(true) {
            f.write_str(" reply")?;
        }
        match (&self.l4, &self.l7) {
            (_, Some(l7)) => {
                write!(f, " L7 {}", l7.kind)?;
                match &l7.record {
                    Some(L7Record::Http(http)) => {
                        write!(f, " HTTP {} {}", http.method, http.url)?;
                        if http.code != 0 {
                            write!(f, " -> {}", http.code)?;
                        }
                    }
                    Some(L7Record::Kafka(kafka)) => write!(
                        f,
                        " Kafka {} topic {:?} error {}",
                        kafka.api_key, kafka.topic, kafka.error_code
                    )?,
                    Some(L7Record::Dns(dns)) => {
                        write!(f, " DNS {} rcode {}", dns.query, dns.rcode)?
                    }
                    None => {}
                }
            }
            (Some(L4::Tcp { flags, .. }), None) => write!(f, " TCP {flags}")?,
            (Some(L4::Udp { .. }), None) => f.write_str(" UDP")?,
            _ => {}
        }
        let policies = self.deciding_policies();
        if !policies.is_empty() {
            let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
            write!(f, " by {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// A node-state change announced by Relay inside the flow stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The new state.
    pub state: NodeState,
    /// The nodes it applies to.
    pub nodes: Vec<String>,
    /// Optional message, e.g. the connection error.
    pub message: String,
}

/// A notice that events were lost before they reached the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvents {
    /// Where they were lost.
    pub source: LostEventSource,
    /// How many.
    pub count: u64,
    /// CPU, for perf ring buffer losses.
    pub cpu: Option<i32>,
}

/// The content of one stream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A flow (shared: many probes may keep it).
    Flow(Arc<Flow>),
    /// A node connected, became unavailable, failed or left.
    NodeStatus(NodeStatus),
    /// Events were lost.
    LostEvents(LostEvents),
}

/// One message of a `GetFlows` stream (or one line of `hubble observe -o json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Node that produced the message (empty when not given).
    pub node_name: String,
    /// When it was observed (the response's time, else the flow's time).
    pub time: Option<SystemTime>,
    /// The content.
    pub payload: Payload,
}

impl Event {
    /// An event carrying a flow; node and time are taken from the flow.
    pub fn from_flow(flow: Flow) -> Event {
        Event {
            node_name: flow.node_name.clone(),
            time: flow.time,
            payload: Payload::Flow(Arc::new(flow)),
        }
    }

    /// The flow, if this event carries one.
    pub fn flow(&self) -> Option<&Flow> {
        match &self.payload {
            Payload::Flow(flow) => Some(flow),
            _ => None,
        }
    }
}

/// Converts seconds + nanoseconds since the Unix epoch (protobuf `Timestamp`)
/// to a `SystemTime`; `None` when out of range.
pub(crate) fn system_time(seconds: i64, nanos: i32) -> Option<SystemTime> {
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    if seconds >= 0 {
        let secs = u64::try_from(seconds).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    } else {
        let back = u64::try_from(seconds.checked_neg()?).ok()?;
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(back))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// Seconds and nanoseconds since the Unix epoch (for protobuf `Timestamp`).
pub(crate) fn unix_parts(time: SystemTime) -> (i64, i32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ),
        Err(before) => {
            let d = before.duration();
            let mut secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    }
}

/// RFC 3339 with nanoseconds, in UTC (`2026-01-01T00:00:00.000000001Z`).
pub fn format_time(time: SystemTime) -> String {
    let (secs, nanos) = unix_parts(time);
    match chrono::DateTime::<chrono::Utc>::from_timestamp(secs, u32::try_from(nanos).unwrap_or(0)) {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => format!("{secs}.{nanos:09}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_path_strips_scheme_authority_and_query() {
        assert_eq!(url_path("http://api:8080/v1/items?x=1"), "/v1/items");
        assert_eq!(url_path("https://api"), "/");
        assert_eq!(url_path("/healthz#top"), "/healthz");
    }

    #[test]
    fn drop_reason_names_round_trip() {
        assert_eq!(DropReason::from_name("POLICY_DENY"), Some(DropReason(181)));
        assert_eq!(DropReason::POLICY_DENIED.name(), Some("POLICY_DENIED"));
        assert_eq!(DropReason(9999).name(), None);
        assert!(DropReason::POLICY_DENIED.is_policy());
        assert!(!DropReason::AUTH_REQUIRED.is_policy());
    }

    #[test]
    fn unknown_enum_codes_survive() {
        assert_eq!(Verdict::from_code(42), Verdict::Other(42));
        assert_eq!(Verdict::from_code(42).code(), 42);
        assert_eq!(Verdict::from_wire_name("DROPPED"), Some(Verdict::Dropped));
    }

    #[test]
    fn time_parts_round_trip_before_and_after_epoch() {
        for (s, n) in [(1_700_000_000, 5), (-3, 250_000_000), (0, 0)] {
            let t = system_time(s, n).unwrap();
            assert_eq!(unix_parts(t), (s, n));
        }
        assert_eq!(
            format_time(system_time(1_767_225_600, 1).unwrap()),
            "2026-01-01T00:00:00.000000001Z"
        );
    }
}
