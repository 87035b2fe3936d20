//! Tests of the mutation analysis, against the project's stack and postures.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::CiliumVersion;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A policy that gives every operator something to change.
const RICH: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rich
  namespace: backend
spec:
  endpointSelector:
    matchLabels: {role: backend-api}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: frontend, role: frontend}
      matchExpressions:
      - {key: k8s:io.kubernetes.pod.namespace, operator: In, values: [frontend, analytics]}
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/api/v1/.*", headers: [Authorization]}
  - fromCIDRSet:
    - {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka:
        - {role: produce, topic: orders, clientID: payment-service}
        - {role: consume, topic: events, clientID: payment-service}
  ingressDeny:
  - fromEntities: [world]
    toPorts:
    - ports: [{port: "9090", protocol: TCP}]
  egress:
  - toCIDR: [10.20.30.0/24]
"#;

const ONE_SCENARIO: &str = "phase: api\nscenarios:\n- id: api-get-orders\n  description: the frontend may GET\n  from: frontend/frontend\n  to: backend/api\n  port: 8080\n  request: {http: {method: GET, path: /api/v1/orders, headers: {Authorization: Bearer harness-token}}}\n  intent: allow\n";

fn options(policies: PathBuf, scenarios: PathBuf, ops: Option<&str>) -> Options {
    Options {
        inputs: Inputs {
            policies: vec![policies],
            posture: "test".into(),
            stack_file: repo().join("fixtures/stack.yaml"),
            scenarios,
            helm_values: None,
            version: CiliumVersion::new(1, 19),
        },
        operators: parse_operators(ops).expect("operators"),
    }
}

#[test]
fn every_operator_produces_mutants_the_policy_parser_accepts_on_1_19() {
    let doc: Value = serde_saphyr::from_str(RICH).expect("yaml");
    let all: BTreeSet<Operator> = Operator::ALL.into_iter().collect();
    let stack = Stack::load(&repo().join("fixtures/stack.yaml")).expect("stack");
    let muts = operators::mutations(&doc, &all, &vocabulary(&stack));
    for op in Operator::ALL {
        let mine: Vec<&Mutation> = muts.iter().filter(|m| m.operator == op).collect();
        assert!(!mine.is_empty(), "{op} made no mutant");
        let valid = mine
            .iter()
            .filter(|m| match operators::apply(&doc, m) {
                None => m.path.is_empty(),
                Some(v) => {
                    let text = serde_json::to_string(&v).expect("json");
                    policy::parse_policies(Path::new("rich.yaml"), &text).is_ok_and(|ps| {
                        let model = Model::build(
                            &ps,
                            Model::identities_of(&stack),
                            CiliumVersion::new(1, 19),
                        );
                        model.policies[0].status == PolicyStatus::InForce
                    })
                }
            })
            .count();
        assert!(
            valid > 0,
            "{op}: none of {} mutants is a valid policy",
            mine.len()
        );
    }
}

#[test]
fn a_mutant_the_version_rejects_is_left_out_as_invalid() {
    // Dropping the only element of the only section leaves a rule without sections: 1.18+ rejects it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: frontend}\nspec:\n  endpointSelector: {matchLabels: {role: frontend}}\n  ingress:\n  - fromCIDR: [10.0.0.0/24]\n",
    )
    .expect("write");
    let sc = tempfile::tempdir().expect("tempdir");
    std::fs::write(sc.path().join("s.yaml"), ONE_SCENARIO).expect("write");
    let report = run(&options(
        dir.path().into(),
        sc.path().into(),
        Some("rule-drop"),
    ))
    .expect("run");
    assert!(report.mutants.is_empty(), "{:?}", report.mutants);
    assert_eq!(report.invalid.len(), 1);
    assert!(
        report.invalid[0].reason.contains("rejects"),
        "{}",
        report.invalid[0].reason
    );
}

#[test]
fn dropping_the_app_label_of_the_only_database_pod_is_equivalent() {
    let opts = options(
        repo().join("policies/hardened"),
        repo().join("fixtures/scenarios"),
        Some("label-drop"),
    );
    let report = run(&opts).expect("run");
    let m = report
        .mutants
        .iter()
        .find(|m| {
            m.policy == "database/postgres"
                && m.rule_path == "spec.endpointSelector.matchLabels.app"
        })
        .expect("the mutant");
    assert_eq!(m.status, Status::Equivalent, "{m:?}");
    assert!(m.flows_compared.unwrap_or(0) > 10_000, "{m:?}");
    // The same label dropped from a namespace with two pods is not equivalent.
    let kafka = report
        .mutants
        .iter()
        .find(|m| {
            m.policy == "kafka/kafka-ingress"
                && m.rule_path == "spec.endpointSelector.matchLabels.app"
        })
        .expect("the kafka mutant");
    assert_ne!(kafka.status, Status::Equivalent, "{kafka:?}");
}

#[test]
fn a_survivors_proposed_scenario_kills_it() {
    let sc = tempfile::tempdir().expect("tempdir");
    std::fs::write(sc.path().join("s.yaml"), ONE_SCENARIO).expect("write");
    let opts = options(
        repo().join("policies/hardened"),
        sc.path().into(),
        Some("http-method,http-path"),
    );
    let before = run(&opts).expect("run");
    let head = before
        .mutants
        .iter()
        .find(|m| m.after == "method: \"GET|HEAD\"")
        .expect("the GET|HEAD mutant");
    assert_eq!(head.status, Status::Survived, "{head:?}");
    assert_eq!(head.effect, Some(Effect::Widens));
    let proposal = head.proposal.as_ref().expect("a proposal");
    assert!(proposal.yaml.contains("method: HEAD"), "{}", proposal.yaml);
    // The proposal is a valid scenario entry: append it to the suite and run again.
    std::fs::write(
        sc.path().join("s.yaml"),
        format!("{ONE_SCENARIO}{}", proposal.yaml),
    )
    .expect("write");
    let after = run(&opts).expect("run with the proposal");
    let again = after
        .mutants
        .iter()
        .find(|m| m.rule_path == head.rule_path && m.after == head.after)
        .expect("the same mutant");
    assert_eq!(again.status, Status::Killed, "{again:?}");
    assert_eq!(again.killed_by, vec![proposal.scenario.id.clone()]);
    assert!(after.summary.killed > before.summary.killed);
}

#[test]
fn unknown_operator_is_an_input_error_naming_the_known_ones() {
    let err = parse_operators(Some("label-drop,label-dorp")).expect_err("error");
    let text = err.to_string();
    assert!(
        text.contains("label-dorp") && text.contains("policy-delete"),
        "{text}"
    );
}
