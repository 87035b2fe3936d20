//! Health before evidence, against a scripted Relay on 127.0.0.1.

use std::time::Duration;

use hubble::fake::FakeRelay;
use hubble::model::NodeState;
use hubble::proto::observer::{Node, ServerStatusResponse};
use hubble::proto::relay::NodeState as PbNodeState;
use hubble::{
    FlowsRequest, HealthCheck, HealthError, HealthProblem, HubbleClient, WatchError, WatchOptions,
};

fn node(name: &str, state: PbNodeState) -> Node {
    Node {
        name: name.to_string(),
        version: "1.19.6".to_string(),
        address: "10.0.0.2:4244".to_string(),
        state: state as i32,
        tls: None,
        uptime_ns: 1,
        num_flows: 10,
        max_flows: 4095,
        seen_flows: 10,
    }
}

fn status(num_flows: u64, connected: u32, unavailable: &[&str]) -> ServerStatusResponse {
    ServerStatusResponse {
        num_flows,
        max_flows: 8190,
        seen_flows: num_flows,
        uptime_ns: 5_000_000_000,
        num_connected_nodes: Some(connected),
        num_unavailable_nodes: Some(unavailable.len() as u32),
        unavailable_nodes: unavailable.iter().map(|n| n.to_string()).collect(),
        version: "1.19.6".to_string(),
    }
}

fn check(nodes: &[&str]) -> HealthCheck {
    HealthCheck {
        expected_nodes: nodes.iter().map(|n| n.to_string()).collect(),
        require_flows: true,
    }
}

#[tokio::test]
async fn healthy_relay_passes_and_reports_nodes() {
    let relay = FakeRelay::start().await.unwrap();
    relay.set_status(status(2048, 2, &[]));
    relay.set_nodes(Some(vec![
        node("kind-kind/kind-control-plane", PbNodeState::NodeConnected),
        node("kind-kind/kind-worker", PbNodeState::NodeConnected),
    ]));
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let report = client
        .check_health(&check(&["kind-control-plane", "kind-kind/kind-worker"]))
        .await
        .unwrap();
    assert_eq!(report.status.num_flows, 2048);
    assert_eq!(report.nodes.unwrap().len(), 2);
}

#[tokio::test]
async fn unavailable_node_fails_naming_the_node_and_what_to_check() {
    let relay = FakeRelay::start().await.unwrap();
    relay.set_status(status(2048, 1, &["kind-kind/kind-worker2"]));
    relay.set_nodes(Some(vec![
        node("kind-kind/kind-worker", PbNodeState::NodeConnected),
        node("kind-kind/kind-worker2", PbNodeState::NodeUnavailable),
    ]));
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let err = client
        .check_health(&HealthCheck::default())
        .await
        .unwrap_err();
    let HealthError::Unhealthy { problems, .. } = &err else {
        panic!("expected unhealthy, got {err}");
    };
    assert_eq!(
        problems,
        &vec![HealthProblem::NodeNotConnected {
            node: "kind-kind/kind-worker2".to_string(),
            state: NodeState::Unavailable
        }]
    );
    let text = err.to_string();
    assert!(
        text.contains("kind-kind/kind-worker2 is NODE_UNAVAILABLE"),
        "{text}"
    );
    assert!(text.contains("spec.nodeName=kind-worker2"), "{text}");
    assert!(text.contains("4244"), "{text}");
}

#[tokio::test]
async fn unavailable_count_without_names_still_fails() {
    let relay = FakeRelay::start().await.unwrap();
    let mut s = status(10, 2, &[]);
    s.num_unavailable_nodes = Some(1);
    relay.set_status(s);
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let err = client
        .check_health(&HealthCheck::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HealthError::Unhealthy { ref problems, .. } if problems == &vec![HealthProblem::UnavailableNodes { count: 1 }]
        ),
        "{err}"
    );
}

#[tokio::test]
async fn expected_node_unknown_to_relay_fails() {
    let relay = FakeRelay::start().await.unwrap();
    relay.set_status(status(10, 1, &[]));
    relay.set_nodes(Some(vec![node(
        "kind-kind/kind-worker",
        PbNodeState::NodeConnected,
    )]));
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let err = client
        .check_health(&check(&["kind-worker", "kind-worker2"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("node kind-worker2 is not known to Relay"),
        "{text}"
    );
    assert!(!text.contains("node kind-worker is not known"), "{text}");
}

#[tokio::test]
async fn empty_ring_buffer_fails_as_no_flows() {
    let relay = FakeRelay::start().await.unwrap();
    relay.set_status(status(0, 1, &[]));
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let err = client
        .check_health(&HealthCheck::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HealthError::Unhealthy { ref problems, .. } if problems == &vec![HealthProblem::NoFlows]
        ),
        "{err}"
    );
    assert!(err.to_string().contains("hubble.enabled"));
}

#[tokio::test]
async fn unreachable_relay_fails_with_a_port_forward_hint() {
    // A loopback port that was free a moment ago: nothing listens there now.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("127.0.0.1:{port}");
    let err = HubbleClient::connect(&endpoint).await.unwrap_err();
    assert!(err.to_string().contains("port-forward"), "{err}");

    let lazy = HubbleClient::lazy(&endpoint).unwrap();
    let err = lazy
        .check_health(&HealthCheck::default())
        .await
        .unwrap_err();
    assert!(matches!(err, HealthError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains("hubble-relay"), "{err}");
}

#[tokio::test]
async fn waiting_for_flows_fails_when_none_arrive_and_passes_when_one_does() {
    let relay = FakeRelay::start().await.unwrap();
    let client = HubbleClient::connect(&relay.endpoint()).await.unwrap();
    let watch = client
        .follow(
            &FlowsRequest::follow_since(std::time::SystemTime::now()),
            WatchOptions::default(),
        )
        .await
        .unwrap();
    let stream = relay.next_stream().await.unwrap();
    assert_eq!(
        watch.wait_for_flows(Duration::from_millis(100)).await,
        Err(WatchError::NoFlows(Duration::from_millis(100)))
    );
    let waiter = watch.wait_for_flows(Duration::from_secs(30));
    let sender = async {
        assert!(stream.send_flow(Default::default()).await);
    };
    let (result, ()) = tokio::join!(waiter, sender);
    assert_eq!(result, Ok(()));
    assert_eq!(watch.stats().flows, 1);
}
