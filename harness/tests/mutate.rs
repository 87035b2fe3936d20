//! `harness mutate` as a command: the acceptance criteria of the mutation analysis on the project's own
//! suite.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
fn hardened_suite_kills_every_non_equivalent_mutant_on_1_19() {
    let (code, out, err) = harness(&["mutate", "--posture", "hardened", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    let s = &v["summary"];
    let survivors: Vec<String> = v["mutants"]
        .as_array()
        .expect("mutants")
        .iter()
        .filter(|m| m["status"] == "survived")
        .map(|m| format!("{} {} {}", m["policy"], m["rule_path"], m["after"]))
        .collect();
    assert!(survivors.is_empty(), "survivors:\n{}", survivors.join("\n"));
    assert_eq!(code, 0, "{err}");
    let mutants = s["mutants"].as_u64().expect("mutants");
    let equivalent = s["equivalent"].as_u64().expect("equivalent");
    assert!(mutants >= 100, "only {mutants} mutants");
    assert!(equivalent > 0, "no equivalent mutant at all is suspicious");
    assert_eq!(s["killed"].as_u64(), Some(mutants - equivalent));
    assert_eq!(s["score"].as_f64(), Some(100.0));
}

#[test]
fn table_ends_with_the_score_line() {
    let (code, out, err) = harness(&[
        "mutate",
        "--posture",
        "hardened",
        "--operators",
        "http-method",
    ]);
    assert_eq!(code, 0, "{err}");
    let last = out.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("mutation score 100.0%: "), "{last}");
    assert!(last.contains("equivalent"), "{last}");
}

#[test]
fn a_suite_that_misses_a_mistake_exits_1_and_proposes_a_scenario() {
    // The seed posture's own scenarios do not matter here: use the hardened posture with one scenario.
    let r = root();
    let dir = temp_root(
        "phase: api\nscenarios:\n- id: api-get-orders\n  description: d\n  from: frontend/frontend\n  to: backend/api\n  port: 8080\n  request: {http: {method: GET, path: /api/v1/orders, headers: {Authorization: Bearer t}}}\n  intent: allow\n",
        "",
    );
    let posture = r.join("policies/hardened");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "--root",
            dir.path().to_str().expect("utf8"),
            "mutate",
            "--posture",
            posture.to_str().expect("utf8"),
            "--operators",
            "http-path",
            "--format",
            "markdown",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("### Survivors"), "{text}");
    assert!(text.contains("```yaml\n- id: mutant-"), "{text}");
    assert!(text.contains("widens"), "{text}");
}

#[test]
fn bad_operator_and_bad_posture_exit_2() {
    let (code, _, err) = harness(&["mutate", "--operators", "label-dorp"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("label-dorp") && err.contains("known:"),
        "{err}"
    );
    let (code, _, err) = harness(&["mutate", "--posture", "nonexistent"]);
    assert_eq!(code, 2, "{err}");
}

/// A temporary root with the project's stack, `scenarios` as its only scenario file, and `policy` (unless
/// empty) as the posture `posture/` in the root.
fn temp_root(scenarios: &str, policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = root();
    std::fs::create_dir_all(dir.path().join("fixtures/scenarios")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("posture")).expect("mkdir");
    std::fs::write(
        dir.path().join("fixtures/stack.yaml"),
        std::fs::read_to_string(r.join("fixtures/stack.yaml"))
            .expect("stack")
            .replace(
                "../workloads/manifests",
                r.join("workloads/manifests").to_str().expect("utf8"),
            ),
    )
    .expect("write stack");
    std::fs::write(dir.path().join("fixtures/scenarios/s.yaml"), scenarios).expect("scenarios");
    if !policy.is_empty() {
        std::fs::write(dir.path().join("posture/p.yaml"), policy).expect("policy");
    }
    dir
}

fn mutate_json(dir: &Path, operators: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["--root", dir.to_str().expect("utf8"), "mutate", "--posture"])
        .arg(dir.join("posture"))
        .args(["--operators", operators, "--format", "json"])
        .output()
        .expect("run");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_proposed_http_scenario_carries_the_authority_a_host_rule_is_judged_on() {
    // An HTTP rule with `host:`: only requests with the authority the probe sends to backend/api:8080
    // match it. The suite does not look at port 8080, so a mistake in the rule's path survives, and the
    // proposal must be a request that, with its authority, the original allows and the mutant does not.
    let policy = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api-host, namespace: backend}\nspec:\n  endpointSelector: {matchLabels: {role: backend-api}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: frontend, role: frontend}}]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http:\n        - {method: GET, path: /api/v1/orders, host: \"api.backend:8080\"}\n";
    let unrelated = "phase: api\nscenarios:\n- id: api-admin-port\n  description: d\n  from: frontend/frontend\n  to: backend/api\n  port: 9090\n  request: {tcp: {}}\n  intent: deny\n";
    let dir = temp_root(unrelated, policy);
    let v = mutate_json(dir.path(), "http-path");
    let survivor = v["mutants"]
        .as_array()
        .expect("mutants")
        .iter()
        .find(|m| m["status"] == "survived")
        .unwrap_or_else(|| panic!("no survivor: {v}"));
    let yaml = survivor["proposal"]["yaml"]
        .as_str()
        .unwrap_or_else(|| panic!("no proposal for {survivor}"));
    assert!(yaml.contains("host: \"api.backend:8080\""), "{yaml}");
    // With the proposal in the suite, the same mutant is killed.
    let dir = temp_root(&format!("{unrelated}{yaml}"), policy);
    let v = mutate_json(dir.path(), "http-path");
    let after = v["mutants"]
        .as_array()
        .expect("mutants")
        .iter()
        .find(|m| m["id"] == survivor["id"])
        .expect("the same mutant");
    assert_eq!(after["status"], "killed", "{after}");
}
