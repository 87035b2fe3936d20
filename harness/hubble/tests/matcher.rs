//! Matcher rules on hand-made model flows (no transport): the edge cases of
//! partial L7 evidence and attribution.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubble::model::{
    DnsRecord, Endpoint, EventType, FlowType, HttpRecord, L4, L7, L7Record, L7Type, TcpFlags,
    TrafficDirection, Verdict,
};
use hubble::{
    Event, Flow, HubbleVerdict, InconclusiveReason, L7Request, MatchOptions, Matcher, Peer, Probe,
    Progress, Resolution,
};

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn ep(ns: &str, pod: &str, ip: &str) -> Endpoint {
    Endpoint {
        ip: Some(ip.parse().unwrap()),
        identity: 4000,
        namespace: ns.to_string(),
        pod_name: pod.to_string(),
        ..Endpoint::default()
    }
}

fn client() -> Endpoint {
    ep("app", "client", "10.244.1.1")
}
fn server() -> Endpoint {
    ep("app", "server", "10.244.2.2")
}

fn l7_flow(reply: bool, verdict: Verdict, kind: L7Type, record: L7Record) -> Event {
    let (source, destination, sport, dport) = if reply {
        (server(), client(), 80, 40000)
    } else {
        (client(), server(), 40000, 80)
    };
    Event::from_flow(Flow {
        time: Some(start() + Duration::from_millis(5)),
        verdict,
        flow_type: FlowType::L7,
        event_type: Some(EventType {
            kind: EventType::ACCESS_LOG,
            sub_type: 0,
        }),
        direction: TrafficDirection::Ingress,
        is_reply: Some(reply),
        source,
        destination,
        l4: Some(L4::Tcp {
            source_port: sport,
            destination_port: dport,
            flags: TcpFlags::default(),
        }),
        l7: Some(L7 {
            kind,
            latency_ns: 0,
            record: Some(record),
        }),
        node_name: "node-a".to_string(),
        ..Flow::default()
    })
}

fn http(code: u32, method: &str, url: &str) -> L7Record {
    L7Record::Http(HttpRecord {
        code,
        method: method.to_string(),
        url: url.to_string(),
        protocol: "HTTP/1.1".to_string(),
        headers: Vec::new(),
    })
}

fn http_probe() -> Probe {
    Probe::tcp(
        Peer::pod("app", "client"),
        Peer::pod("app", "server"),
        80,
        start(),
    )
    .with_l7(L7Request::Http {
        method: "GET".into(),
        path: "/private".into(),
    })
}

#[test]
fn http_403_response_alone_is_inconclusive() {
    let events = [l7_flow(
        true,
        Verdict::Forwarded,
        L7Type::Response,
        http(403, "GET", "http://server/private"),
    )];
    let report = Matcher::evaluate(http_probe(), MatchOptions::default(), &events);
    assert_eq!(report.resolution, Resolution::Deadline);
    assert!(
        matches!(
            report.verdict,
            HubbleVerdict::Inconclusive { reason: InconclusiveReason::PartialEvidence { ref seen, .. } } if seen.contains("403")
        ),
        "{}",
        report.verdict
    );
}

#[test]
fn http_success_response_alone_means_allowed_but_waits_for_the_request() {
    let mut matcher = Matcher::new(http_probe());
    let progress = matcher.observe(&l7_flow(
        true,
        Verdict::Forwarded,
        L7Type::Response,
        http(200, "GET", "http://server/private"),
    ));
    assert_eq!(progress, Progress::Decisive);
    let report = matcher.finish(Resolution::Settled);
    assert!(matches!(report.verdict, HubbleVerdict::L7Allowed(ref v) if v.status == Some(200)));
}

#[test]
fn http_records_for_another_path_or_method_do_not_decide() {
    let events = [
        l7_flow(
            false,
            Verdict::Dropped,
            L7Type::Request,
            http(0, "GET", "http://server/public"),
        ),
        l7_flow(
            false,
            Verdict::Dropped,
            L7Type::Request,
            http(0, "POST", "http://server/private"),
        ),
    ];
    let report = Matcher::evaluate(http_probe(), MatchOptions::default(), &events);
    assert!(!report.verdict.is_conclusive(), "{}", report.verdict);
    assert_eq!(
        report.flows.len(),
        2,
        "kept as other L7 records for the report"
    );
}

#[test]
fn dns_request_record_alone_is_inconclusive_and_refusal_is_a_deny() {
    let dns = |rcode| {
        L7Record::Dns(DnsRecord {
            query: "api.app.svc.cluster.local.".to_string(),
            rcode,
            ..DnsRecord::default()
        })
    };
    let mut probe = Probe::udp(
        Peer::pod("app", "client"),
        Peer::pod("app", "server"),
        80,
        start(),
    )
    .with_l7(L7Request::Dns {
        query: "api.app.svc.cluster.local".into(),
    });
    probe.protocol = hubble::Protocol::Tcp; // the helper builds TCP flows
    let request = l7_flow(false, Verdict::Forwarded, L7Type::Request, dns(0));
    let report = Matcher::evaluate(probe.clone(), MatchOptions::default(), [&request]);
    assert!(!report.verdict.is_conclusive(), "{}", report.verdict);

    let refused = l7_flow(true, Verdict::Forwarded, L7Type::Response, dns(5));
    let report = Matcher::evaluate(probe.clone(), MatchOptions::default(), [&request, &refused]);
    assert!(matches!(report.verdict, HubbleVerdict::L7Denied(ref v) if v.status == Some(5)));

    let answered = l7_flow(true, Verdict::Forwarded, L7Type::Response, dns(0));
    let report = Matcher::evaluate(probe, MatchOptions::default(), [&request, &answered]);
    assert!(matches!(report.verdict, HubbleVerdict::L7Allowed(_)));
}

#[test]
fn clock_skew_admits_flows_stamped_slightly_before_the_start() {
    let mut early = l7_flow(
        false,
        Verdict::Dropped,
        L7Type::Request,
        http(0, "GET", "/private"),
    );
    if let hubble::Payload::Flow(flow) = &mut early.payload {
        let mut f = (**flow).clone();
        f.time = Some(start() - Duration::from_millis(20));
        *flow = Arc::new(f);
    }
    let strict = Matcher::evaluate(http_probe(), MatchOptions::default(), [&early]);
    assert_eq!(strict.verdict, HubbleVerdict::NothingSeen);
    let lenient = Matcher::evaluate(
        http_probe(),
        MatchOptions {
            clock_skew: Duration::from_millis(50),
            ..MatchOptions::default()
        },
        [&early],
    );
    assert!(matches!(lenient.verdict, HubbleVerdict::L7Denied(_)));
}

#[test]
fn report_keeps_at_most_max_flows() {
    let events: Vec<Event> = (0..10)
        .map(|_| {
            l7_flow(
                false,
                Verdict::Dropped,
                L7Type::Request,
                http(0, "GET", "/x"),
            )
        })
        .collect();
    let report = Matcher::evaluate(
        http_probe(),
        MatchOptions {
            max_flows: 4,
            ..MatchOptions::default()
        },
        &events,
    );
    assert_eq!(report.flows.len(), 4);
    assert_eq!(report.omitted_flows, 6);
}
