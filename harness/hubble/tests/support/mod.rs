//! Builders of Hubble protobuf flows shaped like what Cilium emits (see
//! shared/docs/cilium-semantics.md section 8), for the scripted Relay.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubble::proto::flow as pb;
use hubble::proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use hubble::proto::relay;

pub const NODE_A: &str = "kind-kind/kind-worker";
pub const NODE_B: &str = "kind-kind/kind-worker2";

pub const EVENT_DROP: i32 = 1;
pub const EVENT_TRACE: i32 = 4;
pub const EVENT_POLICY_VERDICT: i32 = 5;
pub const EVENT_L7: i32 = 129;

pub fn ts(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A base time far from "now" so tests do not depend on the wall clock.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Clone, Debug)]
pub struct Ep {
    pub namespace: &'static str,
    pub pod: &'static str,
    pub ip: &'static str,
    pub identity: u32,
    pub labels: Vec<String>,
}

impl Ep {
    pub fn pod(namespace: &'static str, pod: &'static str, ip: &'static str, identity: u32) -> Ep {
        Ep {
            namespace,
            pod,
            ip,
            identity,
            labels: vec![
                format!("k8s:app={}", pod.split('-').next().unwrap()),
                format!("k8s:io.kubernetes.pod.namespace={namespace}"),
            ],
        }
    }

    pub fn world(ip: &'static str) -> Ep {
        Ep {
            namespace: "",
            pod: "",
            ip,
            identity: 2,
            labels: vec!["reserved:world".to_string()],
        }
    }

    pub fn peer(&self) -> hubble::Peer {
        if self.pod.is_empty() {
            hubble::Peer::ip(self.ip.parse().unwrap())
        } else {
            hubble::Peer::pod(self.namespace, self.pod)
        }
    }

    fn proto(&self) -> pb::Endpoint {
        pb::Endpoint {
            id: if self.pod.is_empty() { 0 } else { 100 },
            identity: self.identity,
            cluster_name: "kind".to_string(),
            namespace: self.namespace.to_string(),
            labels: self.labels.clone(),
            pod_name: self.pod.to_string(),
            workloads: Vec::new(),
        }
    }
}

pub fn frontend() -> Ep {
    Ep::pod("shop", "frontend-0", "10.244.1.10", 1001)
}
pub fn api() -> Ep {
    Ep::pod("shop", "api-0", "10.244.2.20", 1002)
}
pub fn db() -> Ep {
    Ep::pod("shop", "db-0", "10.244.2.30", 1003)
}
pub fn attacker() -> Ep {
    Ep::pod("attack", "attacker-0", "10.244.1.66", 1066)
}
pub fn kafka() -> Ep {
    Ep::pod("shop", "kafka-0", "10.244.2.40", 1004)
}
pub fn outsider() -> Ep {
    Ep::world("10.0.1.10")
}

pub fn policy(kind: &str, namespace: &str, name: &str) -> pb::Policy {
    pb::Policy {
        name: name.to_string(),
        namespace: namespace.to_string(),
        labels: vec![format!("k8s:io.cilium.k8s.policy.name={name}")],
        revision: 7,
        kind: kind.to_string(),
    }
}

/// Builds one flow.
#[derive(Clone, Debug)]
pub struct F(pub pb::Flow);

impl F {
    fn base(src: &Ep, dst: &Ep, at: SystemTime, l4: pb::layer4::Protocol) -> F {
        F(pb::Flow {
            time: Some(ts(at)),
            uuid: format!("{:?}", at),
            verdict: pb::Verdict::Forwarded as i32,
            ip: Some(pb::Ip {
                source: src.ip.to_string(),
                destination: dst.ip.to_string(),
                ip_version: pb::IpVersion::IPv4 as i32,
                encrypted: false,
            }),
            l4: Some(pb::Layer4 { protocol: Some(l4) }),
            source: Some(src.proto()),
            destination: Some(dst.proto()),
            r#type: pb::FlowType::L3L4 as i32,
            node_name: NODE_A.to_string(),
            event_type: Some(pb::CiliumEventType {
                r#type: EVENT_TRACE,
                sub_type: 0,
            }),
            is_reply: Some(false),
            ..Default::default()
        })
    }

    pub fn tcp(src: &Ep, sport: u16, dst: &Ep, dport: u16, at: SystemTime) -> F {
        F::base(
            src,
            dst,
            at,
            pb::layer4::Protocol::Tcp(pb::Tcp {
                source_port: sport.into(),
                destination_port: dport.into(),
                flags: Some(pb::TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            }),
        )
    }

    pub fn udp(src: &Ep, sport: u16, dst: &Ep, dport: u16, at: SystemTime) -> F {
        F::base(
            src,
            dst,
            at,
            pb::layer4::Protocol::Udp(pb::Udp {
                source_port: sport.into(),
                destination_port: dport.into(),
            }),
        )
    }

    pub fn flags(mut self, flags: pb::TcpFlags) -> F {
        if let Some(pb::Layer4 {
            protocol: Some(pb::layer4::Protocol::Tcp(tcp)),
        }) = &mut self.0.l4
        {
            tcp.flags = Some(flags);
        }
        self
    }

    pub fn syn_ack(self) -> F {
        self.flags(pb::TcpFlags {
            syn: true,
            ack: true,
            ..Default::default()
        })
        .reply()
    }

    pub fn ack(self) -> F {
        self.flags(pb::TcpFlags {
            ack: true,
            ..Default::default()
        })
    }

    pub fn reply(mut self) -> F {
        self.0.is_reply = Some(true);
        self
    }

    pub fn node(mut self, node: &str) -> F {
        self.0.node_name = node.to_string();
        self
    }

    pub fn direction(mut self, direction: pb::TrafficDirection) -> F {
        self.0.traffic_direction = direction as i32;
        self
    }

    /// A trace event at an observation point, FORWARDED.
    pub fn trace(mut self, point: pb::TraceObservationPoint) -> F {
        self.0.event_type = Some(pb::CiliumEventType {
            r#type: EVENT_TRACE,
            sub_type: 0,
        });
        self.0.trace_observation_point = point as i32;
        self.0.verdict = pb::Verdict::Forwarded as i32;
        self
    }

    /// The drop notification (event type 1, sub-type = reason).
    pub fn drop_event(mut self, reason: pb::DropReason, direction: pb::TrafficDirection) -> F {
        self.0.verdict = pb::Verdict::Dropped as i32;
        self.0.drop_reason = reason as u32;
        self.0.drop_reason_desc = reason as i32;
        self.0.event_type = Some(pb::CiliumEventType {
            r#type: EVENT_DROP,
            sub_type: reason as i32,
        });
        self.0.traffic_direction = direction as i32;
        self
    }

    /// The policy-verdict notification (event type 5).
    pub fn policy_verdict(
        mut self,
        verdict: pb::Verdict,
        reason: Option<pb::DropReason>,
        direction: pb::TrafficDirection,
    ) -> F {
        self.0.verdict = verdict as i32;
        if let Some(reason) = reason {
            self.0.drop_reason = reason as u32;
            self.0.drop_reason_desc = reason as i32;
        }
        self.0.event_type = Some(pb::CiliumEventType {
            r#type: EVENT_POLICY_VERDICT,
            sub_type: 0,
        });
        self.0.traffic_direction = direction as i32;
        self
    }

    pub fn denied_by(mut self, p: pb::Policy) -> F {
        match pb::TrafficDirection::try_from(self.0.traffic_direction) {
            Ok(pb::TrafficDirection::Egress) => self.0.egress_denied_by.push(p),
            _ => self.0.ingress_denied_by.push(p),
        }
        self
    }

    pub fn allowed_by(mut self, p: pb::Policy) -> F {
        match pb::TrafficDirection::try_from(self.0.traffic_direction) {
            Ok(pb::TrafficDirection::Egress) => self.0.egress_allowed_by.push(p),
            _ => self.0.ingress_allowed_by.push(p),
        }
        self
    }

    fn l7(mut self, kind: pb::L7FlowType, verdict: pb::Verdict, record: pb::layer7::Record) -> F {
        self.0.r#type = pb::FlowType::L7 as i32;
        self.0.verdict = verdict as i32;
        self.0.event_type = Some(pb::CiliumEventType {
            r#type: EVENT_L7,
            sub_type: 0,
        });
        self.0.traffic_direction = pb::TrafficDirection::Ingress as i32;
        self.0.l7 = Some(pb::Layer7 {
            r#type: kind as i32,
            latency_ns: 0,
            record: Some(record),
        });
        if kind == pb::L7FlowType::Response {
            self.0.is_reply = Some(true);
        }
        self.flags(pb::TcpFlags::default())
    }

    pub fn http_request(self, verdict: pb::Verdict, method: &str, url: &str) -> F {
        self.l7(
            pb::L7FlowType::Request,
            verdict,
            pb::layer7::Record::Http(pb::Http {
                code: 0,
                method: method.to_string(),
                url: url.to_string(),
                protocol: "HTTP/1.1".to_string(),
                headers: vec![pb::HttpHeader {
                    key: "X-Request-Id".to_string(),
                    value: "1".to_string(),
                }],
            }),
        )
    }

    pub fn http_response(self, code: u32, method: &str, url: &str) -> F {
        self.l7(
            pb::L7FlowType::Response,
            pb::Verdict::Forwarded,
            pb::layer7::Record::Http(pb::Http {
                code,
                method: method.to_string(),
                url: url.to_string(),
                protocol: "HTTP/1.1".to_string(),
                headers: Vec::new(),
            }),
        )
    }

    pub fn kafka_request(self, verdict: pb::Verdict, api_key: &str, topic: &str) -> F {
        self.l7(
            pb::L7FlowType::Request,
            verdict,
            pb::layer7::Record::Kafka(pb::Kafka {
                error_code: 0,
                api_version: 2,
                api_key: api_key.to_string(),
                correlation_id: 9,
                topic: topic.to_string(),
            }),
        )
    }

    pub fn build(self) -> pb::Flow {
        self.0
    }
}

pub fn flow_response(flow: pb::Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time: flow.time,
        response_types: Some(ResponseTypes::Flow(flow)),
    }
}

pub fn lost_events(count: u64, node: &str, at: SystemTime) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: node.to_string(),
        time: Some(ts(at)),
        response_types: Some(ResponseTypes::LostEvents(pb::LostEvent {
            source: pb::LostEventSource::PerfEventRingBuffer as i32,
            num_events_lost: count,
            cpu: Some(1),
        })),
    }
}

pub fn node_status(state: relay::NodeState, nodes: &[&str], at: SystemTime) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: String::new(),
        time: Some(ts(at)),
        response_types: Some(ResponseTypes::NodeStatus(relay::NodeStatusEvent {
            state_change: state as i32,
            node_names: nodes.iter().map(|n| n.to_string()).collect(),
            message: if state == relay::NodeState::NodeUnavailable {
                "connection refused".to_string()
            } else {
                String::new()
            },
        })),
    }
}
