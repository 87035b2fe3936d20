//! Conversion of the generated protobuf messages into the flow model.
//!
//! Lenient by design: a field that does not parse (an IP string, a port
//! above 65535) becomes "absent" rather than failing the whole stream.

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::{
    DnsRecord, DropReason, Endpoint, Event, EventType, Flow, FlowType, HttpRecord, KafkaRecord, L4,
    L7, L7Record, L7Type, LostEventSource, LostEvents, NodeState, NodeStatus, Payload, PolicyRef,
    ServiceRef, TcpFlags, TraceObservationPoint, TrafficDirection, Verdict, system_time,
};
use crate::proto::{flow as pb, observer, relay};

fn port(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(0)
}

fn timestamp(ts: Option<prost_types::Timestamp>) -> Option<std::time::SystemTime> {
    ts.and_then(|t| system_time(t.seconds, t.nanos))
}

fn ip(text: &str) -> Option<IpAddr> {
    if text.is_empty() {
        None
    } else {
        text.parse().ok()
    }
}

fn endpoint(
    ep: Option<pb::Endpoint>,
    ip: Option<IpAddr>,
    service: Option<pb::Service>,
    names: Vec<String>,
) -> Endpoint {
    let ep = ep.unwrap_or_default();
    Endpoint {
        ip,
        identity: ep.identity,
        id: ep.id,
        cluster_name: ep.cluster_name,
        namespace: ep.namespace,
        pod_name: ep.pod_name,
        labels: ep.labels,
        service: service.map(|s| ServiceRef {
            namespace: s.namespace,
            name: s.name,
        }),
        names,
    }
}

fn tcp_flags(flags: Option<pb::TcpFlags>) -> TcpFlags {
    let f = flags.unwrap_or_default();
    TcpFlags {
        fin: f.fin,
        syn: f.syn,
        rst: f.rst,
        psh: f.psh,
        ack: f.ack,
        urg: f.urg,
        ece: f.ece,
        cwr: f.cwr,
        ns: f.ns,
    }
}

fn layer4(l4: pb::Layer4) -> Option<L4> {
    use pb::layer4::Protocol;
    Some(match l4.protocol? {
        Protocol::Tcp(t) => L4::Tcp {
            source_port: port(t.source_port),
            destination_port: port(t.destination_port),
            flags: tcp_flags(t.flags),
        },
        Protocol::Udp(u) => L4::Udp {
            source_port: port(u.source_port),
            destination_port: port(u.destination_port),
        },
        Protocol::Sctp(s) => L4::Sctp {
            source_port: port(s.source_port),
            destination_port: port(s.destination_port),
        },
        Protocol::IcmPv4(i) => L4::Icmpv4 {
            icmp_type: i.r#type,
            code: i.code,
        },
        Protocol::IcmPv6(i) => L4::Icmpv6 {
            icmp_type: i.r#type,
            code: i.code,
        },
    })
}

fn layer7(l7: pb::Layer7) -> L7 {
    use pb::layer7::Record;
    L7 {
        kind: L7Type::from_code(l7.r#type),
        latency_ns: l7.latency_ns,
        record: l7.record.map(|record| match record {
            Record::Http(h) => L7Record::Http(HttpRecord {
                code: h.code,
                method: h.method,
                url: h.url,
                protocol: h.protocol,
                headers: h.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            }),
            Record::Kafka(k) => L7Record::Kafka(KafkaRecord {
                error_code: k.error_code,
                api_version: k.api_version,
                api_key: k.api_key,
                correlation_id: k.correlation_id,
                topic: k.topic,
            }),
            Record::Dns(d) => L7Record::Dns(DnsRecord {
                query: d.query,
                ips: d.ips,
                ttl: d.ttl,
                cnames: d.cnames,
                rcode: d.rcode,
                qtypes: d.qtypes,
                rrtypes: d.rrtypes,
                observation_source: d.observation_source,
            }),
        }),
    }
}

fn policies(list: Vec<pb::Policy>) -> Vec<PolicyRef> {
    list.into_iter()
        .map(|p| PolicyRef {
            name: p.name,
            namespace: p.namespace,
            labels: p.labels,
            revision: p.revision,
            kind: p.kind,
        })
        .collect()
}

/// The drop reason of a flow: `drop_reason_desc` when set, else the
/// deprecated numeric field; `None` unless the flow is a drop.
fn drop_reason(verdict: Verdict, desc: i32, numeric: u32) -> Option<DropReason> {
    let code = u32::try_from(desc)
        .ok()
        .filter(|c| *c != 0)
        .unwrap_or(numeric);
    (verdict == Verdict::Dropped || code != 0).then_some(DropReason(code))
}

impl From<pb::Flow> for Flow {
    fn from(f: pb::Flow) -> Flow {
        let verdict = Verdict::from_code(f.verdict);
        let ip_header = f.ip.unwrap_or_default();
        let is_reply = f.is_reply.or(if f.reply { Some(true) } else { None });
        Flow {
            time: timestamp(f.time),
            uuid: f.uuid,
            verdict,
            drop_reason: drop_reason(verdict, f.drop_reason_desc, f.drop_reason),
            flow_type: FlowType::from_code(f.r#type),
            event_type: f.event_type.map(|e| EventType {
                kind: e.r#type,
                sub_type: e.sub_type,
            }),
            direction: TrafficDirection::from_code(f.traffic_direction),
            is_reply,
            observation_point: TraceObservationPoint::from_code(f.trace_observation_point),
            policy_match_type: f.policy_match_type,
            source: endpoint(
                f.source,
                ip(&ip_header.source),
                f.source_service,
                f.source_names,
            ),
            destination: endpoint(
                f.destination,
                ip(&ip_header.destination),
                f.destination_service,
                f.destination_names,
            ),
            l4: f.l4.and_then(layer4),
            l7: f.l7.map(layer7),
            ingress_allowed_by: policies(f.ingress_allowed_by),
            egress_allowed_by: policies(f.egress_allowed_by),
            ingress_denied_by: policies(f.ingress_denied_by),
            egress_denied_by: policies(f.egress_denied_by),
            node_name: f.node_name,
            proxy_port: f.proxy_port,
            summary: f.summary,
        }
    }
}

impl From<relay::NodeStatusEvent> for NodeStatus {
    fn from(n: relay::NodeStatusEvent) -> NodeStatus {
        NodeStatus {
            state: NodeState::from_code(n.state_change),
            nodes: n.node_names,
            message: n.message,
        }
    }
}

impl From<pb::LostEvent> for LostEvents {
    fn from(l: pb::LostEvent) -> LostEvents {
        LostEvents {
            source: LostEventSource::from_code(l.source),
            count: l.num_events_lost,
            cpu: l.cpu,
        }
    }
}

impl Event {
    /// Converts one `GetFlowsResponse`; `None` when it carries nothing this
    /// crate models (an empty or future response type).
    pub fn from_proto(response: observer::GetFlowsResponse) -> Option<Event> {
        use observer::get_flows_response::ResponseTypes;
        let payload = match response.response_types? {
            ResponseTypes::Flow(flow) => Payload::Flow(Arc::new(Flow::from(flow))),
            ResponseTypes::NodeStatus(status) => Payload::NodeStatus(status.into()),
            ResponseTypes::LostEvents(lost) => Payload::LostEvents(lost.into()),
        };
        let mut time = timestamp(response.time);
        let mut node_name = response.node_name;
        if let Payload::Flow(flow) = &payload {
            time = time.or(flow.time);
            if node_name.is_empty() {
                node_name.clone_from(&flow.node_name);
            }
        }
        Some(Event {
            node_name,
            time,
            payload,
        })
    }
}
