//! What a real Cilium agent's Hubble reports, captured in the lab (Cilium 1.19.7) by
//! scripts/lab-capture-facts.sh with the Hubble CLI (`hubble observe -o jsonpb`): one file per scenario of
//! fixtures/lab-facts/scenarios, with the client's outcome beside it (`*.client.json`).
//!
//! Each test reads a capture, states the fact the live path relies on, and runs the matcher over it as a
//! probe of that scenario, so that a parser or matcher change that would misread the real agent fails here.

use std::fs;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use hubble::json::parse_str;
use hubble::model::{EventType, FlowType, L7Record, TrafficDirection, Verdict};
use hubble::{
    Decision, DropReason, Event, Flow, HubbleVerdict, L7Request, MatchOptions, Matcher, Peer, Probe,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/lab-cilium-1.19.7")
}

fn capture(id: &str) -> Vec<Event> {
    let path = dir().join(format!("{id}.jsonl"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let events = parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!events.is_empty(), "{} holds no flow", path.display());
    events
}

/// The client's side of the same run (what the in-pod agent classified).
fn client_outcome(id: &str) -> String {
    let path = dir().join(format!("{id}.client.json"));
    let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    doc["client"]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn flows(events: &[Event]) -> Vec<&Flow> {
    events.iter().filter_map(Event::flow).collect()
}

fn policy_verdict(events: &[Event]) -> &Flow {
    flows(events)
        .into_iter()
        .find(|f| f.is_policy_verdict())
        .expect("a policy-verdict event")
}

/// A probe from the first flow's source to its destination, started just before the capture.
fn probe_of(events: &[Event], port: u16, udp: bool) -> Probe {
    let first = flows(events)[0];
    let start = first.time.expect("flows carry a time") - std::time::Duration::from_millis(1);
    let peer = |e: &hubble::model::Endpoint| {
        if e.pod_name.is_empty() {
            Peer::ip(e.ip.expect("an outside host has an address"))
        } else {
            Peer::pod(e.namespace.clone(), e.pod_name.clone())
        }
    };
    let (s, d) = (peer(&first.source), peer(&first.destination));
    if udp {
        Probe::udp(s, d, port, start)
    } else {
        Probe::tcp(s, d, port, start)
    }
}

fn names(refs: &[hubble::model::PolicyRef]) -> Vec<String> {
    refs.iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect()
}

#[test]
fn default_deny_is_policy_denied_with_no_policy_named_at_ingress_and_egress() {
    for (id, direction) in [
        ("facts-ingress-default-deny", TrafficDirection::Ingress),
        ("facts-egress-default-deny", TrafficDirection::Egress),
    ] {
        let events = capture(id);
        let verdict = policy_verdict(&events);
        assert_eq!(verdict.verdict, Verdict::Dropped, "{id}");
        assert_eq!(verdict.drop_reason, Some(DropReason::POLICY_DENIED), "{id}");
        assert_eq!(verdict.direction, direction, "{id}");
        // Nothing denied it: the default deny names no policy, on either side.
        assert!(verdict.ingress_denied_by.is_empty() && verdict.egress_denied_by.is_empty());
        // The datapath's own drop event follows the policy verdict, with the same reason.
        let drop = flows(&events)
            .into_iter()
            .find(|f| f.event_type.is_some_and(|e| e.kind == EventType::DROP))
            .expect("a drop event");
        assert_eq!(drop.drop_reason, Some(DropReason::POLICY_DENIED), "{id}");

        let port = if id.contains("egress") { 8080 } else { 5432 };
        let report = Matcher::evaluate(
            probe_of(&events, port, false),
            MatchOptions::default(),
            &events,
        );
        assert_eq!(
            report.verdict.decision(),
            Some(Decision::PolicyDeny),
            "{id}: {:?}",
            report.verdict
        );
        let HubbleVerdict::Dropped(d) = &report.verdict else {
            panic!("{id}: {:?}", report.verdict)
        };
        assert_eq!(d.direction, direction, "{id}");
        assert!(d.denied_by.is_empty(), "{id}: {:?}", d.denied_by);
        // A dropped SYN gets no answer: the harness stopped the client on Hubble's drop, before its deadline.
        assert_eq!(client_outcome(id), "connect_timeout", "{id}");
    }
}

#[test]
fn explicit_deny_is_policy_deny_and_names_the_deny_policy() {
    let events = capture("facts-ingress-explicit-deny");
    let verdict = policy_verdict(&events);
    assert_eq!(verdict.verdict, Verdict::Dropped);
    assert_eq!(verdict.drop_reason, Some(DropReason::POLICY_DENY));
    assert_eq!(verdict.direction, TrafficDirection::Ingress);
    assert_eq!(
        names(&verdict.ingress_denied_by),
        ["database/facts-postgres"]
    );
    assert_eq!(verdict.ingress_denied_by[0].kind, "CiliumNetworkPolicy");

    let report = Matcher::evaluate(
        probe_of(&events, 5432, false),
        MatchOptions::default(),
        &events,
    );
    let HubbleVerdict::Dropped(d) = &report.verdict else {
        panic!("{:?}", report.verdict)
    };
    assert_eq!(d.reason, DropReason::POLICY_DENY);
    assert_eq!(names(&d.denied_by), ["database/facts-postgres"]);
}

#[test]
fn allowed_connection_names_the_allowing_policy_on_its_policy_verdict() {
    let events = capture("facts-outside-allowed");
    let verdict = policy_verdict(&events);
    assert_eq!(verdict.verdict, Verdict::Forwarded);
    assert_eq!(verdict.direction, TrafficDirection::Ingress);
    assert_eq!(
        names(&verdict.ingress_allowed_by),
        ["frontend/facts-frontend"]
    );
    assert!(verdict.ingress_denied_by.is_empty());

    let report = Matcher::evaluate(
        probe_of(&events, 443, false),
        MatchOptions::default(),
        &events,
    );
    let HubbleVerdict::Forwarded(f) = &report.verdict else {
        panic!("{:?}", report.verdict)
    };
    assert!(f.ingress_allowed);
    assert_eq!(names(&f.allowed_by), ["frontend/facts-frontend"]);
    assert_eq!(client_outcome("facts-outside-allowed"), "completed");
}

#[test]
fn outside_host_is_a_local_cidr_identity_when_selected_and_world_otherwise() {
    let selected = capture("facts-outside-allowed");
    let lb = &flows(&selected)[0].source;
    assert_eq!(lb.ip, Some("10.0.0.10".parse().unwrap()), "not SNATed");
    assert!(lb.pod_name.is_empty() && lb.is_outside_cluster());
    // A CIDR the policy selects gets a node-local identity (>= 2^24) carrying the CIDR and world labels.
    assert!(lb.identity >= 1 << 24, "identity {}", lb.identity);
    assert!(
        lb.labels.iter().any(|l| l == "cidr:10.0.0.0/24"),
        "{:?}",
        lb.labels
    );
    assert!(
        lb.labels.iter().any(|l| l == "reserved:world"),
        "{:?}",
        lb.labels
    );

    let other = capture("facts-outside-denied");
    let outsider = &flows(&other)[0].source;
    assert_eq!(outsider.ip, Some("10.0.1.10".parse().unwrap()));
    assert_eq!(outsider.identity, 2, "reserved:world");
    assert_eq!(outsider.labels, ["reserved:world"]);
    let verdict = policy_verdict(&other);
    assert_eq!(verdict.drop_reason, Some(DropReason::POLICY_DENIED));
}

#[test]
fn dns_query_outside_the_rules_is_refused_to_the_client_and_logged_dropped_by_the_proxy() {
    for (id, query) in [
        ("facts-dns-refused", "exfil.example.com"),
        (
            "facts-dns-wildcard-one-label",
            "postgres.database.svc.cluster.local",
        ),
    ] {
        let events = capture(id);
        // L3/L4 lets the query through to the proxy: the policy verdict is REDIRECTED, allowed by the
        // policy that carries the DNS rules.
        let verdict = policy_verdict(&events);
        assert_eq!(verdict.verdict, Verdict::Redirected, "{id}");
        assert_eq!(
            names(&verdict.egress_allowed_by),
            ["frontend/facts-frontend"],
            "{id}"
        );
        // The proxy's record: a DROPPED DNS request and no response record (the proxy answered REFUSED
        // itself).
        let l7: Vec<&Flow> = flows(&events)
            .into_iter()
            .filter(|f| f.flow_type == FlowType::L7)
            .collect();
        assert_eq!(l7.len(), 1, "{id}: {l7:?}");
        assert_eq!(l7[0].verdict, Verdict::Dropped, "{id}");
        let Some(L7Record::Dns(dns)) = l7[0].l7.as_ref().and_then(|l| l.record.as_ref()) else {
            panic!("{id}: not a DNS record: {:?}", l7[0].l7)
        };
        assert_eq!(
            dns.query,
            format!("{query}."),
            "{id}: Hubble writes the query fully qualified"
        );
        assert_eq!(client_outcome(id), "dns_refused", "{id}");

        let probe = probe_of(&events, 53, true).with_l7(L7Request::Dns {
            query: query.to_string(),
        });
        let report = Matcher::evaluate(probe, MatchOptions::default(), &events);
        assert_eq!(
            report.verdict.decision(),
            Some(Decision::PolicyDeny),
            "{id}: {:?}",
            report.verdict
        );
        assert!(matches!(report.verdict, HubbleVerdict::L7Denied(_)), "{id}");
    }
}

#[test]
fn dns_query_the_rules_allow_is_answered_and_logged_request_and_response() {
    let events = capture("facts-dns-allowed");
    let l7: Vec<&Flow> = flows(&events)
        .into_iter()
        .filter(|f| f.flow_type == FlowType::L7)
        .collect();
    assert_eq!(l7.len(), 2, "{l7:?}");
    assert!(l7.iter().all(|f| f.verdict == Verdict::Forwarded));
    assert_eq!(client_outcome("facts-dns-allowed"), "completed");
    let probe = probe_of(&events, 53, true).with_l7(L7Request::Dns {
        query: "api.backend.svc.cluster.local".into(),
    });
    let report = Matcher::evaluate(probe, MatchOptions::default(), &events);
    assert!(
        matches!(report.verdict, HubbleVerdict::L7Allowed(_)),
        "{:?}",
        report.verdict
    );
    // Every capture is from one run of one agent, in time order.
    let times: Vec<u128> = flows(&events)
        .iter()
        .map(|f| {
            f.time
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}
