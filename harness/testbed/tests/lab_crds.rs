//! A strict apply against another Cilium version's CRDs, on a real kube-apiserver (nextest profile `lab`).
//!
//! Cilium 1.20 removed Kafka policy: its CRDs have no `kafka` field, so the API server must refuse the
//! hardened posture's Kafka rules under strict field validation, and the harness must apply nothing. The
//! lab's own API server carries the CRDs of the Cilium it runs (1.19), so this test starts a second API
//! server in the lab's node (scripts/lab.sh crd-apiserver) with Cilium 1.20's CRDs, downloaded from that
//! release's Go module (scripts/lab-build.sh crds), and applies through the harness's own apply path.
//!
//! Needs a lab that is up (`harness up --backend lab`); without one the test FAILS, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use testbed::config::Layout;
use testbed::policy::{ApplyOptions, PostureError, apply_posture};
use testbed::{NoProgress, State};

/// The Cilium 1.20 release whose CRDs are checked (served by the Go module proxy).
const CILIUM_1_20: &str = "v1.20.2";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a script of scripts/ and returns the last line it printed.
fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(root().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// Stops the second API server however the test ends.
struct SecondApiServer;

impl Drop for SecondApiServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/lab.sh"))
            .arg("crd-apiserver-stop")
            .status();
    }
}

fn posture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn cilium_1_20_crds_refuse_the_hardened_kafka_rules_and_nothing_is_applied() {
    let state_file = Layout::new(root()).state_file();
    let mut state = State::load(&state_file)
        .unwrap_or_else(|e| panic!("no lab is up (harness up --backend lab): {e}"));
    assert!(
        state.lab.is_some(),
        "the test bed in {} is not the lab",
        state_file.display()
    );

    let crds = script("lab-build.sh", &["crds", CILIUM_1_20]);
    let _stop = SecondApiServer;
    let kubeconfig = script("lab.sh", &["crd-apiserver", &crds]);
    state.kubeconfig = Some(PathBuf::from(&kubeconfig));

    let client = testbed::lab::client_for(Path::new(&kubeconfig))
        .await
        .expect("client of the second API server");
    // The posture's namespaces, as on the lab (a policy in a missing namespace is refused for that reason).
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["frontend", "backend", "database", "kafka"] {
        let object = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create namespace {ns} on the second API server: {e}")
            });
    }

    let files = posture_files(&root().join("policies/hardened"));
    let err = apply_posture(
        &state,
        "hardened",
        &files,
        &ApplyOptions::default(),
        &NoProgress,
    )
    .await
    .expect_err("Cilium 1.20's CRDs accepted the hardened posture's Kafka rules");
    let PostureError::Rejected {
        rejections,
        applied_any,
        ..
    } = &err
    else {
        panic!("expected a rejection by the API server, got: {err}");
    };
    assert!(!applied_any, "a rejected posture was partly applied: {err}");
    let rejected: Vec<&str> = rejections.iter().map(|r| r.policy.name.as_str()).collect();
    assert_eq!(
        rejected,
        ["kafka-ingress"],
        "only the Kafka policy is refused: {err}"
    );
    let message = &rejections[0].message;
    // Kubernetes 1.35 words it `.spec.ingress[0].toPorts[0].rules.kafka: field not declared in schema`.
    assert!(
        message.contains("rules.kafka") && message.contains("not declared in schema"),
        "the refusal names the undeclared `kafka` field: {message}"
    );

    // Nothing reached the server: no CiliumNetworkPolicy exists there.
    let cnp = kube::discovery::ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: "CiliumNetworkPolicy".into(),
        plural: "ciliumnetworkpolicies".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(client, &cnp);
    let left = api.list(&ListParams::default()).await.unwrap();
    assert!(
        left.items.is_empty(),
        "policies were created on the server: {:?}",
        left.items
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}
