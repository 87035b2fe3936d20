//! Differential test: every scenario of both postures, decided by the model and by Cilium's own policy
//! engine (the oracle in `oracle/`, Cilium v1.19.7), must agree on every field both decide.
//!
//! The oracle is built with Go on first use and cached outside the repository (see
//! `harness::oracle::ensure_built_release`); without Go the test fails and says how to install it.

use std::path::{Path, PathBuf};

use harness::model::CiliumVersion;
use harness::oracle::{self, Oracle};
use harness::scenario;
use harness::stack::Stack;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built_oracle() -> Oracle {
    Oracle::build(&root(), &oracle::RELEASES[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// Disagreements that are understood: (posture, scenario id, field prefix, why). Empty: the model agrees
/// with Cilium's engine on every scenario.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str, &str)] = &[];

struct Tally {
    queries: usize,
    disagreements: Vec<String>,
}

fn differential(posture: &str, o: &Oracle) -> Tally {
    differential_on(posture, o, oracle::CILIUM_MINOR)
}

fn differential_on(posture: &str, o: &Oracle, minor: &str) -> Tally {
    let root = root();
    let stack = Stack::load(&root.join("fixtures/stack.yaml")).expect("stack");
    let scenarios =
        scenario::load_scenarios(&root.join("fixtures/scenarios"), &stack).expect("scenarios");
    let version: CiliumVersion = minor.parse().expect("version");
    let pdir = root.join("policies").join(posture);
    let d = oracle::differential(o, &stack, &scenarios, &pdir, version)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        d.asked.len() > 20,
        "too few flow scenarios: {}",
        d.asked.len()
    );
    let mut disagreements: Vec<String> = d
        .policies
        .iter()
        .map(|p| format!("{posture}: {p}"))
        .collect();
    for (id, fields) in &d.scenarios {
        for f in fields {
            let known = KNOWN_EXCEPTIONS
                .iter()
                .any(|(p, kid, field, _)| *p == posture && kid == id && f.starts_with(field));
            if !known {
                disagreements.push(format!("{posture}: {id}: {f}"));
            }
        }
    }
    Tally {
        queries: d.asked.len(),
        disagreements,
    }
}

#[test]
fn every_scenario_of_both_postures_gets_the_verdict_ciliums_engine_gives() {
    let o = built_oracle();
    let mut all = Vec::new();
    for posture in ["seed", "hardened"] {
        let t = differential(posture, &o);
        eprintln!(
            "{posture}: {} scenarios on Cilium {}: {} agree, {} disagree",
            t.queries,
            oracle::CILIUM_RELEASE,
            t.queries - t.disagreements.len().min(t.queries),
            t.disagreements.len()
        );
        all.extend(t.disagreements);
    }
    assert!(
        all.is_empty(),
        "the model and Cilium's policy engine disagree:\n{}",
        all.join("\n")
    );
}

/// Every scenario of both postures on the oracle build for `minor` must agree with the model.
fn every_scenario_agrees_on(minor: &str) {
    let version: CiliumVersion = minor.parse().expect("version");
    let r = oracle::release_for(version).expect("an oracle build for this version");
    let o = Oracle::build(&root(), r).unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    for posture in ["seed", "hardened"] {
        let t = differential_on(posture, &o, minor);
        eprintln!(
            "{posture}: {} scenarios on Cilium {}: {} agree, {} disagree",
            t.queries,
            r.release,
            t.queries - t.disagreements.len().min(t.queries),
            t.disagreements.len()
        );
        all.extend(t.disagreements);
    }
    assert!(
        all.is_empty(),
        "the model and Cilium {minor}'s policy engine disagree:\n{}",
        all.join("\n")
    );
}

/// Cilium 1.20 removed Kafka-aware policy: its CRD refuses the hardened kafka-ingress (both sides say
/// rejected), and the rest must still agree.
#[test]
fn every_scenario_of_both_postures_gets_the_verdict_ciliums_1_20_engine_gives() {
    every_scenario_agrees_on("1.20");
}

/// Cilium 1.18 (v1.18.3): Kafka rules still exist; egress named ports resolve cluster-wide as on 1.19.
#[test]
fn every_scenario_of_both_postures_gets_the_verdict_ciliums_1_18_engine_gives() {
    every_scenario_agrees_on("1.18");
}

fn harness_check(args: &[&str]) -> (i32, String) {
    // The oracle must be built first (a missing Go fails here, saying so).
    let _ = built_oracle();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("--root")
        .arg(root())
        .arg("check")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the harness binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_with_oracle_prints_that_ciliums_engine_agrees_on_every_flow_scenario() {
    let (code, stderr) = harness_check(&["--posture", "hardened", "--oracle"]);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Cilium v1.19.7's engine:"))
        .unwrap_or_else(|| panic!("no agreement line in:\n{stderr}"));
    let (agree, total) = line
        .split_once(" flow scenario")
        .and_then(|(head, _)| head.rsplit_once(" of "))
        .map(|(a, t)| (a.rsplit(' ').next().unwrap_or(""), t))
        .expect("`N of M flow scenario(s)`");
    assert_eq!(agree, total, "{line}");
    assert!(total.parse::<usize>().unwrap() > 50, "{line}");
    assert!(!stderr.contains("disagrees:"), "{stderr}");
}

#[test]
fn check_with_oracle_refuses_a_version_the_oracle_is_not_built_for() {
    let (code, stderr) = harness_check(&["--oracle", "--cilium-version", "1.17"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "built for Cilium 1.18, 1.19, 1.20 only; it cannot check --cilium-version 1.17"
        ),
        "{stderr}"
    );
}

/// A cold build of the oracle takes minutes: every test binary that builds it must have the default
/// profile's long timeout in .config/nextest.toml (the Kafka wire tests once timed out at 2 minutes on a
/// fresh machine).
#[test]
fn every_test_binary_that_builds_the_oracle_has_the_long_timeout() {
    let config =
        std::fs::read_to_string(root().join(".config/nextest.toml")).expect("nextest.toml");
    let filter = config
        .lines()
        .skip_while(|l| !l.contains("binary(oracle)"))
        .find_map(|l| l.trim().strip_prefix("filter = "))
        .expect("the override of the oracle tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("harness/tests")).expect("tests") {
        let path = entry.expect("entry").path();
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| path.extension().is_some_and(|e| e == "rs"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("test source");
        if text.contains(concat!("Oracle::", "build("))
            && !filter.contains(&format!("binary({stem})"))
        {
            missing.push(stem.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "test binaries that build the oracle without the long timeout in .config/nextest.toml: {missing:?}"
    );
}
