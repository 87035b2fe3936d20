//! Deciding one probe's Hubble verdict from a stream of events.
//!
//! A [`Matcher`] is pure and synchronous: feed it events in stream order with
//! [`Matcher::observe`], ask [`Matcher::progress`] whether the decisive flows
//! have been seen, and call [`Matcher::finish`] for the report. The async
//! [`crate::FlowWatch`] drives many matchers from one shared stream.
//!
//! # Which flows belong to the probe
//! A flow belongs to the probe when its time is not before
//! `probe.start - clock_skew`, its protocol is the probe's, and either
//! - *forward*: source is `probe.source`, destination is `probe.destination`,
//!   destination port is `probe.port`; or
//! - *reply*: the same, mirrored (source port is `probe.port`).
//!
//! When `probe.source_port` is known, L3/L4 flows must also carry it (as
//! source port forward, destination port in replies). L7 records are matched
//! on endpoints, port and the L7 request instead, because the proxy may log
//! them for its own upstream connection.
//!
//! # What decides
//! - **Policy drop** (forward flow, DROPPED, reason POLICY_DENIED 133 or
//!   POLICY_DENY 181): decisive at once. Complete when the policy-verdict
//!   event (which carries `*_denied_by`) has been seen, else after the
//!   settle window. Each retransmitted SYN adds one drop event: counted in
//!   `attempts`, never a second verdict.
//! - **L7 probes**: the proxy's record of the request decides. HTTP: REQUEST
//!   DROPPED is a deny, REQUEST FORWARDED an allow; complete once the
//!   RESPONSE (403 for a deny) is also seen, in either order. A non-403
//!   response without a request record also means allowed. Kafka: the
//!   REQUEST record decides (requests carry no error code; response records
//!   are ignored). DNS: REQUEST DROPPED or a response with rcode 5 (REFUSED)
//!   is a deny; any other forwarded response an allow (a forwarded request
//!   record alone decides nothing).
//! - **L3/L4 probes**: forwarded once a reply, a delivery to the destination
//!   (`to-endpoint`), or an ingress policy-verdict allowing it is seen; for
//!   destinations outside the cluster (world or CIDR identity) an egress
//!   policy-verdict allowing it is enough.
//!
//! # When the result is inconclusive
//! Lost events, a node Relay reports as unavailable/erroring/gone, and a
//! failed stream are recorded as caveats when they happen within the probe's
//! window. Positive evidence (a drop, an L7 record, a reply) still decides,
//! because lost events can hide flows but never invent them. A verdict that
//! rests on absence (nothing seen, forwarded without confirmation, an L7
//! probe without an L7 record) becomes `Inconclusive` when any caveat exists,
//! and a result with only partial evidence is `Inconclusive` even without
//! one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::{
    DropReason, Event, Flow, FlowType, L7, L7Record, L7Type, Payload, PolicyRef,
    TraceObservationPoint, TrafficDirection, Verdict,
};
use crate::probe::{L7Request, Probe};
use crate::verdict::{
    FlowRole, HubbleVerdict, InconclusiveReason, L7Protocol, L7Verdict, L34Dropped, L34Forwarded,
    MatchedFlow, ProbeReport, Resolution,
};

/// Tuning of a [`Matcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOptions {
    /// How far before `probe.start` a flow may be stamped and still count
    /// (node clocks vs. the runner's clock). In kind all nodes share the
    /// host clock, so the default is zero.
    pub clock_skew: Duration,
    /// How many flows a report keeps (the rest are counted in `omitted_flows`).
    pub max_flows: usize,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            clock_skew: Duration::ZERO,
            max_flows: 256,
        }
    }
}

/// How far a matcher has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Progress {
    /// No decisive flow yet.
    Pending,
    /// A decisive flow was seen; companion flows (attribution, L7 response)
    /// are still missing. Worth waiting a short settle window.
    Decisive,
    /// Everything that decides was seen.
    Complete,
}

#[derive(Debug, Clone)]
struct DropSeen {
    reason: DropReason,
    direction: TrafficDirection,
    node: String,
}

#[derive(Debug, Clone)]
struct L7Seen {
    verdict: Verdict,
    status: Option<u32>,
    node: String,
    direction: TrafficDirection,
}

#[derive(Debug, Default)]
struct Evidence {
    policy_drop: Option<DropSeen>,
    policy_verdict_drops: u32,
    policy_drop_events: u32,
    other_drop: Option<DropSeen>,
    other_drop_events: u32,
    denied_by: Vec<PolicyRef>,
    forwarded: L34Forwarded,
    forward_seen: bool,
    outside_destination: bool,
    l7_request: Option<L7Seen>,
    l7_response: Option<L7Seen>,
    l7_policies: Vec<PolicyRef>,
    other_l7_seen: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orientation {
    Forward,
    Reply,
}

/// Decides one probe's verdict from events fed in stream order.
#[derive(Debug)]
pub struct Matcher {
    probe: Probe,
    not_before: Option<SystemTime>,
    max_flows: usize,
    flows: Vec<MatchedFlow>,
    omitted: usize,
    caveats: Vec<InconclusiveReason>,
    ev: Evidence,
}

fn merge_policies(into: &mut Vec<PolicyRef>, from: Vec<PolicyRef>) {
    for policy in from {
        if !into.contains(&policy) {
            into.push(policy);
        }
    }
}

fn normalise_kafka_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

fn normalise_dns(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Matcher {
    /// A matcher with default options.
    pub fn new(probe: Probe) -> Matcher {
        Matcher::with_options(probe, MatchOptions::default())
    }

    /// A matcher with the given options.
    pub fn with_options(probe: Probe, options: MatchOptions) -> Matcher {
        Matcher {
            not_before: probe.start.checked_sub(options.clock_skew),
            probe,
            max_flows: options.max_flows,
            flows: Vec::new(),
            omitted: 0,
            caveats: Vec::new(),
            ev: Evidence::default(),
        }
    }

    /// The probe.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Collection problems recorded so far.
    pub fn caveats(&self) -> &[InconclusiveReason] {
        &self.caveats
    }

    fn in_window(&self, time: Option<SystemTime>) -> bool {
        match (time, self.not_before) {
            (Some(t), Some(not_before)) => t >= not_before,
            _ => true,
        }
    }

    /// Records a collection problem (used by the watch for node states
    /// known at registration and for stream failures).
    pub fn add_caveat(&mut self, caveat: InconclusiveReason) {
        if let InconclusiveReason::LostEvents {
            node,
            source,
            count,
        } = &caveat
        {
            for existing in &mut self.caveats {
                if let InconclusiveReason::LostEvents {
                    node: n,
                    source: s,
                    count: c,
                } = existing
                    && n == node
                    && s == source
                {
                    *c = c.saturating_add(*count);
                    return;
                }
            }
        }
        if !self.caveats.contains(&caveat) {
            self.caveats.push(caveat);
        }
    }

    /// Feeds one event and returns the progress after it.
    pub fn observe(&mut self, event: &Event) -> Progress {
        match &event.payload {
            Payload::Flow(flow) => self.observe_flow(flow),
            Payload::LostEvents(lost) => {
                if self.in_window(event.time) {
                    self.add_caveat(InconclusiveReason::LostEvents {
                        node: event.node_name.clone(),
                        source: lost.source,
                        count: lost.count,
                    });
                }
            }
            Payload::NodeStatus(status) => {
                use crate::model::NodeState;
                let bad = matches!(
                    status.state,
                    NodeState::Unavailable | NodeState::Error | NodeState::Gone
                );
                if bad && self.in_window(event.time) {
                    for node in &status.nodes {
                        self.add_caveat(InconclusiveReason::NodeUnavailable {
                            node: node.clone(),
                            state: status.state,
                            message: status.message.clone(),
                        });
                    }
                }
            }
        }
        self.progress()
    }

    fn keep(&mut self, role: FlowRole, flow: &Arc<Flow>) {
        if self.flows.len() < self.max_flows {
            self.flows.push(MatchedFlow {
                role,
                flow: Arc::clone(flow),
            });
        } else {
            self.omitted += 1;
        }
    }

    fn orientation(&self, flow: &Flow) -> Option<(Orientation, u16)> {
        let l4 = flow.l4?;
        if l4.protocol()? != self.probe.protocol {
            return None;
        }
        let (sport, dport) = l4.ports()?;
        let p = &self.probe;
        if dport == p.port
            && p.source.matches(&flow.source)
            && p.destination.matches(&flow.destination)
        {
            Some((Orientation::Forward, sport))
        } else if sport == p.port
            && p.destination.matches(&flow.source)
            && p.source.matches(&flow.destination)
        {
            Some((Orientation::Reply, dport))
        } else {
            None
        }
    }

    fn observe_flow(&mut self, flow: &Arc<Flow>) {
        if !self.in_window(flow.time) {
            return;
        }
        let Some((orientation, client_port)) = self.orientation(flow) else {
            return;
        };
        if flow.flow_type == FlowType::L7 || flow.l7.is_some() {
            self.observe_l7(flow, orientation);
            return;
        }
        if self.probe.source_port.is_some_and(|p| p != client_port) {
            return;
        }
        self.observe_l34(flow, orientation);
    }

    fn note_node(&mut self, flow: &Flow) {
        if !flow.node_name.is_empty() && !self.ev.forwarded.nodes.contains(&flow.node_name) {
            self.ev.forwarded.nodes.push(flow.node_name.clone());
        }
    }

    fn observe_l34(&mut self, flow: &Arc<Flow>, orientation: Orientation) {
        let passing = matches!(
            flow.verdict,
            Verdict::Forwarded | Verdict::Redirected | Verdict::Audit | Verdict::Traced
        );
        match (flow.verdict, orientation) {
            (Verdict::Dropped, Orientation::Forward) => {
                let reason = flow.drop_reason.unwrap_or(DropReason(0));
                let seen = DropSeen {
                    reason,
                    direction: flow.direction,
                    node: flow.node_name.clone(),
                };
                if reason.is_policy() {
                    self.keep(FlowRole::PolicyDrop, flow);
                    if flow.is_policy_verdict() {
                        self.ev.policy_verdict_drops += 1;
                    } else {
                        self.ev.policy_drop_events += 1;
                    }
                    merge_policies(&mut self.ev.denied_by, flow.deciding_policies());
                    match &mut self.ev.policy_drop {
                        None => self.ev.policy_drop = Some(seen),
                        Some(existing) if existing.direction == TrafficDirection::Unknown => {
                            existing.direction = flow.direction;
                        }
                        Some(_) => {}
                    }
                } else {
                    self.keep(FlowRole::Drop, flow);
                    self.ev.other_drop_events += 1;
                    self.ev.other_drop.get_or_insert(seen);
                }
            }
            (Verdict::Dropped, Orientation::Reply) => self.keep(FlowRole::Drop, flow),
            (_, Orientation::Forward) if passing => {
                if flow.destination.is_outside_cluster() {
                    self.ev.outside_destination = true;
                }
                if flow.is_policy_verdict() {
                    self.keep(FlowRole::PolicyAllowed, flow);
                    match flow.direction {
                        TrafficDirection::Ingress => self.ev.forwarded.ingress_allowed = true,
                        TrafficDirection::Egress => self.ev.forwarded.egress_allowed = true,
                        _ => self.ev.forward_seen = true,
                    }
                    if flow.verdict == Verdict::Audit {
                        self.ev.forwarded.audited = true;
                    }
                    merge_policies(&mut self.ev.forwarded.allowed_by, flow.deciding_policies());
                } else if flow.observation_point == TraceObservationPoint::ToEndpoint
                    && flow.verdict == Verdict::Forwarded
                {
                    self.keep(FlowRole::Delivered, flow);
                    self.ev.forwarded.delivered = true;
                } else {
                    self.keep(FlowRole::Forward, flow);
                    self.ev.forward_seen = true;
                }
                self.note_node(flow);
            }
            (_, Orientation::Reply) if passing => {
                self.keep(FlowRole::Reply, flow);
                self.ev.forwarded.reply_seen = true;
                self.note_node(flow);
            }
            (Verdict::Translated, _) => self.keep(FlowRole::Forward, flow),
            _ => {}
        }
    }

    /// Whether an L7 record is the probe's request (or its response).
    fn l7_matches(request: &L7Request, l7: &L7) -> bool {
        let is_request = l7.kind == L7Type::Request;
        match (request, &l7.record) {
            (L7Request::Http { method, path }, Some(L7Record::Http(http))) => {
                if (is_request || !http.method.is_empty())
                    && !http.method.eq_ignore_ascii_case(method)
                {
                    return false;
                }
                if is_request || !http.url.is_empty() {
                    let wanted = path.split(['?', '#']).next().unwrap_or(path);
                    if http.path() != wanted {
                        return false;
                    }
                }
                true
            }
            (L7Request::Kafka { api_key, topic }, Some(L7Record::Kafka(kafka))) => {
                normalise_kafka_key(&kafka.api_key) == normalise_kafka_key(api_key)
                    && topic.as_ref().is_none_or(|t| *t == kafka.topic)
            }
            (L7Request::Dns { query }, Some(L7Record::Dns(dns))) => {
                normalise_dns(&dns.query) == normalise_dns(query)
            }
            _ => false,
        }
    }

    fn observe_l7(&mut self, flow: &Arc<Flow>, orientation: Orientation) {
        let Some(l7) = &flow.l7 else {
            self.keep(FlowRole::OtherL7, flow);
            self.ev.other_l7_seen = true;
            return;
        };
        let Some(request) = &self.probe.l7 else {
            // An L3/L4 probe: the proxy saw the connection, which says
            // L3/L4 let it through to the proxy, but nothing more.
            self.keep(FlowRole::OtherL7, flow);
            self.ev.other_l7_seen = true;
            self.ev.forward_seen = true;
            return;
        };
        if !Self::l7_matches(request, l7) {
            self.keep(FlowRole::OtherL7, flow);
            self.ev.other_l7_seen = true;
            return;
        }
        let status = match &l7.record {
            Some(L7Record::Http(h)) => (h.code != 0).then_some(h.code),
            Some(L7Record::Dns(d)) => (l7.kind == L7Type::Response).then_some(d.rcode),
            Some(L7Record::Kafka(k)) => u32::try_from(k.error_code).ok().filter(|c| *c != 0),
            None => None,
        };
        let seen = L7Seen {
            verdict: flow.verdict,
            status,
            node: flow.node_name.clone(),
            direction: flow.direction,
        };
        let kafka = matches!(request, L7Request::Kafka { .. });
        match (l7.kind, orientation) {
            (L7Type::Request, Orientation::Forward) => {
                self.keep(FlowRole::L7Request, flow);
                merge_policies(&mut self.ev.l7_policies, flow.deciding_policies());
                if self.ev.l7_request.is_none()
                    && matches!(
                        flow.verdict,
                        Verdict::Dropped | Verdict::Forwarded | Verdict::Audit
                    )
                {
                    self.ev.l7_request = Some(seen);
                }
            }
            (L7Type::Response, Orientation::Reply) if !kafka => {
                self.keep(FlowRole::L7Response, flow);
                if self.ev.l7_response.is_none() {
                    self.ev.l7_response = Some(seen);
                }
            }
            _ => {
                self.keep(FlowRole::OtherL7, flow);
                self.ev.other_l7_seen = true;
            }
        }
    }

    fn strong_forward(&self) -> bool {
        let fw = &self.ev.forwarded;
        fw.reply_seen
            || fw.delivered
            || fw.ingress_allowed
            || (fw.egress_allowed && self.ev.outside_destination)
    }

    /// The L7 verdict, if the records seen decide one, with its progress.
    fn l7_decision(&self, request: &L7Request) -> Option<(bool, Progress)> {
        let req = self.ev.l7_request.as_ref();
        let resp = self.ev.l7_response.as_ref();
        let req_denied = req.is_some_and(|r| r.verdict == Verdict::Dropped);
        let req_allowed =
            req.is_some_and(|r| matches!(r.verdict, Verdict::Forwarded | Verdict::Audit));
        match request {
            L7Request::Http { .. } => {
                if req_denied || req_allowed {
                    let progress = if resp.is_some() {
                        Progress::Complete
                    } else {
                        Progress::Decisive
                    };
                    Some((req_allowed, progress))
                } else if resp.is_some_and(|r| r.status.is_some_and(|s| s != 403)) {
                    Some((true, Progress::Decisive))
                } else {
                    None
                }
            }
            L7Request::Kafka { .. } => {
                (req_denied || req_allowed).then_some((req_allowed, Progress::Complete))
            }
            L7Request::Dns { .. } => {
                let refused = resp.is_some_and(|r| r.status == Some(5));
                if req_denied || refused {
                    Some((false, Progress::Complete))
                } else if resp.is_some_and(|r| r.verdict == Verdict::Forwarded) {
                    Some((true, Progress::Complete))
                } else {
                    // A forwarded request record alone does not decide: the
                    // proxy's refusal shows in the response (rcode 5).
                    None
                }
            }
        }
    }

    /// How far the matcher has come.
    pub fn progress(&self) -> Progress {
        if self.ev.policy_drop.is_some() {
            return if self.ev.policy_verdict_drops > 0 {
                Progress::Complete
            } else {
                Progress::Decisive
            };
        }
        match &self.probe.l7 {
            Some(request) => self
                .l7_decision(request)
                .map_or(Progress::Pending, |(_, progress)| progress),
            None if self.strong_forward() => Progress::Complete,
            None => Progress::Pending,
        }
    }

    fn absence_verdict(&self, partial: Option<InconclusiveReason>) -> HubbleVerdict {
        if let Some(other) = &self.ev.other_drop {
            return HubbleVerdict::Dropped(L34Dropped {
                reason: other.reason,
                direction: other.direction,
                node: other.node.clone(),
                denied_by: Vec::new(),
                attempts: self.ev.other_drop_events,
            });
        }
        if let Some(caveat) = self.caveats.first() {
            return HubbleVerdict::Inconclusive {
                reason: caveat.clone(),
            };
        }
        match partial {
            Some(reason) => HubbleVerdict::Inconclusive { reason },
            None => HubbleVerdict::NothingSeen,
        }
    }

    /// The verdict from everything seen so far (as if the wait ended now).
    pub fn verdict(&self) -> HubbleVerdict {
        if let Some(drop) = &self.ev.policy_drop {
            return HubbleVerdict::Dropped(L34Dropped {
                reason: drop.reason,
                direction: drop.direction,
                node: drop.node.clone(),
                denied_by: self.ev.denied_by.clone(),
                attempts: self.ev.policy_drop_events.max(self.ev.policy_verdict_drops),
            });
        }
        let any_forward = self.ev.forward_seen
            || self.ev.forwarded.egress_allowed
            || self.strong_forward()
            || self.ev.other_l7_seen;
        match &self.probe.l7 {
            Some(request) => {
                if let Some((allowed, _)) = self.l7_decision(request) {
                    let seen = self.ev.l7_request.as_ref().or(self.ev.l7_response.as_ref());
                    let status = self
                        .ev
                        .l7_response
                        .as_ref()
                        .and_then(|r| r.status)
                        .or_else(|| self.ev.l7_request.as_ref().and_then(|r| r.status));
                    let verdict = L7Verdict {
                        protocol: match request {
                            L7Request::Http { .. } => L7Protocol::Http,
                            L7Request::Kafka { .. } => L7Protocol::Kafka,
                            L7Request::Dns { .. } => L7Protocol::Dns,
                        },
                        status,
                        node: seen.map(|s| s.node.clone()).unwrap_or_default(),
                        direction: seen.map_or(TrafficDirection::Unknown, |s| s.direction),
                        policies: self.ev.l7_policies.clone(),
                    };
                    return if allowed {
                        HubbleVerdict::L7Allowed(verdict)
                    } else {
                        HubbleVerdict::L7Denied(verdict)
                    };
                }
                let partial = if self.ev.l7_response.is_some() {
                    let http = matches!(request, L7Request::Http { .. });
                    Some(InconclusiveReason::PartialEvidence {
                        seen: if http {
                            "an HTTP 403 response".to_string()
                        } else {
                            "an L7 response record".to_string()
                        },
                        missing: if http {
                            format!(
                                "the proxy's record of {request} (a 403 may come from the server)"
                            )
                        } else {
                            format!("the proxy's record of {request}")
                        },
                    })
                } else if self.ev.l7_request.is_some() {
                    Some(InconclusiveReason::PartialEvidence {
                        seen: "the proxy's request record".to_string(),
                        missing: format!("the response record of {request}"),
                    })
                } else if any_forward {
                    Some(InconclusiveReason::PartialEvidence {
                        seen: "the connection forwarded".to_string(),
                        missing: format!("the proxy's record of {request}"),
                    })
                } else {
                    None
                };
                self.absence_verdict(partial)
            }
            None => {
                if self.strong_forward() {
                    return HubbleVerdict::Forwarded(self.ev.forwarded.clone());
                }
                let partial = any_forward.then(|| InconclusiveReason::PartialEvidence {
                    seen: "packets leaving the source".to_string(),
                    missing: "a delivery, a reply or a drop".to_string(),
                });
                self.absence_verdict(partial)
            }
        }
    }

    /// Ends the wait and builds the report.
    pub fn finish(self, resolution: Resolution) -> ProbeReport {
        ProbeReport {
            verdict: self.verdict(),
            flows: self.flows,
            omitted_flows: self.omitted,
            caveats: self.caveats,
            resolution,
        }
    }

    /// Runs a probe over a finished capture (for example a parsed
    /// `hubble observe -o json` file) and reports.
    pub fn evaluate<'a>(
        probe: Probe,
        options: MatchOptions,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> ProbeReport {
        let mut matcher = Matcher::with_options(probe, options);
        let mut progress = Progress::Pending;
        for event in events {
            progress = matcher.observe(event);
            if progress == Progress::Complete {
                break;
            }
        }
        let resolution = match progress {
            Progress::Complete => Resolution::Complete,
            Progress::Decisive => Resolution::Settled,
            Progress::Pending => Resolution::Deadline,
        };
        matcher.finish(resolution)
    }
}
