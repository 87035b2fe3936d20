//! Tests against the live test bed. They need `harness up` to have run (the state file) and the cluster
//! to be reachable; without one they FAIL with a message saying so. Run them only with the nextest `kind`
//! profile (the default profile excludes this target).
//!
//! They do not change the applied posture: the rejection test is refused at the dry run, before anything
//! is applied.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use testbed::cluster::wait_stack_ready;
use testbed::config::{Layout, StackFixture};
use testbed::lock::{self, LockError};
use testbed::policy::{ApplyOptions, PostureError, apply_posture};
use testbed::up::wait_cilium_ready;
use testbed::{
    ExecError, LiveExecutor, Mode, NoProgress, OutsideHosts, ProbeExecutor, State, manifests,
};
use tokio::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The state file: `$HARNESS_STATE` or `<repo>/.harness/state.json`.
fn state() -> State {
    let path = std::env::var_os("HARNESS_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Layout::new(root()).state_file());
    State::load(&path).unwrap_or_else(|e| panic!("no live test bed for the cluster tests: {e}"))
}

async fn client(state: &State) -> kube::Client {
    let (client, _) = testbed::client::connect(Some(&state.kube_context))
        .await
        .unwrap_or_else(|e| panic!("cluster of the test bed not reachable: {e}"));
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .list(&ListParams::default().limit(1))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cluster of the test bed (context {}) not reachable: {e}",
                state.kube_context
            )
        });
    client
}

#[tokio::test]
async fn cilium_agents_operator_relay_and_policy_crds_are_ready() {
    let state = state();
    let client = client(&state).await;
    let relay = state.mode == Mode::Kind;
    wait_cilium_ready(
        &client,
        &state.cilium_namespace,
        None,
        relay,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn every_pod_of_the_stack_is_ready() {
    let state = state();
    let client = client(&state).await;
    let fixture = StackFixture::load(&Layout::new(root()).stack_fixture()).unwrap();
    let stack = manifests::load_dir(&fixture.manifests).unwrap();
    let deployments = manifests::deployments(&stack).unwrap();
    wait_stack_ready(
        &client,
        &deployments,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn exec_in_workload_returns_output_and_exit_code() {
    let state = state();
    let _ = client(&state).await;
    let exec = LiveExecutor::connect(&state, &root()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ok = exec
        .exec_in_workload(
            "attacker",
            "attacker",
            &args(&["agent", "--help"]),
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(
        ok.exit_code,
        0,
        "stderr: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!ok.stdout.is_empty());
    let bad = exec
        .exec_in_workload(
            "attacker",
            "attacker",
            &args(&["agent", "--no-such-flag-xyz"]),
            deadline,
        )
        .await
        .unwrap();
    assert_ne!(bad.exit_code, 0);
    assert!(!bad.stderr.is_empty());
    // The database pod has two containers: the probe runs in the agent's.
    let pg = exec
        .exec_in_workload(
            "database",
            "postgres",
            &args(&["agent", "--help"]),
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(pg.exit_code, 0);
}

#[tokio::test]
async fn exec_in_a_workload_without_pods_names_it() {
    let state = state();
    let _ = client(&state).await;
    let exec = LiveExecutor::connect(&state, &root()).await.unwrap();
    let err = exec
        .exec_in_workload(
            "attacker",
            "no-such-workload",
            &args(&["agent", "--help"]),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::NoPod { .. }), "{err}");
}

#[tokio::test]
async fn exec_in_outside_host_runs_in_its_container_or_is_not_applicable() {
    let state = state();
    let exec = LiveExecutor::connect(&state, &root()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = exec
        .exec_in_outside_host("lb", &args(&["agent", "--help"]), deadline)
        .await;
    match &state.outside {
        OutsideHosts::Started { .. } => assert_eq!(result.unwrap().exit_code, 0),
        OutsideHosts::NotAvailable { .. } => {
            assert!(matches!(result, Err(ExecError::NotApplicable { .. })))
        }
        OutsideHosts::NotStarted => panic!("{}", testbed::state::OUTSIDE_NOT_STARTED),
    }
}

#[tokio::test]
async fn unknown_policy_field_is_rejected_by_the_server_and_nothing_is_applied() {
    let state = state();
    let _ = client(&state).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: harness-strict-check, namespace: attacker}\n\
         spec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n    notAField: true\n",
    )
    .unwrap();
    let err = apply_posture(
        &state,
        "strict-check",
        &[file],
        &ApplyOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    match &err {
        PostureError::Rejected {
            rejections,
            applied_any,
            ..
        } => {
            assert!(!applied_any);
            assert_eq!(rejections.len(), 1);
            assert!(
                rejections[0].message.contains("notAField"),
                "{}",
                rejections[0].message
            );
        }
        other => panic!("expected a rejection, got: {other}"),
    }
}

#[tokio::test]
async fn the_cluster_lock_is_held_by_this_test_bed_only() {
    let state = state();
    let client = client(&state).await;
    lock::acquire(&client, &state.lock_holder, lock::DEFAULT_LEASE_DURATION)
        .await
        .unwrap();
    let err = lock::acquire(&client, "someone-else", lock::DEFAULT_LEASE_DURATION)
        .await
        .unwrap_err();
    match err {
        LockError::Held { holder, .. } => assert_eq!(holder, state.lock_holder),
        other => panic!("expected Held, got {other}"),
    }
}
