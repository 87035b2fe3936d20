//! The live commands on a machine without a test bed: each states its one cause once and exits 1 at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the harness binary with a state file that does not exist.
fn harness(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env("HARNESS_ROOT", root())
        .env("HARNESS_STATE", state_dir.join("state.json"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the harness binary runs")
}

const CAUSE: &str = "no test bed state at";

#[test]
fn run_without_a_test_bed_states_the_cause_once_and_records_it_in_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.json");
    let out = harness(
        dir.path(),
        &[
            "run",
            "--posture",
            "hardened",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches(CAUSE).count(), 1, "{stderr}");
    assert!(
        stderr.lines().next().unwrap_or_default().contains(CAUSE),
        "the cause comes first: {stderr}"
    );
    assert!(
        stderr.lines().count() <= 3,
        "no per-scenario output: {stderr}"
    );
    assert!(
        stdout.trim().is_empty(),
        "no table of runs that did not happen: {stdout}"
    );

    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).expect("results written")).unwrap();
    let why = doc["setup_error"]
        .as_str()
        .expect("setup_error is a top-level field");
    assert!(why.contains(CAUSE) && why.contains("harness up"), "{why}");
    let scenarios = doc["scenarios"].as_array().unwrap();
    assert!(!scenarios.is_empty());
    assert!(scenarios.iter().all(|s| s["status"] == "inconclusive"));

    // The reports lead with it.
    let md = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["report", results.to_str().unwrap(), "--format", "markdown"])
        .env("HARNESS_ROOT", root())
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&md.stdout);
    let first = md.lines().next().unwrap_or_default();
    assert!(first.contains("not run") && first.contains(CAUSE), "{md}");
}

#[test]
fn upgrade_checks_the_test_bed_before_predicting() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness(dir.path(), &["upgrade", "--from", "1.19", "--to", "1.20"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stdout.contains("Predicted"),
        "no prediction before the test bed check: {stdout}"
    );
    assert_eq!(stderr.matches(CAUSE).count(), 1, "{stderr}");
}

#[test]
fn apply_and_down_without_a_test_bed_state_the_error_once() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["apply", "--posture", "hardened"][..], &["down"][..]] {
        let out = harness(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(CAUSE).count(), 1, "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("harness up").count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}
