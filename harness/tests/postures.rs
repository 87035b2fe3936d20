//! The model against the project's own postures, stack and scenarios: the acceptance criteria.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::check::{self, Inputs};
use harness::model::{CiliumVersion, PolicyStatus};
use harness::results::{Results, ScenarioResult, Status};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(posture: &str, version: &str) -> Results {
    let r = root();
    let inputs = Inputs {
        policies: vec![r.join("policies").join(posture)],
        posture: posture.into(),
        stack_file: r.join("fixtures/stack.yaml"),
        scenarios: r.join("fixtures/scenarios"),
        helm_values: Some(r.join("kind/cilium-values.yaml")),
        version: version.parse::<CiliumVersion>().expect("version"),
    };
    check::run(&inputs).expect("inputs load")
}

fn scenario<'a>(r: &'a Results, id: &str) -> &'a ScenarioResult {
    r.scenarios
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no scenario {id}"))
}

fn gap_text(r: &Results, id: &str) -> String {
    let s = scenario(r, id);
    assert_eq!(
        s.status,
        Status::Gap,
        "{id} should be a gap: {}",
        s.model.explanation
    );
    format!(
        "{} {} {}",
        s.reason,
        s.model.explanation,
        s.model.notes.join(" ")
    )
}

#[test]
fn hardened_posture_meets_every_intent_on_1_19() {
    let r = check("hardened", "1.19");
    let gaps: Vec<_> = r
        .scenarios
        .iter()
        .filter(|s| s.status != Status::Met)
        .map(|s| format!("{}: {} / {}", s.id, s.reason, s.model.explanation))
        .collect();
    assert!(gaps.is_empty(), "hardened gaps:\n{}", gaps.join("\n"));
    assert!(
        r.scenarios.len() >= 62,
        "only {} scenarios",
        r.scenarios.len()
    );
}

#[test]
fn seed_names_the_namespace_scoped_frontend_selector() {
    let r = check("seed", "1.19");
    let blocked = gap_text(&r, "api-get-orders");
    assert!(
        blocked.contains("limited to namespace backend"),
        "{blocked}"
    );
    assert!(
        blocked.contains("k8s:io.kubernetes.pod.namespace: frontend"),
        "{blocked}"
    );
    let impostor = gap_text(&r, "api-from-impostor");
    assert!(impostor.contains("backend/impostor"), "{impostor}");
    assert!(impostor.contains("in namespace backend"), "{impostor}");
}

#[test]
fn seed_names_the_union_that_admits_every_source_on_443() {
    let r = check("seed", "1.19");
    for id in [
        "edge-outsider-https",
        "edge-attacker-https",
        "edge-rogue-https",
    ] {
        let t = gap_text(&r, id);
        assert!(
            t.contains("frontend-https-only") && t.contains("any peer"),
            "{id}: {t}"
        );
        assert!(t.contains("union"), "{id}: {t}");
    }
}

#[test]
fn seed_names_the_l4_rule_that_switches_off_http_filtering() {
    let r = check("seed", "1.19");
    let t = gap_text(&r, "api-from-impostor");
    assert!(t.contains("do not filter anything"), "{t}");
    assert!(t.contains("api-frontend-only"), "{t}");
}

#[test]
fn seed_names_the_literal_authorization_header() {
    let r = check("seed", "1.19");
    let p = r
        .policies
        .iter()
        .find(|p| p.name == "backend/api-authorization-header")
        .expect("policy");
    assert!(
        p.warnings.iter().any(|w| w.contains("literal value `.*`")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn seed_names_the_empty_egress_list_that_denies_nothing() {
    let r = check("seed", "1.19");
    let p = r
        .policies
        .iter()
        .find(|p| p.name == "database/postgres-egress-deny")
        .expect("policy");
    assert!(
        matches!(p.status, PolicyStatus::Rejected { .. }),
        "{:?}",
        p.status
    );
    for id in ["db-egress-dns", "db-egress-to-lb"] {
        let t = gap_text(&r, id);
        assert!(t.contains("postgres-egress-deny"), "{id}: {t}");
    }
    let wrong_reason = gap_text(&r, "db-egress-to-api");
    assert!(
        wrong_reason.contains("right verdict, wrong reason"),
        "{wrong_reason}"
    );
}

#[test]
fn seed_names_the_namespace_scoped_kafka_selectors() {
    let r = check("seed", "1.19");
    let api = gap_text(&r, "kafka-api-produce-orders");
    assert!(api.contains("limited to namespace kafka"), "{api}");
    let reporting = gap_text(&r, "kafka-reporting-consume");
    assert!(
        reporting.contains("kafka-known-clients")
            && reporting.contains("limited to namespace kafka"),
        "{reporting}"
    );
}

#[test]
fn seed_has_gaps_and_keeps_what_it_gets_right() {
    let r = check("seed", "1.19");
    assert!(r.summary.gaps >= 20, "{:?}", r.summary);
    assert_eq!(scenario(&r, "edge-lb-http-80").status, Status::Met);
    assert_eq!(scenario(&r, "kafka-partner-produce").status, Status::Met);
}

#[test]
fn hardened_on_1_20_says_kafka_rules_are_gone() {
    let r = check("hardened", "1.20");
    let p = r
        .policies
        .iter()
        .find(|p| p.name == "kafka/kafka-ingress")
        .expect("policy");
    match &p.status {
        PolicyStatus::Rejected { reason } => {
            assert!(reason.contains("removed in Cilium 1.20"), "{reason}")
        }
        s => panic!("kafka-ingress should be rejected on 1.20: {s:?}"),
    }
    let t = gap_text(&r, "kafka-api-produce-events");
    assert!(t.contains("not in force on Cilium 1.20"), "{t}");
    assert!(r.summary.gaps > 0);
}

fn harness(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .expect("run harness");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_exit_codes_say_met_gap_or_bad_input() {
    assert_eq!(harness(&["check", "--posture", "hardened"]).0, 0);
    assert_eq!(harness(&["check", "--posture", "seed"]).0, 1);
    assert_eq!(
        harness(&["check", "--posture", "hardened", "--cilium-version", "1.20"]).0,
        1
    );
    let (code, _, err) = harness(&["check", "--posture", "nonexistent"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("known: "), "{err}");
    let (code, _, err) = harness(&["check", "--cilium-version", "one.two"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn malformed_policy_file_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: bad\n  namespace: backend\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n    toPort: []\n",
    )
    .expect("write");
    let (code, out, err) = harness(&["check", "--posture", dir.path().to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("bad.yaml:10:"), "{err}");
    assert!(err.contains("toPort"), "{err}");
}

#[test]
fn json_output_is_the_results_document() {
    let (code, out, _) = harness(&["check", "--posture", "hardened", "--format", "json"]);
    assert_eq!(code, 0);
    let r: Results = serde_json::from_str(&out).expect("results JSON");
    assert_eq!(r.version, harness::results::RESULTS_VERSION);
    assert_eq!(r.summary.gaps, 0);
    assert!(
        r.scenarios
            .iter()
            .all(|s| s.client.is_none() && s.hubble.is_none())
    );
}

#[test]
fn eval_decides_ad_hoc_flows_from_a_query_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("q.yaml");
    std::fs::write(
        &q,
        "workloads:\n- {namespace: tmp, name: debug, labels: {role: frontend}}\nqueries:\n- id: ip-to-frontend\n  from: 10.0.0.77\n  to: frontend/frontend\n  port: 443\n- id: debug-delete\n  from: tmp/debug\n  to: backend/api\n  port: 8080\n  request: {http: {method: DELETE, path: /api/v1/orders/1, headers: {Authorization: Bearer x}}}\n",
    )
    .expect("write");
    let (code, out, err) = harness(&[
        "eval",
        "--policies",
        "policies/hardened",
        "--queries",
        q.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["results"][0]["verdict"]["decision"], "allow");
    assert_eq!(v["results"][1]["verdict"]["decision"], "deny");
    assert_eq!(v["results"][1]["verdict"]["layer"], "l4");
    std::fs::write(
        &q,
        "queries:\n- id: x\n  from: nowhere/nothing\n  to: backend/api\n  port: 1\n",
    )
    .expect("write");
    let (code, _, err) = harness(&[
        "eval",
        "--policies",
        "policies/hardened",
        "--queries",
        q.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("q.yaml:2") && err.contains("nowhere/nothing"),
        "{err}"
    );
}

#[test]
fn malformed_scenario_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = root();
    let inputs = Inputs {
        policies: vec![r.join("policies/hardened")],
        posture: "x".into(),
        stack_file: r.join("fixtures/stack.yaml"),
        scenarios: dir.path().to_path_buf(),
        helm_values: None,
        version: CiliumVersion::new(1, 19),
    };
    std::fs::write(dir.path().join("s.yaml"), "phase: p\nscenarios:\n- id: a\n  description: d\n  from: nobody/here\n  to: backend/api\n  port: 1\n  request: {tcp: {}}\n  intent: allow\n").expect("write");
    let err = check::run(&inputs).expect_err("error").to_string();
    assert!(
        err.contains("s.yaml:3") && err.contains("nobody/here"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("s.yaml"),
        "phase: p\nscenarios:\n- id: a\n  description: d\n  intent: maybe\n",
    )
    .expect("write");
    let err = check::run(&inputs).expect_err("error").to_string();
    assert!(err.contains("s.yaml:5"), "{err}");
}
