//! `harness diff`: every class of change, on offline checks (judged on the model) and on scripted live runs
//! (judged on what was observed): tests/data/run-hardened-1.19.json → run-hardened-1.20.json is an upgrade
//! whose non-strict apply pruned the Kafka rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::check::{self, Inputs};
use harness::diff::{Basis, ChangeClass, diff, render};
use harness::model::{CiliumVersion, Decision, PolicyStatus};
use harness::results::Results;

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

fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn data(name: &str) -> Results {
    Results::read(&data_path(name)).expect("test data reads")
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

const KAFKA_L7_DENIES: [&str; 4] = [
    "kafka-api-consume-orders",
    "kafka-api-produce-audit",
    "kafka-api-produce-events",
    "kafka-api-produce-orders-rogue-id",
];
const KAFKA_L4_DENIES: [&str; 3] = [
    "kafka-from-attacker",
    "kafka-from-frontend",
    "kafka-from-outsider",
];

#[test]
fn check_at_1_19_and_1_20_shows_the_kafka_widening_and_the_rejected_rule() {
    let d = diff(&check("hardened", "1.19"), &check("hardened", "1.20"));
    assert_eq!(d.basis, Basis::Model);
    assert!(d.has_widening());
    // At least the Kafka denies named here widen, and nothing but Kafka scenarios does (the scenario
    // files may add more of them).
    let widened = sorted(d.ids(ChangeClass::Widening));
    for id in KAFKA_L7_DENIES.into_iter().chain(KAFKA_L4_DENIES) {
        assert!(widened.contains(&id), "{id} not in {widened:?}");
    }
    assert!(
        widened.iter().all(|id| id.starts_with("kafka-")),
        "{widened:?}"
    );
    assert!(d.ids(ChangeClass::Narrowing).is_empty());

    assert_eq!(d.policies.len(), 1, "{:?}", d.policies);
    let p = &d.policies[0];
    assert_eq!(p.name, "kafka/kafka-ingress");
    assert_eq!(p.before, Some(PolicyStatus::InForce));
    assert!(
        matches!(&p.after, Some(PolicyStatus::Rejected { reason }) if reason.contains("rules.kafka")),
        "{p:?}"
    );

    for c in d.of_class(ChangeClass::Widening) {
        assert_eq!(
            c.causes,
            ["policy kafka/kafka-ingress: in force → rejected"],
            "{}",
            c.id
        );
        assert_eq!(
            c.before.as_ref().and_then(|s| s.decision),
            Some(Decision::Deny),
            "{}",
            c.id
        );
        assert_eq!(
            c.after.as_ref().and_then(|s| s.decision),
            Some(Decision::Allow),
            "{}",
            c.id
        );
    }
    let text = render(&d, false);
    assert!(
        text.contains(&format!(
            "!! Widening against the intent: denied before, allowed after, the intent is deny ({}):",
            widened.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "kafka/kafka-ingress: in force → rejected: `rules.kafka` was removed in Cilium 1.20"
        ),
        "{text}"
    );
    let counts = text.lines().last().unwrap_or_default();
    assert!(
        counts.starts_with(&format!(
            "{} widening, 0 narrowing, 0 fixes, ",
            widened.len()
        )) && counts.ends_with("; 1 policy change"),
        "{counts}"
    );
}

#[test]
fn seed_rules_with_kafka_sections_are_reported_rejected_on_1_20() {
    let d = diff(&check("seed", "1.19"), &check("seed", "1.20"));
    let rejected: Vec<&str> = d
        .policies
        .iter()
        .filter(|p| {
            p.before == Some(PolicyStatus::InForce)
                && matches!(p.after, Some(PolicyStatus::Rejected { .. }))
        })
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        sorted(rejected),
        ["kafka/kafka-client-id", "kafka/kafka-topic-policy"]
    );
}

#[test]
fn runs_are_compared_on_what_the_client_and_hubble_saw() {
    let d = diff(
        &data("run-hardened-1.19.json"),
        &data("run-hardened-1.20.json"),
    );
    assert_eq!(d.basis, Basis::Observed);
    let mut widened: Vec<&str> = KAFKA_L7_DENIES
        .into_iter()
        .chain(["kafka-from-attacker", "kafka-from-frontend"])
        .collect();
    widened.sort_unstable();
    assert_eq!(sorted(d.ids(ChangeClass::Widening)), widened);
    assert_eq!(d.ids(ChangeClass::Narrowing), ["api-get-orders"]);
    assert_eq!(
        sorted(d.ids(ChangeClass::EvidenceOnly)),
        [
            "api-admin-port",
            "db-egress-to-api",
            "kafka-api-consume-events",
            "kafka-api-produce-orders",
            "kafka-from-outsider"
        ]
    );
    assert_eq!(d.ids(ChangeClass::New), ["egress-attacker-partner"]);
    assert_eq!(d.ids(ChangeClass::Removed), ["egress-kafka-partner"]);
    assert_eq!(d.unchanged, 31);
    // Unchanged scenarios are not listed, even one whose client and Hubble disagree on both sides.
    assert!(
        d.scenarios
            .iter()
            .all(|c| c.id != "db-from-attacker" && c.id != "api-get-admin")
    );
}

#[test]
fn evidence_only_changes_name_what_changed() {
    let d = diff(
        &data("run-hardened-1.19.json"),
        &data("run-hardened-1.20.json"),
    );
    let changes = |id: &str| {
        d.scenarios
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.changes.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        changes("api-admin-port"),
        ["client: connect_timeout → unreachable"]
    );
    assert_eq!(
        changes("db-egress-to-api"),
        [
            "hubble: dropped-l4 ingress → dropped-l4 egress",
            "status: fail → pass"
        ]
    );
    assert_eq!(
        changes("kafka-api-produce-orders"),
        [
            "model: allow (proxied) → allow",
            "hubble: l7-allowed → forwarded"
        ]
    );
    // No conclusive observation after: not a widening, but said so, with the model's change.
    let outsider = changes("kafka-from-outsider");
    assert!(
        outsider[0].starts_with("no conclusive observation on one side")
            && outsider[0].ends_with("(the model: deny l4 ingress → allow)"),
        "{outsider:?}"
    );
}

#[test]
fn reversing_the_documents_turns_regressions_into_fixes() {
    let d = diff(
        &data("run-hardened-1.20.json"),
        &data("run-hardened-1.19.json"),
    );
    // Every decision change now goes towards the intent: api-get-orders (allow) is allowed again, and
    // the six widened denies are denied again.
    assert!(d.ids(ChangeClass::Widening).is_empty());
    assert!(d.ids(ChangeClass::Narrowing).is_empty());
    assert!(!d.has_widening());
    let fixes = d.ids(ChangeClass::Fix);
    assert_eq!(fixes.len(), 7, "{fixes:?}");
    assert!(fixes.contains(&"api-get-orders"), "{fixes:?}");
    assert_eq!(d.ids(ChangeClass::New), ["egress-kafka-partner"]);
    assert_eq!(d.ids(ChangeClass::Removed), ["egress-attacker-partner"]);
}

#[test]
fn a_run_and_a_check_are_compared_on_the_model() {
    // The scripted run's model column says kafka-internal-consume is denied; the real check allows it.
    let d = diff(&data("run-hardened-1.19.json"), &check("hardened", "1.19"));
    assert_eq!(d.basis, Basis::Model);
    // Denied before, allowed after, and the intent is allow: a fix, not a widening.
    assert!(d.ids(ChangeClass::Widening).is_empty());
    assert_eq!(d.ids(ChangeClass::Fix), ["kafka-internal-consume"]);
    assert_eq!(
        sorted(d.ids(ChangeClass::Removed)),
        [
            "egress-api-partner-https",
            "egress-attacker-lb",
            "egress-frontend-internet",
            "egress-kafka-partner"
        ]
    );
}

#[test]
fn a_document_compared_with_itself_has_no_change() {
    for r in [check("seed", "1.19"), data("run-hardened-1.19.json")] {
        let d = diff(&r, &r);
        assert!(d.is_empty() && !d.has_widening(), "{:?}", d.scenarios);
        assert_eq!(d.unchanged, r.scenarios.len());
        assert!(render(&d, false).ends_with(&format!(
            "No verdict changed ({} scenarios compared).",
            r.scenarios.len()
        )));
    }
}

#[test]
fn a_single_flipped_deny_is_a_widening() {
    let before = check("hardened", "1.19");
    let mut after = before.clone();
    let s = after
        .scenarios
        .iter_mut()
        .find(|s| s.id == "db-from-attacker")
        .expect("scenario");
    s.model.decision = Decision::Allow;
    s.model.layer = None;
    s.model.direction = None;
    let d = diff(&before, &after);
    assert_eq!(d.ids(ChangeClass::Widening), ["db-from-attacker"]);
    assert_eq!(d.scenarios.len(), 1);
}

#[test]
fn markdown_diff_has_a_table_per_class() {
    let d = diff(
        &data("run-hardened-1.19.json"),
        &data("run-hardened-1.20.json"),
    );
    let md = render(&d, true);
    assert!(md.starts_with("## ❌ Verdict diff"), "{md}");
    for (heading, rows) in [
        (
            "### Widening against the intent: denied before, allowed after, the intent is deny (6)",
            6,
        ),
        (
            "### Narrowing against the intent: allowed before, denied after, the intent is allow (1)",
            1,
        ),
        (
            "### Evidence-only changes: same decision, other evidence changed (5)",
            5,
        ),
        ("### New scenarios (1)", 1),
        ("### Removed scenarios (1)", 1),
    ] {
        let section = md
            .split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no {heading}:\n{md}"));
        let section = section.split("\n### ").next().unwrap_or_default();
        assert_eq!(
            section.lines().filter(|l| l.starts_with("| `")).count(),
            rows,
            "{heading}"
        );
    }
    assert!(md.contains("| `api-admin-port` | deny (client connect_timeout, hubble dropped-l4 ingress) (pass) | deny (client unreachable, hubble dropped-l4 ingress) (pass) | client: connect_timeout → unreachable |  |"), "{md}");
    let same = render(
        &diff(
            &data("run-hardened-1.19.json"),
            &data("run-hardened-1.19.json"),
        ),
        true,
    );
    assert!(same.starts_with("## ✅ Verdict diff"), "{same}");
}

fn harness_diff(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(root())
        .arg("diff")
        .args(args)
        .output()
        .expect("run harness diff")
}

#[test]
fn harness_diff_exits_1_on_widening_unless_allowed_and_0_without() {
    let before = data_path("run-hardened-1.19.json");
    let after = data_path("run-hardened-1.20.json");
    let (b, a) = (
        before.to_str().expect("utf-8"),
        after.to_str().expect("utf-8"),
    );
    let out = harness_diff(&[b, a]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("!! Widening"));
    assert_eq!(
        harness_diff(&["--allow-widening", b, a]).status.code(),
        Some(0)
    );
    // The other way round every change goes towards the intent (api-get-orders is allowed again): fixes,
    // reported, exit 0.
    let back = harness_diff(&[a, b]);
    assert_eq!(back.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&back.stdout)
            .contains("Fixes: the verdict moved towards the intent")
    );
    assert_eq!(harness_diff(&[b, b]).status.code(), Some(0));
    let missing = harness_diff(&[b, "no-such-file.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn upgrade_gate_fails_only_on_widening_the_model_did_not_predict() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let before =
        harness::results::Results::read(&data.join("run-hardened-1.19.json")).expect("1.19 run");
    let after =
        harness::results::Results::read(&data.join("run-hardened-1.20.json")).expect("1.20 run");
    let observed = harness::diff::diff(&before, &after);
    assert!(observed.has_widening());
    // Nothing predicted: every observed widening is unexpected.
    let nothing = harness::diff::diff(&before, &before);
    let all = harness::diff::unexpected_widening(&nothing, &observed);
    assert_eq!(
        all.len(),
        observed
            .of_class(harness::diff::ChangeClass::Widening)
            .count()
    );
    // The observation predicted exactly: nothing is unexpected.
    assert!(harness::diff::unexpected_widening(&observed, &observed).is_empty());
}

/// A scripted run's scenario whose client and Hubble both saw a policy deny.
fn observed_deny(r: &mut Results, id: &str) -> usize {
    let i = r
        .scenarios
        .iter()
        .position(|s| s.id == id)
        .expect("scenario");
    let s = &r.scenarios[i];
    assert_eq!(
        s.client.as_ref().expect("client").outcome,
        probe_wire::Outcome::ConnectTimeout
    );
    assert_eq!(s.hubble.as_ref().expect("hubble").verdict, "dropped-l4");
    i
}

#[test]
fn a_client_that_got_through_is_a_widening_even_when_hubble_shows_a_drop() {
    let mut before = data("run-hardened-1.19.json");
    let i = observed_deny(&mut before, "edge-lb-http-80");
    let mut after = before.clone();
    // Hubble still shows the policy drop (say, of a retransmission), but the client was answered.
    let client = after.scenarios[i].client.as_mut().expect("client");
    client.outcome = probe_wire::Outcome::Completed;
    client.detail = "200 OK".into();
    let d = diff(&before, &after);
    assert_eq!(d.ids(ChangeClass::Widening), ["edge-lb-http-80"], "{d:?}");
    assert!(d.has_widening());
}

#[test]
fn a_hubble_drop_for_a_reason_other_than_policy_is_no_deny() {
    let mut before = data("run-hardened-1.19.json");
    let i = observed_deny(&mut before, "edge-lb-http-80");
    for verdict in [harness::runner::DROPPED_OTHER, "dropped-l4"] {
        let mut after = before.clone();
        let s = &mut after.scenarios[i];
        // The client's answer is unclear (a timeout after connect); the only drop is a conntrack failure.
        s.client.as_mut().expect("client").outcome = probe_wire::Outcome::Timeout;
        let h = s.hubble.as_mut().expect("hubble");
        h.verdict = verdict.into();
        for f in &mut h.flows {
            let flow = f.get_mut("flow").expect("a flow object");
            flow["drop_reason_desc"] = "CT_MAP_INSERTION_FAILED".into();
            flow["drop_reason"] = 155.into();
        }
        let d = diff(&before, &after);
        let change = d
            .scenarios
            .iter()
            .find(|c| c.id == "edge-lb-http-80")
            .unwrap_or_else(|| panic!("{verdict}: the lost deny must show: {d:?}"));
        assert_eq!(change.class, ChangeClass::EvidenceOnly, "{verdict}");
        let after_side = change.after.as_ref().expect("after");
        assert_eq!(after_side.decision, None, "{verdict}: {after_side:?}");
        assert!(
            after_side
                .verdict
                .contains("other than policy (CT_MAP_INSERTION_FAILED)"),
            "{verdict}: {}",
            after_side.verdict
        );
    }
}
