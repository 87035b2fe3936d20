//! `hubble observe -o json` captures (this project's testdata, shaped like
//! the examples in shared/docs/cilium-semantics.md section 8): parsing into
//! the flow model, errors, and the verdicts the matcher reaches on them.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use hubble::json::{JsonErrorKind, parse_reader, parse_str};
use hubble::model::{
    EventType, FlowType, L4, L7Record, L7Type, LostEventSource, NodeState, TraceObservationPoint,
    TrafficDirection, Verdict,
};
use hubble::{
    Decision, DropReason, Event, HubbleVerdict, InconclusiveReason, L7Request, MatchOptions,
    Matcher, Payload, Peer, Probe,
};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn load(name: &str) -> Vec<Event> {
    let text = fs::read_to_string(testdata(name)).unwrap();
    parse_str(&text).unwrap()
}

#[test]
fn wrapped_default_deny_drop_parses_field_by_field() {
    let events = load("observe-default-deny.jsonl");
    assert_eq!(events.len(), 5);
    let drop = events[1].flow().unwrap();
    assert_eq!(events[1].node_name, "kind-kind/kind-worker");
    assert_eq!(
        drop.time.unwrap().duration_since(UNIX_EPOCH).unwrap(),
        Duration::new(1_692_619_938, 510_175_415)
    );
    assert_eq!(drop.verdict, Verdict::Dropped);
    assert_eq!(drop.drop_reason, Some(DropReason::POLICY_DENIED));
    assert_eq!(drop.flow_type, FlowType::L3L4);
    assert_eq!(
        drop.event_type,
        Some(EventType {
            kind: EventType::DROP,
            sub_type: 133
        })
    );
    assert_eq!(drop.direction, TrafficDirection::Ingress);
    assert_eq!(drop.is_reply, Some(false));
    assert_eq!(drop.source.ip, Some("10.244.1.60".parse().unwrap()));
    assert_eq!(drop.source.pod_name, "xwing");
    assert_eq!(drop.source.namespace, "default");
    assert_eq!(drop.source.identity, 5678);
    assert_eq!(drop.source.id, 1234);
    assert_eq!(drop.source.cluster_name, "default");
    assert_eq!(drop.source.labels[0], "k8s:app=xwing");
    assert_eq!(drop.destination.pod_name, "deathstar-7848d6c4d5-th9v2");
    let Some(L4::Tcp {
        source_port,
        destination_port,
        flags,
    }) = drop.l4
    else {
        panic!("expected TCP, got {:?}", drop.l4);
    };
    assert_eq!((source_port, destination_port), (44916, 80));
    assert!(flags.is_syn_only());
    assert_eq!(drop.summary, "TCP Flags: SYN");
    assert!(
        drop.to_string()
            .contains("default/xwing:44916 -> default/deathstar")
    );

    let policy_verdict = events[0].flow().unwrap();
    assert!(policy_verdict.is_policy_verdict());

    let udp = events[3].flow().unwrap();
    assert_eq!(udp.observation_point, TraceObservationPoint::ToStack);
    assert!(matches!(
        udp.l4,
        Some(L4::Udp {
            destination_port: 53,
            ..
        })
    ));

    let Payload::NodeStatus(status) = &events[4].payload else {
        panic!("expected node status");
    };
    assert_eq!(status.state, NodeState::Connected);
    assert_eq!(status.nodes.len(), 2);
}

#[test]
fn legacy_bare_flow_http_records_parse() {
    let events = load("observe-http-deny-legacy.jsonl");
    assert_eq!(events.len(), 3);
    let to_proxy = events[0].flow().unwrap();
    assert_eq!(to_proxy.observation_point, TraceObservationPoint::ToProxy);
    assert_eq!(to_proxy.proxy_port, 15001);

    let response = events[1].flow().unwrap();
    let l7 = response.l7.as_ref().unwrap();
    assert_eq!(l7.kind, L7Type::Response);
    assert_eq!(l7.latency_ns, 231_000);
    let Some(L7Record::Http(http)) = &l7.record else {
        panic!("expected HTTP");
    };
    assert_eq!(http.code, 403);
    assert_eq!(response.is_reply, Some(true));

    let request = events[2].flow().unwrap();
    assert_eq!(request.flow_type, FlowType::L7);
    assert_eq!(request.verdict, Verdict::Dropped);
    assert_eq!(
        request.drop_reason,
        Some(DropReason(0)),
        "L7 drops carry no drop reason"
    );
    let l7 = request.l7.as_ref().unwrap();
    assert_eq!(l7.kind, L7Type::Request);
    let Some(L7Record::Http(http)) = &l7.record else {
        panic!("expected HTTP");
    };
    assert_eq!(http.code, 0, "request records carry no status code");
    assert_eq!(http.method, "POST");
    assert_eq!(http.path(), "/api/v1/x");
    assert_eq!(http.headers[0].0, "X-Request-Id");
    assert_eq!(request.event_type.unwrap().kind, EventType::ACCESS_LOG);
    // The bare form takes node and time from the flow.
    assert_eq!(events[2].node_name, "kind-kind/kind-worker");
    assert_eq!(events[2].time, request.time);
}

#[test]
fn explicit_deny_attribution_parses_with_string_revision() {
    let events = load("observe-explicit-deny.jsonl");
    let flow = events[0].flow().unwrap();
    assert_eq!(flow.drop_reason, Some(DropReason::POLICY_DENY));
    assert_eq!(flow.direction, TrafficDirection::Egress);
    assert_eq!(flow.egress_denied_by.len(), 1);
    let policy = &flow.egress_denied_by[0];
    assert_eq!(policy.name, "no-exfiltration");
    assert_eq!(policy.namespace, "attack");
    assert_eq!(policy.kind, "CiliumNetworkPolicy");
    assert_eq!(policy.revision, 12);
    assert_eq!(policy.labels.len(), 3);
    assert!(flow.destination.is_outside_cluster());
    assert_eq!(flow.deciding_policies(), flow.egress_denied_by);
}

#[test]
fn kafka_request_and_collection_notices_parse() {
    let kafka = load("observe-kafka-deny.jsonl");
    let l7 = kafka[0].flow().unwrap().l7.as_ref().unwrap();
    let Some(L7Record::Kafka(record)) = &l7.record else {
        panic!("expected Kafka");
    };
    assert_eq!(record.api_key, "produce");
    assert_eq!(record.topic, "payments");
    assert_eq!(record.error_code, 0);
    assert_eq!(record.api_version, 2);

    let notices = load("observe-collection-problems.jsonl");
    let Payload::NodeStatus(status) = &notices[2].payload else {
        panic!("expected node status");
    };
    assert_eq!(status.state, NodeState::Unavailable);
    assert!(status.message.contains("connection error"));
    let Payload::LostEvents(lost) = &notices[3].payload else {
        panic!("expected lost events");
    };
    assert_eq!(lost.count, 42);
    assert_eq!(lost.cpu, Some(1));
    assert_eq!(lost.source, LostEventSource::PerfEventRingBuffer);
    assert_eq!(notices[3].node_name, "kind-kind/kind-worker2");
}

#[test]
fn bad_line_error_names_line_and_field() {
    let text = fs::read_to_string(testdata("observe-bad-line.jsonl")).unwrap();
    let err = parse_str(&text).unwrap_err();
    assert_eq!(err.line, 3);
    assert!(matches!(
        &err.kind,
        JsonErrorKind::WrongType { path, .. } if path == "flow.l4.TCP.destination_port"
    ));
    assert!(
        err.to_string()
            .starts_with("line 3: field flow.l4.TCP.destination_port"),
        "{err}"
    );

    // The reader form yields the good line, then the error with the same line.
    let items: Vec<_> = parse_reader(text.as_bytes()).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().line, 3);
}

#[test]
fn non_json_and_non_flow_lines_are_rejected_with_their_line() {
    let err = parse_str("{\"flow\":{}}\nnot json").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(matches!(err.kind, JsonErrorKind::Syntax(_)));
    let err = parse_str("[1,2]").unwrap_err();
    assert!(matches!(err.kind, JsonErrorKind::NotAnObject("an array")));
    let err = parse_str("{\"hello\":1}").unwrap_err();
    assert!(
        err.to_string()
            .contains("neither a GetFlowsResponse nor a Flow"),
        "{err}"
    );
}

fn probe(src: Peer, dst: Peer, port: u16, events: &[Event]) -> Probe {
    let start = events.iter().filter_map(|e| e.time).min().unwrap();
    Probe::tcp(src, dst, port, start)
}

#[test]
fn captures_replayed_through_the_matcher_reach_their_verdicts() {
    let events = load("observe-default-deny.jsonl");
    let p = probe(
        Peer::pod("default", "xwing"),
        Peer::pod_prefix("default", "deathstar-"),
        80,
        &events,
    );
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("{}", report.verdict);
    };
    assert_eq!(drop.reason, DropReason::POLICY_DENIED);
    assert!(drop.denied_by.is_empty(), "default deny names no policy");

    let events = load("observe-http-deny-legacy.jsonl");
    let p = probe(
        Peer::pod("ns1", "client"),
        Peer::pod("ns1", "server-0"),
        8080,
        &events,
    )
    .with_l7(L7Request::Http {
        method: "POST".into(),
        path: "/api/v1/x".into(),
    });
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    assert!(
        matches!(report.verdict, HubbleVerdict::L7Denied(ref v) if v.status == Some(403)),
        "{}",
        report.verdict
    );

    let events = load("observe-explicit-deny.jsonl");
    let p = probe(
        Peer::pod("attack", "attacker-0"),
        Peer::ip("10.0.1.10".parse().unwrap()),
        443,
        &events,
    );
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("{}", report.verdict);
    };
    assert_eq!(drop.reason, DropReason::POLICY_DENY);
    assert_eq!(drop.denied_by[0].name, "no-exfiltration");

    let events = load("observe-kafka-deny.jsonl");
    let p = probe(
        Peer::pod("shop", "frontend-0"),
        Peer::pod("shop", "kafka-0"),
        9092,
        &events,
    )
    .with_l7(L7Request::Kafka {
        api_key: "produce".into(),
        topic: Some("payments".into()),
    });
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    assert_eq!(
        report.verdict.decision(),
        Some(Decision::PolicyDeny),
        "{}",
        report.verdict
    );

    let events = load("observe-dns-refused.jsonl");
    let mut p = probe(
        Peer::pod("attack", "attacker-0"),
        Peer::pod_prefix("kube-system", "coredns-"),
        53,
        &events,
    )
    .with_l7(L7Request::Dns {
        query: "EXFIL.example.com".into(),
    });
    p.protocol = hubble::Protocol::Udp;
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    assert!(
        matches!(report.verdict, HubbleVerdict::L7Denied(ref v) if v.status == Some(5)),
        "{}",
        report.verdict
    );

    let events = load("observe-collection-problems.jsonl");
    let p = probe(
        Peer::pod("shop", "frontend-0"),
        Peer::pod("shop", "api-0"),
        80,
        &events,
    );
    let report = Matcher::evaluate(p, MatchOptions::default(), &events);
    assert!(!report.verdict.is_conclusive(), "{}", report.verdict);
    assert!(matches!(
        report.verdict,
        HubbleVerdict::Inconclusive { reason: InconclusiveReason::NodeUnavailable { ref node, .. } } if node == "kind-kind/kind-worker2"
    ));
    assert_eq!(report.caveats.len(), 2, "unavailable node and lost events");
}
