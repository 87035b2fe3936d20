//! Regression cases for the model bugs the differential oracle found (minimal policy and flow, as the
//! shrinker printed them). Each test checks the model alone; the last test checks that Cilium's own engine
//! (the oracle, built with Go) gives the same verdicts for every case.

use std::path::{Path, PathBuf};

use harness::model::{
    CiliumVersion, Decision, Direction, DropReason, Flow, Layer, Model, PolicyStatus, Verdict,
};
use harness::oracle::{self, Oracle};
use harness::policy::{self, Protocol};
use harness::scenario::{HttpSpec, KafkaRequestSpec, Request};
use harness::stack::Stack;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Case {
    name: &'static str,
    policy: &'static str,
    from: &'static str,
    to: &'static str,
    port: u16,
    request: Option<Request>,
}

fn stack() -> Stack {
    Stack::load(&root().join("fixtures/stack.yaml")).expect("stack")
}

fn model_of(stack: &Stack, yaml: &str) -> Model {
    let policies = policy::parse_policies(Path::new("regression.yaml"), yaml).expect("parses");
    let v: CiliumVersion = oracle::CILIUM_MINOR.parse().expect("version");
    Model::build(&policies, Model::identities_of(stack), v)
}

fn decide(stack: &Stack, c: &Case) -> (Model, Verdict) {
    let m = model_of(stack, c.policy);
    let from = m.identity(c.from).expect("from");
    let to = m.identity(c.to).expect("to");
    let v = m.explain(&Flow {
        from,
        to,
        port: c.port,
        protocol: Protocol::Tcp,
        l7: c.request.as_ref().and_then(Request::l7),
    });
    (m, v)
}

fn get() -> Option<Request> {
    Some(Request::Http(HttpSpec {
        method: "DELETE".into(),
        path: "/x".into(),
        headers: Default::default(),
        body: None,
        host: None,
    }))
}

const L7_WITHOUT_TCP: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-any, namespace: frontend}
spec:
  endpointSelector: {}
  egress:
  - toPorts:
    - ports: [{port: "8080"}]
      rules:
        http: [{method: GET}]
"#;

const TO_PORTS_WITHOUT_PORTS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-ports, namespace: frontend}
spec:
  endpointSelector: {}
  egress:
  - toPorts:
    - {}
"#;

const EGRESS_UNIQUE_NAMED_PORT: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns-tcp, namespace: frontend}
spec:
  endpointSelector: {}
  egress:
  - toPorts:
    - ports: [{port: dns-tcp}]
"#;

const EGRESS_AMBIGUOUS_NAMED_PORT: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http-by-name, namespace: frontend}
spec:
  endpointSelector: {}
  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: http, protocol: TCP}]
"#;

const EGRESS_DENY_NAMED_PORT_TO_WORLD: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-postgres, namespace: frontend}
spec:
  endpointSelector: {}
  egressDeny:
  - toPorts:
    - ports: [{port: postgres}]
"#;

const HOST_DENIED_EXPLICITLY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-host, namespace: backend}
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities: [host]
"#;

const HOST_THROUGH_L7_RULE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-any-peer, namespace: backend}
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET}]
"#;

const HTTP_AND_KAFKA_FOR_ONE_SELECTOR: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka-rules, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{role: produce, topic: orders}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http-rules, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        http: [{method: GET}]
"#;

const HTTP_AND_KAFKA_FOR_TWO_SELECTORS_OF_ONE_PEER: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka-rules, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{role: produce, topic: orders}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http-rules, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: backend-api, k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        http: [{method: GET}]
"#;

const KAFKA_TOPIC_RULES: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka-topics, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka:
        - {topic: orders}
        - {topic: events, clientID: a}
"#;

fn kafka_requests(key: i16, version: i16, client: &str, topics: &[&str]) -> Option<Request> {
    Some(Request::KafkaRequests(vec![KafkaRequestSpec {
        api_key: key,
        api_version: version,
        client_id: client.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
    }]))
}

fn kafka_case(name: &'static str, request: Option<Request>) -> Case {
    Case {
        name,
        policy: KAFKA_TOPIC_RULES,
        from: "backend/api",
        to: "kafka/kafka",
        port: 9092,
        request,
    }
}

const HOST_NAMED_WITH_L7_RULE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-for-host, namespace: backend}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [host]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{path: "/api/v1/.*"}]
"#;

const CLUSTER_WITH_L7_RULE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-for-cluster, namespace: backend}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [cluster]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{path: "/api/v1/.*"}]
"#;

const ALL_AND_HOST_WITH_L7_RULE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-for-all-and-host, namespace: backend}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [all, host]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{path: "/api/v1/.*"}]
"#;

fn cases() -> Vec<Case> {
    vec![
        // Found with `kafkaRequests` queries: keys that carry topics by Cilium's list but whose topics its
        // parser does not read are refused by every rule with a topic (the model allowed them).
        kafka_case(
            "kafka-leaderandisr-without-topics",
            kafka_requests(4, 0, "a", &[]),
        ),
        kafka_case(
            "kafka-createtopics-naming-an-allowed-topic",
            kafka_requests(19, 0, "a", &["orders"]),
        ),
        kafka_case("kafka-describelogdirs", kafka_requests(35, 0, "a", &[])),
        // Checked, not bugs: every topic must be allowed, by any rule; no topic is never allowed by a
        // rule with a topic; a key without topics passes any rule whose key, version and client match.
        kafka_case(
            "kafka-produce-two-topics-two-rules",
            kafka_requests(0, 2, "a", &["orders", "events"]),
        ),
        kafka_case(
            "kafka-produce-two-topics-one-rule",
            kafka_requests(0, 2, "b", &["orders", "events"]),
        ),
        kafka_case(
            "kafka-produce-without-topics",
            kafka_requests(0, 2, "a", &[]),
        ),
        kafka_case("kafka-findcoordinator", kafka_requests(10, 0, "b", &[])),
        // A v0 request has no client id for Cilium's parser: the `clientID: a` rule does not match it.
        kafka_case("kafka-v0-client-id", kafka_requests(8, 0, "a", &["events"])),
        Case {
            name: "l7-without-tcp",
            policy: L7_WITHOUT_TCP,
            from: "frontend/frontend",
            to: "backend/api",
            port: 9090,
            request: None,
        },
        Case {
            name: "to-ports-without-ports",
            policy: TO_PORTS_WITHOUT_PORTS,
            from: "frontend/frontend",
            to: "backend/api",
            port: 8080,
            request: None,
        },
        Case {
            name: "egress-unique-named-port",
            policy: EGRESS_UNIQUE_NAMED_PORT,
            from: "frontend/frontend",
            to: "backend/api",
            port: 53,
            request: None,
        },
        Case {
            name: "egress-ambiguous-named-port",
            policy: EGRESS_AMBIGUOUS_NAMED_PORT,
            from: "frontend/frontend",
            to: "backend/api",
            port: 8080,
            request: None,
        },
        Case {
            name: "egress-deny-named-port-to-world",
            policy: EGRESS_DENY_NAMED_PORT_TO_WORLD,
            from: "frontend/frontend",
            to: "lb",
            port: 5432,
            request: None,
        },
        Case {
            name: "host-denied-explicitly",
            policy: HOST_DENIED_EXPLICITLY,
            from: "host",
            to: "backend/api",
            port: 8080,
            request: None,
        },
        Case {
            name: "http-and-kafka-for-one-selector",
            policy: HTTP_AND_KAFKA_FOR_ONE_SELECTOR,
            // Another peer and the endpoint's own egress: the whole endpoint's policy fails.
            from: "kafka/kafka",
            to: "backend/api",
            port: 8080,
            request: None,
        },
        Case {
            name: "http-and-kafka-for-two-selectors-of-one-peer",
            policy: HTTP_AND_KAFKA_FOR_TWO_SELECTORS_OF_ONE_PEER,
            from: "backend/api",
            to: "kafka/kafka",
            port: 9092,
            request: get(),
        },
        Case {
            name: "host-named-with-l7-rule",
            policy: HOST_NAMED_WITH_L7_RULE,
            from: "host",
            to: "backend/api",
            port: 8080,
            request: get(),
        },
        Case {
            name: "cluster-with-l7-rule",
            policy: CLUSTER_WITH_L7_RULE,
            from: "host",
            to: "backend/api",
            port: 8080,
            request: get(),
        },
        Case {
            name: "all-and-host-with-l7-rule",
            policy: ALL_AND_HOST_WITH_L7_RULE,
            from: "host",
            to: "backend/api",
            port: 8080,
            request: get(),
        },
        Case {
            name: "host-through-l7-rule",
            policy: HOST_THROUGH_L7_RULE,
            from: "host",
            to: "backend/api",
            port: 8080,
            request: get(),
        },
    ]
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).expect("case")
}

#[test]
fn http_rules_on_a_port_without_protocol_tcp_are_refused_by_the_agent() {
    let (m, v) = decide(&stack(), &case("l7-without-tcp"));
    assert!(
        matches!(&m.policies[0].status, PolicyStatus::Rejected { reason } if reason.contains("TCP")),
        "{:?}",
        m.policies[0].status
    );
    // Not in force: nothing restricts the frontend's egress.
    assert_eq!(v.decision, Decision::Allow, "{}", v.explanation);
}

#[test]
fn a_to_ports_entry_without_ports_admits_no_port() {
    let (_, v) = decide(&stack(), &case("to-ports-without-ports"));
    assert_eq!(v.decision, Decision::Deny, "{}", v.explanation);
    assert_eq!(v.direction, Some(Direction::Egress));
    assert_eq!(v.drop_reason, Some(DropReason::PolicyDenied));
}

#[test]
fn an_egress_named_port_resolves_cluster_wide_not_on_the_destination() {
    // kube-dns alone names 53/TCP `dns-tcp`: the rule admits port 53 to any destination.
    let (_, v) = decide(&stack(), &case("egress-unique-named-port"));
    assert_eq!(v.decision, Decision::Allow, "{}", v.explanation);
}

#[test]
fn an_egress_named_port_that_pods_number_differently_matches_nothing() {
    // `http` is 80 on the frontend and 8080 on the API: Cilium cannot resolve it for egress.
    let (_, v) = decide(&stack(), &case("egress-ambiguous-named-port"));
    assert_eq!(v.decision, Decision::Deny, "{}", v.explanation);
    assert_eq!(v.direction, Some(Direction::Egress));
}

#[test]
fn an_egress_deny_on_a_named_port_applies_to_outside_hosts() {
    let (_, v) = decide(&stack(), &case("egress-deny-named-port-to-world"));
    assert_eq!(v.decision, Decision::Deny, "{}", v.explanation);
    assert_eq!(v.drop_reason, Some(DropReason::PolicyDeny));
}

#[test]
fn an_explicit_deny_of_the_host_overrides_allow_localhost() {
    let (_, v) = decide(&stack(), &case("host-denied-explicitly"));
    assert_eq!(v.decision, Decision::Deny, "{}", v.explanation);
    assert_eq!(v.layer, Some(Layer::L4));
    assert_eq!(v.direction, Some(Direction::Ingress));
    assert_eq!(v.drop_reason, Some(DropReason::PolicyDeny));
}

#[test]
fn host_traffic_to_a_port_with_l7_rules_is_proxied_and_every_request_allowed() {
    let (_, v) = decide(&stack(), &case("host-through-l7-rule"));
    assert_eq!(v.decision, Decision::Allow, "{}", v.explanation);
    assert!(v.proxied, "{}", v.explanation);
}

#[test]
fn http_and_kafka_rules_for_one_selector_and_port_leave_the_endpoint_without_a_policy() {
    let (m, v) = decide(&stack(), &case("http-and-kafka-for-one-selector"));
    let e = v.endpoint_policy_error.as_deref().unwrap_or_default();
    assert!(
        e.contains("kafka/kafka") && e.contains("conflicting L7 parsers"),
        "{v:?}"
    );
    // Flows between other endpoints are not affected.
    let other = m.explain(&Flow {
        from: m.identity("frontend/frontend").expect("frontend"),
        to: m.identity("backend/api").expect("api"),
        port: 8080,
        protocol: Protocol::Tcp,
        l7: None,
    });
    assert_eq!(other.endpoint_policy_error, None);
}

#[test]
fn http_and_kafka_rules_for_two_selectors_of_one_peer_do_not_conflict() {
    let (_, v) = decide(
        &stack(),
        &case("http-and-kafka-for-two-selectors-of-one-peer"),
    );
    assert_eq!(v.endpoint_policy_error, None, "{v:?}");
    // Decided as usual: DELETE matches no HTTP rule.
    assert_eq!(
        (v.decision, v.layer),
        (Decision::Deny, Some(Layer::L7)),
        "{}",
        v.explanation
    );
}

#[test]
fn kafka_requests_whose_topics_ciliums_parser_does_not_read_are_refused_by_topic_rules() {
    for name in [
        "kafka-leaderandisr-without-topics",
        "kafka-createtopics-naming-an-allowed-topic",
        "kafka-describelogdirs",
    ] {
        let (_, v) = decide(&stack(), &case(name));
        assert_eq!(
            (v.decision, v.layer, v.expected_outcome),
            (
                Decision::Deny,
                Some(Layer::L7),
                probe_wire::Outcome::KafkaNoResponse
            ),
            "{name}: {}",
            v.explanation
        );
    }
}

#[test]
fn every_topic_of_a_kafka_request_must_be_allowed_and_none_is_not_enough() {
    let decision = |name| decide(&stack(), &case(name)).1.decision;
    assert_eq!(
        decision("kafka-produce-two-topics-two-rules"),
        Decision::Allow
    );
    assert_eq!(
        decision("kafka-produce-two-topics-one-rule"),
        Decision::Deny
    );
    assert_eq!(decision("kafka-produce-without-topics"), Decision::Deny);
    assert_eq!(decision("kafka-findcoordinator"), Decision::Allow);
    assert_eq!(decision("kafka-v0-client-id"), Decision::Deny);
}

#[test]
fn host_traffic_is_filtered_at_l7_by_a_rule_that_names_the_host_entity() {
    // `cluster` expands into selectors that include the host's own.
    for name in ["host-named-with-l7-rule", "cluster-with-l7-rule"] {
        let (_, v) = decide(&stack(), &case(name));
        assert_eq!(
            (v.decision, v.layer),
            (Decision::Deny, Some(Layer::L7)),
            "{name}: {}",
            v.explanation
        );
    }
}

#[test]
fn a_peer_list_with_the_wildcard_is_the_wildcard_alone_and_lets_the_host_through_at_l7() {
    let (_, v) = decide(&stack(), &case("all-and-host-with-l7-rule"));
    assert_eq!(v.decision, Decision::Allow, "{}", v.explanation);
    assert!(v.proxied);
}

#[test]
fn every_regression_case_gets_the_same_verdict_from_ciliums_engine() {
    let o = Oracle::build(&root(), &oracle::RELEASES[0]).unwrap_or_else(|e| panic!("{e}"));
    let stack = stack();
    let dir = tempfile::tempdir().expect("tempdir");
    let idpath = dir.path().join("identities.json");
    std::fs::write(
        &idpath,
        serde_json::to_string(&oracle::dump_identities(&Model::identities_of(&stack)))
            .expect("json"),
    )
    .expect("write");
    let mut bad = Vec::new();
    for c in cases() {
        let (m, v) = decide(&stack, &c);
        let pfile = dir.path().join(format!("{}.yaml", c.name));
        std::fs::write(&pfile, c.policy).expect("write");
        let mut q = serde_json::json!({"id": c.name, "from": c.from, "to": c.to, "port": c.port});
        if let Some(r) = &c.request {
            q["request"] = serde_json::to_value(r).expect("request");
        }
        let qfile = dir.path().join(format!("{}-queries.yaml", c.name));
        std::fs::write(&qfile, serde_json::json!({ "queries": [q] }).to_string()).expect("write");
        let a = o
            .eval(&[pfile], &qfile, &idpath)
            .unwrap_or_else(|e| panic!("{e}"));
        let rejected = a.policies.iter().any(|p| p.status == "rejected");
        let model_rejected = m
            .policies
            .iter()
            .any(|p| matches!(p.status, PolicyStatus::Rejected { .. }));
        if rejected != model_rejected {
            bad.push(format!(
                "{}: rejected: model {model_rejected}, Cilium {rejected}",
                c.name
            ));
        }
        let diffs = match a.results.first() {
            Some(r) => match (&r.verdict, &r.error) {
                (Some(o), _) => oracle::compare(&v, o),
                (None, e) => oracle::compare_unanswered(&v, e.as_deref().unwrap_or_default()),
            },
            None => vec![format!("no answer from Cilium: {:?}", a.results)],
        };
        bad.extend(diffs.into_iter().map(|d| format!("{}: {d}", c.name)));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
