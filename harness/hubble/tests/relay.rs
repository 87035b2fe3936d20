//! The client, the shared watch and the matcher against a scripted Relay
//! (a real tonic server on 127.0.0.1): every case of a real stream must end
//! in the right verdict, or in "inconclusive" when collection failed.

mod support;

use std::time::{Duration, Instant};

use hubble::fake::{FakeRelay, ScriptedStream};
use hubble::model::{NodeState, TrafficDirection};
use hubble::proto::flow::{
    DropReason as PbReason, TraceObservationPoint, TrafficDirection as Dir, Verdict as PbVerdict,
};
use hubble::proto::relay::NodeState as PbNodeState;
use hubble::{
    Decision, DropReason, FlowRole, FlowWatch, FlowsRequest, HubbleClient, HubbleVerdict,
    InconclusiveReason, L7Protocol, L7Request, Probe, ProbeReport, Resolution, WatchOptions,
};
use support::*;

struct Rig {
    relay: FakeRelay,
    stream: ScriptedStream,
    watch: FlowWatch,
}

async fn rig(options: WatchOptions) -> Rig {
    rig_on(FakeRelay::start().await.unwrap(), options).await
}

async fn rig_on(relay: FakeRelay, options: WatchOptions) -> Rig {
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let watch = client
        .follow(&FlowsRequest::follow_since(t0()), options)
        .await
        .unwrap();
    let stream = relay.next_stream().await.unwrap();
    Rig {
        relay,
        stream,
        watch,
    }
}

fn in_secs(secs: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(secs)
}

impl Rig {
    async fn send(&self, flow: F) {
        assert!(
            self.stream.send_flow(flow.build()).await,
            "client went away"
        );
    }

    /// Waits until the watch has ingested `n` events in total.
    async fn ingested(&self, n: u64) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while self.watch.stats().events < n {
            assert!(Instant::now() < give_up, "watch did not ingest {n} events");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn assert_not_allow_or_deny(report: &ProbeReport) {
    assert!(!report.verdict.is_conclusive(), "{}", report.verdict);
    assert_eq!(report.verdict.decision(), None);
}

fn tcp_probe(src: &Ep, dst: &Ep, port: u16) -> Probe {
    Probe::tcp(src.peer(), dst.peer(), port, t0())
}

/// Background traffic that must never be attributed to the probes below.
fn noise(at: std::time::SystemTime) -> Vec<F> {
    vec![
        // frontend -> api on another port
        F::tcp(&frontend(), 40100, &api(), 9090, at).trace(TraceObservationPoint::ToEndpoint),
        // attacker -> db dropped, but on another port
        F::tcp(&attacker(), 40101, &db(), 6379, at)
            .drop_event(PbReason::PolicyDenied, Dir::Ingress),
        // db -> attacker (mirror endpoints, wrong port)
        F::tcp(&db(), 5432, &frontend(), 40102, at).syn_ack(),
        // UDP to the probe port
        F::udp(&attacker(), 40103, &db(), 5432, at)
            .drop_event(PbReason::PolicyDenied, Dir::Ingress),
    ]
}

#[tokio::test]
async fn policy_verdict_drop_resolves_early_with_reason_direction_and_attribution() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    for f in noise(t0() + ms(1)) {
        rig.send(f).await;
    }
    rig.send(
        F::tcp(&attacker(), 41000, &db(), 5432, t0() + ms(2))
            .node(NODE_B)
            .policy_verdict(PbVerdict::Dropped, Some(PbReason::PolicyDeny), Dir::Ingress)
            .denied_by(policy("CiliumNetworkPolicy", "shop", "deny-attackers")),
    )
    .await;
    let started = Instant::now();
    let report = handle.verdict(in_secs(30)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "not early");
    assert_eq!(report.resolution, Resolution::Complete);
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("expected a drop, got {}", report.verdict);
    };
    assert_eq!(drop.reason, DropReason::POLICY_DENY);
    assert_eq!(drop.direction, TrafficDirection::Ingress);
    assert_eq!(drop.node, NODE_B);
    assert_eq!(drop.denied_by.len(), 1);
    assert_eq!(drop.denied_by[0].name, "deny-attackers");
    assert_eq!(drop.denied_by[0].kind, "CiliumNetworkPolicy");
    assert_eq!(report.verdict.decision(), Some(Decision::PolicyDeny));
    assert_eq!(
        report.flows.len(),
        1,
        "noise attributed: {:#?}",
        report.flows
    );
    assert!(report.caveats.is_empty());
}

#[tokio::test]
async fn default_deny_drop_event_alone_settles_with_policy_denied() {
    let rig = rig(WatchOptions {
        settle: ms(50),
        ..WatchOptions::default()
    })
    .await;
    let handle = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    rig.send(
        F::tcp(&attacker(), 41000, &db(), 5432, t0() + ms(2))
            .drop_event(PbReason::PolicyDenied, Dir::Egress),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Settled);
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("expected a drop, got {}", report.verdict);
    };
    assert_eq!(drop.reason, DropReason::POLICY_DENIED);
    assert_eq!(drop.direction, TrafficDirection::Egress);
    assert!(drop.denied_by.is_empty());
}

#[tokio::test]
async fn retransmitted_syn_drops_are_one_verdict_counting_attempts() {
    let rig = rig(WatchOptions {
        settle: Duration::from_secs(1),
        ..WatchOptions::default()
    })
    .await;
    let handle = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    // Three SYNs of one connection (same source port), each dropped.
    for i in 0..3 {
        rig.send(
            F::tcp(&attacker(), 41000, &db(), 5432, t0() + ms(1000 * i))
                .drop_event(PbReason::PolicyDenied, Dir::Ingress),
        )
        .await;
    }
    let report = handle.verdict(in_secs(30)).await;
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("expected a drop, got {}", report.verdict);
    };
    assert_eq!(drop.attempts, 3);
    assert_eq!(
        report
            .flows
            .iter()
            .filter(|m| m.role == FlowRole::PolicyDrop)
            .count(),
        3
    );

    // A probe registered afterwards (backlog replay) sees the same attempts
    // with their policy-verdict companions, and resolves at once.
    for i in 0..3 {
        rig.send(
            F::tcp(&attacker(), 41001, &db(), 5433, t0() + ms(1000 * i)).policy_verdict(
                PbVerdict::Dropped,
                Some(PbReason::PolicyDenied),
                Dir::Ingress,
            ),
        )
        .await;
        rig.send(
            F::tcp(&attacker(), 41001, &db(), 5433, t0() + ms(1000 * i + 1))
                .drop_event(PbReason::PolicyDenied, Dir::Ingress),
        )
        .await;
    }
    rig.ingested(9).await;
    let later = rig.watch.register(tcp_probe(&attacker(), &db(), 5433));
    let report = later.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Complete);
    let HubbleVerdict::Dropped(drop) = &report.verdict else {
        panic!("expected a drop, got {}", report.verdict);
    };
    assert!(drop.attempts >= 1);
}

#[tokio::test]
async fn http_deny_with_response_before_request_is_l7_denied() {
    let rig = rig(WatchOptions::default()).await;
    let url = "http://api.shop:8080/admin/users";
    let handle =
        rig.watch.register(
            tcp_probe(&frontend(), &api(), 8080).with_l7(L7Request::Http {
                method: "DELETE".into(),
                path: "/admin/users".into(),
            }),
        );
    // The connection reaches the proxy...
    rig.send(
        F::tcp(&frontend(), 42000, &api(), 8080, t0() + ms(1))
            .trace(TraceObservationPoint::ToProxy),
    )
    .await;
    rig.send(F::tcp(&api(), 8080, &frontend(), 42000, t0() + ms(2)).syn_ack())
        .await;
    // ...and the proxy's records arrive out of order: RESPONSE first.
    rig.send(
        F::tcp(&api(), 8080, &frontend(), 42000, t0() + ms(4)).http_response(403, "DELETE", url),
    )
    .await;
    rig.send(
        F::tcp(&frontend(), 42000, &api(), 8080, t0() + ms(3)).http_request(
            PbVerdict::Dropped,
            "DELETE",
            url,
        ),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Complete);
    let HubbleVerdict::L7Denied(l7) = &report.verdict else {
        panic!("expected an L7 deny, got {}", report.verdict);
    };
    assert_eq!(l7.protocol, L7Protocol::Http);
    assert_eq!(l7.status, Some(403));
    assert_eq!(report.verdict.decision(), Some(Decision::PolicyDeny));
}

#[tokio::test]
async fn http_allow_is_matched_through_the_proxy_upstream_connection() {
    let rig = rig(WatchOptions::default()).await;
    let url = "http://api.shop:8080/v1/items?limit=5";
    // The client's own connection uses port 42000 ...
    let handle = rig.watch.register(
        tcp_probe(&frontend(), &api(), 8080)
            .with_source_port(42000)
            .with_l7(L7Request::Http {
                method: "get".into(),
                path: "/v1/items".into(),
            }),
    );
    rig.send(
        F::tcp(&frontend(), 42000, &api(), 8080, t0() + ms(1))
            .trace(TraceObservationPoint::ToProxy),
    )
    .await;
    // ... the proxy's upstream connection (another source port) carries the
    // L3/L4 flows to the server and the L7 records; the response first.
    rig.send(
        F::tcp(&frontend(), 51515, &api(), 8080, t0() + ms(2))
            .trace(TraceObservationPoint::ToEndpoint),
    )
    .await;
    rig.send(F::tcp(&api(), 8080, &frontend(), 51515, t0() + ms(4)).http_response(200, "GET", url))
        .await;
    rig.send(
        F::tcp(&frontend(), 51515, &api(), 8080, t0() + ms(3)).http_request(
            PbVerdict::Forwarded,
            "GET",
            url,
        ),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Complete);
    let HubbleVerdict::L7Allowed(l7) = &report.verdict else {
        panic!("expected an L7 allow, got {}", report.verdict);
    };
    assert_eq!(l7.status, Some(200));
    assert_eq!(report.verdict.decision(), Some(Decision::Allow));
    // The upstream connection's L3/L4 flow is not the client's connection.
    assert!(
        !report.flows.iter().any(|m| m.role == FlowRole::Delivered),
        "{:#?}",
        report.flows
    );
}

#[tokio::test]
async fn kafka_request_dropped_is_l7_denied_without_error_code() {
    let rig = rig(WatchOptions::default()).await;
    let handle =
        rig.watch.register(
            tcp_probe(&frontend(), &kafka(), 9092).with_l7(L7Request::Kafka {
                api_key: "Produce".into(),
                topic: Some("payments".into()),
            }),
        );
    // An allowed request for another topic on the same connection...
    rig.send(
        F::tcp(&frontend(), 43000, &kafka(), 9092, t0() + ms(1)).kafka_request(
            PbVerdict::Forwarded,
            "produce",
            "audit",
        ),
    )
    .await;
    // ...and the denied one.
    rig.send(
        F::tcp(&frontend(), 43000, &kafka(), 9092, t0() + ms(2)).kafka_request(
            PbVerdict::Dropped,
            "produce",
            "payments",
        ),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    let HubbleVerdict::L7Denied(l7) = &report.verdict else {
        panic!("expected an L7 deny, got {}", report.verdict);
    };
    assert_eq!(l7.protocol, L7Protocol::Kafka);
    assert_eq!(l7.status, None, "requests carry no error code");
    assert_eq!(report.resolution, Resolution::Complete);
}

#[tokio::test]
async fn concurrent_probes_each_get_their_own_flows() {
    let rig = rig(WatchOptions::default()).await;
    let deny = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    let allow = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    let from_outside = rig.watch.register(tcp_probe(&outsider(), &api(), 80));
    let get = rig.watch.register(
        tcp_probe(&frontend(), &api(), 8080).with_l7(L7Request::Http {
            method: "GET".into(),
            path: "/a".into(),
        }),
    );
    let post = rig.watch.register(
        tcp_probe(&frontend(), &api(), 8080).with_l7(L7Request::Http {
            method: "POST".into(),
            path: "/a".into(),
        }),
    );
    let url = "http://api.shop:8080/a";
    let mut flows = noise(t0() + ms(1));
    flows.extend([
        F::tcp(&frontend(), 44000, &api(), 80, t0() + ms(2)),
        F::tcp(&frontend(), 44001, &api(), 8080, t0() + ms(2))
            .trace(TraceObservationPoint::ToProxy),
        F::tcp(&outsider(), 44002, &api(), 80, t0() + ms(3)).policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        ),
        F::tcp(&frontend(), 44001, &api(), 8080, t0() + ms(4)).http_request(
            PbVerdict::Forwarded,
            "GET",
            url,
        ),
        F::tcp(&attacker(), 44003, &db(), 5432, t0() + ms(4)).policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        ),
        F::tcp(&frontend(), 44004, &api(), 8080, t0() + ms(5)).http_request(
            PbVerdict::Dropped,
            "POST",
            url,
        ),
        F::tcp(&api(), 8080, &frontend(), 44004, t0() + ms(6)).http_response(403, "POST", url),
        F::tcp(&api(), 80, &frontend(), 44000, t0() + ms(6)).syn_ack(),
        F::tcp(&api(), 8080, &frontend(), 44001, t0() + ms(7)).http_response(200, "GET", url),
    ]);
    for f in flows {
        rig.send(f).await;
    }
    let (deny, allow, from_outside, get, post) = tokio::join!(
        deny.verdict(in_secs(30)),
        allow.verdict(in_secs(30)),
        from_outside.verdict(in_secs(30)),
        get.verdict(in_secs(30)),
        post.verdict(in_secs(30)),
    );
    assert_eq!(
        deny.verdict.decision(),
        Some(Decision::PolicyDeny),
        "{}",
        deny.verdict
    );
    assert!(
        matches!(allow.verdict, HubbleVerdict::Forwarded(ref f) if f.reply_seen),
        "{}",
        allow.verdict
    );
    assert_eq!(from_outside.verdict.decision(), Some(Decision::PolicyDeny));
    assert!(
        matches!(get.verdict, HubbleVerdict::L7Allowed(ref v) if v.status == Some(200)),
        "{}",
        get.verdict
    );
    assert!(
        matches!(post.verdict, HubbleVerdict::L7Denied(ref v) if v.status == Some(403)),
        "{}",
        post.verdict
    );
    for report in [&deny, &allow, &from_outside, &get, &post] {
        assert_eq!(report.resolution, Resolution::Complete);
    }
}

#[tokio::test]
async fn lost_events_make_a_probe_without_decisive_flows_inconclusive() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    rig.stream.send(lost_events(17, NODE_B, t0() + ms(1))).await;
    // Only the first hop was seen; the rest may be among the lost events.
    rig.send(F::tcp(&frontend(), 45000, &api(), 80, t0() + ms(2)))
        .await;
    rig.ingested(2).await;
    let report = handle.verdict(tokio::time::Instant::now()).await;
    assert_eq!(report.resolution, Resolution::Deadline);
    assert_not_allow_or_deny(&report);
    assert_eq!(
        report.verdict,
        HubbleVerdict::Inconclusive {
            reason: InconclusiveReason::LostEvents {
                node: NODE_B.to_string(),
                source: hubble::model::LostEventSource::PerfEventRingBuffer,
                count: 17
            }
        }
    );
}

#[tokio::test]
async fn lost_events_do_not_override_a_seen_policy_drop() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    rig.stream.send(lost_events(3, NODE_A, t0() + ms(1))).await;
    rig.send(
        F::tcp(&attacker(), 45001, &db(), 5432, t0() + ms(2)).policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        ),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.verdict.decision(), Some(Decision::PolicyDeny));
    assert_eq!(report.caveats.len(), 1, "the loss is still reported");
}

#[tokio::test]
async fn lost_events_before_the_probe_started_do_not_taint_it() {
    let rig = rig(WatchOptions::default()).await;
    rig.stream
        .send(lost_events(5, NODE_A, t0() - ms(500)))
        .await;
    rig.ingested(1).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    let report = handle.verdict(tokio::time::Instant::now()).await;
    assert_eq!(report.verdict, HubbleVerdict::NothingSeen);
}

#[tokio::test]
async fn unavailable_node_makes_nothing_seen_inconclusive() {
    let rig = rig(WatchOptions::default()).await;
    rig.stream
        .send(node_status(
            PbNodeState::NodeConnected,
            &[NODE_A, NODE_B],
            t0(),
        ))
        .await;
    let during = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    rig.stream
        .send(node_status(
            PbNodeState::NodeUnavailable,
            &[NODE_B],
            t0() + ms(1),
        ))
        .await;
    rig.ingested(2).await;
    // Registered while the node is down: tainted from the start.
    let while_down = rig.watch.register(tcp_probe(&frontend(), &db(), 80));
    let report = during.verdict(tokio::time::Instant::now()).await;
    assert_not_allow_or_deny(&report);
    let HubbleVerdict::Inconclusive {
        reason: InconclusiveReason::NodeUnavailable { node, state, .. },
    } = &report.verdict
    else {
        panic!("expected node unavailable, got {}", report.verdict);
    };
    assert_eq!(node, NODE_B);
    assert_eq!(*state, NodeState::Unavailable);
    assert_not_allow_or_deny(&while_down.verdict(tokio::time::Instant::now()).await);
    assert_eq!(
        rig.watch.stats().unavailable_nodes,
        vec![NODE_B.to_string()]
    );

    // After the node reconnects, a new probe is clean again.
    rig.stream
        .send(node_status(
            PbNodeState::NodeConnected,
            &[NODE_B],
            t0() + ms(2),
        ))
        .await;
    rig.ingested(3).await;
    let mut after = tcp_probe(&frontend(), &api(), 81);
    after.start = t0() + ms(3);
    let report = rig
        .watch
        .register(after)
        .verdict(tokio::time::Instant::now())
        .await;
    assert_eq!(report.verdict, HubbleVerdict::NothingSeen);
}

#[tokio::test]
async fn stream_error_resolves_pending_probes_inconclusive_at_once() {
    let rig = rig(WatchOptions::default()).await;
    let pending = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    let decided = rig.watch.register(tcp_probe(&attacker(), &db(), 5432));
    rig.send(F::tcp(&frontend(), 46000, &api(), 80, t0() + ms(1)))
        .await;
    rig.send(
        F::tcp(&attacker(), 46001, &db(), 5432, t0() + ms(1))
            .drop_event(PbReason::PolicyDenied, Dir::Ingress),
    )
    .await;
    rig.ingested(2).await;
    let Rig {
        stream,
        watch,
        relay,
    } = rig;
    stream
        .fail(tonic::Status::unavailable("relay lost its peers"))
        .await;
    let started = Instant::now();
    let report = pending.verdict(in_secs(60)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not resolve at once"
    );
    assert_eq!(report.resolution, Resolution::StreamEnded);
    assert_not_allow_or_deny(&report);
    assert!(
        matches!(
            report.verdict,
            HubbleVerdict::Inconclusive { reason: InconclusiveReason::StreamFailed { ref message } } if message.contains("relay lost its peers")
        ),
        "{}",
        report.verdict
    );
    // Positive evidence seen before the failure still stands.
    let report = decided.verdict(in_secs(60)).await;
    assert_eq!(report.verdict.decision(), Some(Decision::PolicyDeny));
    assert!(!report.caveats.is_empty());
    // Later registrations resolve immediately.
    let late = watch.register(tcp_probe(&frontend(), &db(), 80));
    assert_not_allow_or_deny(&late.verdict(in_secs(60)).await);
    drop(relay);
}

#[tokio::test]
async fn severed_connection_resolves_pending_probes_inconclusive() {
    let rig = rig_on(
        FakeRelay::start_behind_link().await.unwrap(),
        WatchOptions::default(),
    )
    .await;
    let pending = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    rig.send(F::tcp(&frontend(), 47000, &api(), 80, t0() + ms(1)))
        .await;
    rig.ingested(1).await;
    rig.relay.sever_links();
    let report = pending.verdict(in_secs(60)).await;
    assert_eq!(report.resolution, Resolution::StreamEnded);
    assert_not_allow_or_deny(&report);
    assert!(matches!(
        report.verdict,
        HubbleVerdict::Inconclusive {
            reason: InconclusiveReason::StreamFailed { .. }
        }
    ));
    assert!(rig.watch.stats().ended.is_some());
}

#[tokio::test]
async fn server_closing_the_stream_resolves_pending_probes_inconclusive() {
    let rig = rig(WatchOptions::default()).await;
    let pending = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    let Rig {
        stream,
        watch,
        relay,
    } = rig;
    stream.close();
    let report = pending.verdict(in_secs(60)).await;
    assert_not_allow_or_deny(&report);
    drop((watch, relay));
}

#[tokio::test]
async fn deadline_with_only_the_first_hop_is_inconclusive() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    rig.send(
        F::tcp(&frontend(), 48000, &api(), 80, t0() + ms(1)).policy_verdict(
            PbVerdict::Forwarded,
            None,
            Dir::Egress,
        ),
    )
    .await;
    rig.ingested(1).await;
    let report = handle.verdict(tokio::time::Instant::now()).await;
    assert_eq!(report.resolution, Resolution::Deadline);
    assert_not_allow_or_deny(&report);
    assert!(matches!(
        report.verdict,
        HubbleVerdict::Inconclusive {
            reason: InconclusiveReason::PartialEvidence { .. }
        }
    ));
}

#[tokio::test]
async fn l7_probe_with_connection_but_no_proxy_record_is_inconclusive() {
    let rig = rig(WatchOptions::default()).await;
    let handle =
        rig.watch.register(
            tcp_probe(&frontend(), &api(), 8080).with_l7(L7Request::Http {
                method: "GET".into(),
                path: "/".into(),
            }),
        );
    rig.send(
        F::tcp(&frontend(), 48001, &api(), 8080, t0() + ms(1))
            .trace(TraceObservationPoint::ToProxy),
    )
    .await;
    rig.send(F::tcp(&api(), 8080, &frontend(), 48001, t0() + ms(2)).syn_ack())
        .await;
    rig.ingested(2).await;
    let report = handle.verdict(tokio::time::Instant::now()).await;
    assert_not_allow_or_deny(&report);
}

#[tokio::test]
async fn nothing_seen_when_collection_was_clean() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    for f in noise(t0() + ms(1)) {
        rig.send(f).await;
    }
    rig.ingested(4).await;
    let report = handle.verdict(tokio::time::Instant::now()).await;
    assert_eq!(report.verdict, HubbleVerdict::NothingSeen);
    assert!(report.flows.is_empty());
}

#[tokio::test]
async fn reply_resolves_an_allowed_connection_early() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    rig.send(F::tcp(&frontend(), 49000, &api(), 80, t0() + ms(1)))
        .await;
    rig.send(
        F::tcp(&frontend(), 49000, &api(), 80, t0() + ms(1))
            .node(NODE_B)
            .policy_verdict(PbVerdict::Forwarded, None, Dir::Ingress)
            .allowed_by(policy("CiliumNetworkPolicy", "shop", "api-from-frontend")),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Complete);
    let HubbleVerdict::Forwarded(fw) = &report.verdict else {
        panic!("expected forwarded, got {}", report.verdict);
    };
    assert!(fw.ingress_allowed);
    assert_eq!(fw.allowed_by[0].name, "api-from-frontend");
}

#[tokio::test]
async fn egress_policy_verdict_suffices_for_a_destination_outside_the_cluster() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&api(), &outsider(), 443));
    rig.send(
        F::tcp(&api(), 49001, &outsider(), 443, t0() + ms(1)).policy_verdict(
            PbVerdict::Forwarded,
            None,
            Dir::Egress,
        ),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert_eq!(report.resolution, Resolution::Complete);
    assert!(matches!(report.verdict, HubbleVerdict::Forwarded(ref f) if f.egress_allowed));
}

#[tokio::test]
async fn udp_probe_is_forwarded_on_delivery() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig
        .watch
        .register(Probe::udp(frontend().peer(), api().peer(), 5353, t0()));
    rig.send(
        F::tcp(&frontend(), 49002, &api(), 5353, t0() + ms(1))
            .trace(TraceObservationPoint::ToEndpoint),
    )
    .await;
    rig.send(
        F::udp(&frontend(), 49002, &api(), 5353, t0() + ms(1))
            .trace(TraceObservationPoint::ToEndpoint),
    )
    .await;
    let report = handle.verdict(in_secs(30)).await;
    assert!(matches!(report.verdict, HubbleVerdict::Forwarded(ref f) if f.delivered));
    assert_eq!(report.flows.len(), 1, "the TCP flow is not the UDP probe's");
}

#[tokio::test]
async fn flows_before_the_probe_start_are_ignored() {
    let rig = rig(WatchOptions::default()).await;
    rig.send(
        F::tcp(&attacker(), 49003, &db(), 5432, t0() - ms(5)).policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        ),
    )
    .await;
    rig.ingested(1).await;
    let report = rig
        .watch
        .register(tcp_probe(&attacker(), &db(), 5432))
        .verdict(tokio::time::Instant::now())
        .await;
    assert_eq!(report.verdict, HubbleVerdict::NothingSeen);
}

#[tokio::test]
async fn follow_request_carries_since_follow_and_filters() {
    let relay = FakeRelay::start().await.unwrap();
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let mut request = FlowsRequest::follow_since(t0());
    request.whitelist = hubble::scope_filters(&["shop"], &["10.0.1.10".parse().unwrap()]);
    let _watch = client
        .follow(&request, WatchOptions::default())
        .await
        .unwrap();
    let _stream = relay.next_stream().await.unwrap();
    let seen = relay.flow_requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].follow);
    assert_eq!(seen[0].since, Some(ts(t0())));
    assert_eq!(seen[0].whitelist.len(), 4);
    assert_eq!(seen[0].whitelist[0].source_pod, vec!["shop/".to_string()]);
    assert_eq!(
        seen[0].whitelist[3].destination_ip,
        vec!["10.0.1.10".to_string()]
    );
}

#[tokio::test]
async fn dropping_a_handle_unregisters_the_probe() {
    let rig = rig(WatchOptions::default()).await;
    let handle = rig.watch.register(tcp_probe(&frontend(), &api(), 80));
    assert_eq!(rig.watch.stats().active_probes, 1);
    drop(handle);
    assert_eq!(rig.watch.stats().active_probes, 0);
}

/// How soon the early verdict resolves after the decisive flow is streamed
/// (send on the server -> gRPC -> decode -> match -> future resolves).
#[tokio::test]
async fn early_verdict_resolves_within_milliseconds_of_the_decisive_flow() {
    let rig = rig(WatchOptions::default()).await;
    // Unrelated traffic keeps flowing on the same stream.
    let mut latencies = Vec::new();
    for i in 0..200u16 {
        for f in noise(t0() + ms(u64::from(i))) {
            rig.send(f).await;
        }
        let handle = rig
            .watch
            .register(tcp_probe(&attacker(), &db(), 10_000 + i));
        let decisive = F::tcp(
            &attacker(),
            50_000,
            &db(),
            10_000 + i,
            t0() + ms(u64::from(i)),
        )
        .policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        )
        .build();
        let sent = Instant::now();
        assert!(rig.stream.send_flow(decisive).await);
        let report = handle.verdict(in_secs(30)).await;
        let latency = sent.elapsed();
        assert_eq!(report.resolution, Resolution::Complete);
        assert_eq!(report.verdict.decision(), Some(Decision::PolicyDeny));
        latencies.push(latency);
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p90 = latencies[latencies.len() * 9 / 10];
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "early verdict latency after the decisive flow: p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, max {max:?} (200 probes)"
    );
    // Generous bounds: the machine is shared; a deny must not wait anything
    // like a connect timeout (seconds).
    assert!(p50 < Duration::from_millis(50), "p50 {p50:?}");
    assert!(p90 < Duration::from_millis(500), "p90 {p90:?}");
}
