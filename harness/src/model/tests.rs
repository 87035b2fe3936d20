//! One test per rule of Cilium's semantics the model follows (cilium-semantics.md, section named in each).

use std::collections::BTreeMap;
use std::path::Path;

use probe_wire::Outcome;

use super::*;
use crate::model::http::HttpRequest;
use crate::model::kafka::{KafkaAction, requests_for};
use crate::policy::parse_policies;
use crate::stack::{NamedPort, OutsideHost, Stack, Workload};

fn workload(ns: &str, name: &str, labels: &[(&str, &str)], ports: &[(&str, u16)]) -> Workload {
    Workload {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        service_account: "default".into(),
        ports: ports
            .iter()
            .map(|(n, p)| NamedPort {
                name: Some(n.to_string()),
                port: *p,
                protocol: Protocol::Tcp,
            })
            .collect(),
        origin: "test".into(),
    }
}

fn stack() -> Stack {
    Stack {
        workloads: vec![
            workload(
                "frontend",
                "frontend",
                &[("role", "frontend")],
                &[("https", 443), ("http", 80)],
            ),
            workload("frontend", "rogue", &[], &[]),
            workload(
                "backend",
                "api",
                &[("role", "backend-api")],
                &[("http", 8080), ("admin", 9090)],
            ),
            workload("backend", "impostor", &[("role", "frontend")], &[]),
            workload(
                "database",
                "postgres",
                &[("app", "postgres")],
                &[("postgres", 5432)],
            ),
            workload("kafka", "kafka", &[("app", "kafka")], &[("kafka", 9092)]),
            workload("kube-system", "kube-dns", &[("k8s-app", "kube-dns")], &[]),
        ],
        namespaces: BTreeMap::new(),
        outside: vec![
            OutsideHost {
                name: "lb".into(),
                ip: "10.0.0.10".parse().unwrap(),
                description: String::new(),
            },
            OutsideHost {
                name: "outsider".into(),
                ip: "10.0.1.10".parse().unwrap(),
                description: String::new(),
            },
        ],
        network: None,
        manifest_files: Vec::new(),
    }
}

fn model_v(yaml: &str, v: CiliumVersion) -> Model {
    let policies = parse_policies(Path::new("t.yaml"), yaml).expect("test policy parses");
    Model::build(&policies, Model::identities_of(&stack()), v)
}

fn model(yaml: &str) -> Model {
    model_v(yaml, DEFAULT_VERSION)
}

fn flow(m: &Model, from: &str, to: &str, port: u16, l7: Option<L7Request>) -> Flow {
    Flow {
        from: m.identity(from).expect("from"),
        to: m.identity(to).expect("to"),
        port,
        protocol: Protocol::Tcp,
        l7,
    }
}

fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> Option<L7Request> {
    Some(L7Request::Http(HttpRequest {
        method: method.into(),
        path: path.into(),
        host: None,
        headers: headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }))
}

fn cnp(ns: &str, name: &str, selector: &str, body: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  endpointSelector: {selector}\n{body}---\n"
    )
}

const API_L4: &str = "  ingress:\n  - fromEndpoints: [{matchLabels: {role: frontend}}]\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n";
const API_L7: &str = "  ingress:\n  - fromEndpoints: [{matchLabels: {role: frontend}}]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http:\n        - {method: GET, path: \"/api/v1/.*\"}\n";

// §1: the namespace of a fromEndpoints selector defaults to the policy's: the real frontend (another
// namespace) is dropped, the impostor (same namespace, same label) is admitted.
#[test]
fn selector_without_namespace_blocks_real_frontend_and_admits_impostor() {
    let m = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        API_L4,
    ));
    let real = m.explain(&flow(&m, "frontend/frontend", "backend/api", 8080, None));
    assert_eq!(real.decision, Decision::Deny);
    assert!(
        real.explanation.contains("limited to namespace backend"),
        "{}",
        real.explanation
    );
    let imp = m.decide(&flow(&m, "backend/impostor", "backend/api", 8080, None));
    assert_eq!(imp.decision, Decision::Allow);
}

// §9: enforcement is per direction: an ingress-only policy leaves egress open.
#[test]
fn ingress_policy_does_not_restrict_egress() {
    let m = model(&cnp(
        "database",
        "p",
        "{matchLabels: {app: postgres}}",
        "  ingress:\n  - fromEndpoints: [{}]\n",
    ));
    let out = m.decide(&flow(&m, "database/postgres", "lb", 443, None));
    assert_eq!(out.decision, Decision::Allow);
    let inbound = m.decide(&flow(&m, "backend/api", "database/postgres", 5432, None));
    assert_eq!(inbound.decision, Decision::Deny);
    assert_eq!(inbound.drop_reason, Some(DropReason::PolicyDenied));
}

// §2: allow rules are a union: a port-only rule admits every peer and undoes a CIDR rule on that port.
#[test]
fn allow_rules_are_a_union() {
    let yaml = cnp(
        "frontend",
        "a",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n",
    ) + &cnp(
        "frontend",
        "b",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromCIDR: [10.0.0.0/24]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n",
    );
    let m = model(&yaml);
    let v = m.explain(&flow(&m, "outsider", "frontend/frontend", 443, None));
    assert_eq!(v.decision, Decision::Allow);
    assert!(v.explanation.contains("union"), "{}", v.explanation);
    assert_eq!(
        m.decide(&flow(&m, "outsider", "frontend/frontend", 80, None))
            .decision,
        Decision::Deny
    );
}

// §2: an L4-only rule and an L7 rule for the same peer and port: the L7 rules filter nothing, but the
// traffic is still proxied.
#[test]
fn l4_rule_for_the_same_peer_switches_off_l7_filtering() {
    let only_l7 = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        API_L7,
    ));
    let del = http("DELETE", "/api/v1/orders/1", &[]);
    let d = only_l7.decide(&flow(
        &only_l7,
        "backend/impostor",
        "backend/api",
        8080,
        del.clone(),
    ));
    assert_eq!(
        (d.decision, d.layer, d.outcome),
        (Decision::Deny, Some(Layer::L7), Outcome::ProxyDenied)
    );

    let both = model(
        &(cnp(
            "backend",
            "l4",
            "{matchLabels: {role: backend-api}}",
            API_L4,
        ) + &cnp(
            "backend",
            "l7",
            "{matchLabels: {role: backend-api}}",
            API_L7,
        )),
    );
    let v = both.explain(&flow(&both, "backend/impostor", "backend/api", 8080, del));
    assert_eq!(v.decision, Decision::Allow);
    assert!(v.proxied);
    assert!(
        v.explanation.contains("do not filter anything"),
        "{}",
        v.explanation
    );
}

// §3: CIDR rules match only peers outside the cluster, never pods.
#[test]
fn cidr_rules_match_only_outside_peers() {
    let m = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromCIDR: [0.0.0.0/0]\n",
    ));
    assert_eq!(
        m.decide(&flow(&m, "lb", "frontend/frontend", 443, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        m.decide(&flow(&m, "backend/api", "frontend/frontend", 443, None))
            .decision,
        Decision::Deny
    );
    let ex = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [10.0.1.0/24]}]\n",
    ));
    assert_eq!(
        ex.decide(&flow(&ex, "lb", "frontend/frontend", 443, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        ex.decide(&flow(&ex, "outsider", "frontend/frontend", 443, None))
            .decision,
        Decision::Deny
    );
}

// §3, §9: entities: `world` is every outside peer, `cluster` every in-cluster peer.
#[test]
fn entities_select_world_and_cluster() {
    let m = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromEntities: [world]\n",
    ));
    assert_eq!(
        m.decide(&flow(&m, "outsider", "frontend/frontend", 80, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        m.decide(&flow(&m, "backend/api", "frontend/frontend", 80, None))
            .decision,
        Decision::Deny
    );
    let c = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromEntities: [cluster]\n",
    ));
    assert_eq!(
        c.decide(&flow(&c, "backend/api", "frontend/frontend", 80, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        c.decide(&flow(&c, "outsider", "frontend/frontend", 80, None))
            .decision,
        Decision::Deny
    );
}

// §10: a deny rule wins over any allow; explicit denies are POLICY_DENY (181), default denies
// POLICY_DENIED (133).
#[test]
fn deny_wins_and_drop_reasons_differ() {
    let body = "  ingress:\n  - fromEntities: [all]\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {role: frontend}}]\n";
    let m = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        body,
    ));
    let d = m.decide(&flow(&m, "backend/impostor", "backend/api", 8080, None));
    assert_eq!(
        (d.decision, d.drop_reason),
        (Decision::Deny, Some(DropReason::PolicyDeny))
    );
    assert_eq!(DropReason::PolicyDeny.code(), 181);
    assert_eq!(
        m.decide(&flow(&m, "frontend/rogue", "backend/api", 8080, None))
            .decision,
        Decision::Allow
    );
    let dd = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        API_L4,
    ));
    let r = dd.decide(&flow(&dd, "frontend/rogue", "backend/api", 8080, None));
    assert_eq!(r.drop_reason, Some(DropReason::PolicyDenied));
    assert_eq!(DropReason::PolicyDenied.code(), 133);
}

// §4: `egress: []` denies nothing (and alone is rejected from 1.18); `egress: [{}]` denies all egress.
#[test]
fn empty_egress_list_denies_nothing_but_empty_rule_denies_all() {
    let empty = cnp(
        "database",
        "p",
        "{matchLabels: {app: postgres}}",
        "  egress: []\n",
    );
    let v17 = model_v(&empty, CiliumVersion::new(1, 17));
    assert_eq!(v17.policies[0].status, PolicyStatus::InForce);
    assert_eq!(
        v17.decide(&flow(&v17, "database/postgres", "lb", 443, None))
            .decision,
        Decision::Allow
    );
    let v19 = model(&empty);
    assert!(matches!(
        v19.policies[0].status,
        PolicyStatus::Rejected { .. }
    ));
    assert_eq!(
        v19.decide(&flow(&v19, "database/postgres", "lb", 443, None))
            .decision,
        Decision::Allow
    );

    let all = model(&cnp(
        "database",
        "p",
        "{matchLabels: {app: postgres}}",
        "  egress:\n  - {}\n",
    ));
    let d = all.decide(&flow(&all, "database/postgres", "lb", 443, None));
    assert_eq!(
        (d.decision, d.direction),
        (Decision::Deny, Some(Direction::Egress))
    );
}

// §6, §9: replies are not policy-checked: a database with egress default-deny still answers queries.
#[test]
fn replies_are_not_checked_against_egress() {
    let body = "  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]\n  egress:\n  - {}\n";
    let m = model(&cnp(
        "database",
        "p",
        "{matchLabels: {app: postgres}}",
        body,
    ));
    assert_eq!(
        m.decide(&flow(&m, "backend/api", "database/postgres", 5432, None))
            .decision,
        Decision::Allow
    );
}

// §0, §7: Kafka rules are gone in 1.20: the policy is rejected and says why.
#[test]
fn kafka_policy_is_rejected_on_1_20() {
    let body = "  ingress:\n  - toPorts:\n    - ports: [{port: \"9092\", protocol: TCP}]\n      rules:\n        kafka:\n        - {role: produce, topic: orders}\n";
    let m = model_v(
        &cnp("kafka", "k", "{matchLabels: {app: kafka}}", body),
        CiliumVersion::new(1, 20),
    );
    match &m.policies[0].status {
        PolicyStatus::Rejected { reason } => {
            assert!(reason.contains("removed in Cilium 1.20"), "{reason}")
        }
        s => panic!("expected rejection, got {s:?}"),
    }
    let ok = model(&cnp("kafka", "k", "{matchLabels: {app: kafka}}", body));
    assert_eq!(ok.policies[0].status, PolicyStatus::InForce);
}

// Found by the differential oracle (Cilium's `PortRule.sanitize`): HTTP and Kafka rules need `protocol:
// TCP`; with the protocol omitted (ANY) the agent refuses the policy and nothing of it is enforced.
#[test]
fn l7_rules_on_a_port_without_protocol_tcp_make_the_agent_refuse_the_policy() {
    let body = "  ingress:\n  - toPorts:\n    - ports: [{port: \"8080\"}]\n      rules:\n        http:\n        - {method: GET}\n";
    let m = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        body,
    ));
    match &m.policies[0].status {
        PolicyStatus::Rejected { reason } => assert!(reason.contains("TCP"), "{reason}"),
        s => panic!("expected rejection, got {s:?}"),
    }
}

// §5: `headers: ["Authorization: .*"]` is a literal: a real token is refused, with a hint.
#[test]
fn literal_header_value_refuses_real_tokens_with_a_hint() {
    let body = "  ingress:\n  - fromEndpoints: [{matchLabels: {role: frontend}}]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http:\n        - {method: GET, path: \"/.*\", headers: [\"Authorization: .*\"]}\n";
    let m = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        body,
    ));
    let v = m.explain(&flow(
        &m,
        "backend/impostor",
        "backend/api",
        8080,
        http("GET", "/x", &[("Authorization", "Bearer t")]),
    ));
    assert_eq!(
        (v.decision, v.expected_outcome),
        (Decision::Deny, Outcome::ProxyDenied)
    );
    assert!(v.explanation.contains("literal"), "{}", v.explanation);
}

// §7: Kafka: produce to an allowed topic passes; another topic or client id gets error 29.
#[test]
fn kafka_rules_decide_topic_and_client_id() {
    let body = "  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: backend}}]\n    toPorts:\n    - ports: [{port: \"9092\", protocol: TCP}]\n      rules:\n        kafka:\n        - {role: produce, topic: orders, clientID: payment-service}\n        - {role: consume, topic: events}\n";
    let m = model(&cnp("kafka", "k", "{matchLabels: {app: kafka}}", body));
    let k = |a, t: &str, c: &str| Some(L7Request::Kafka(requests_for(a, t, c)));
    let ok = m.decide(&flow(
        &m,
        "backend/api",
        "kafka/kafka",
        9092,
        k(KafkaAction::Produce, "orders", "payment-service"),
    ));
    assert_eq!((ok.decision, ok.proxied), (Decision::Allow, true));
    for (a, t, c) in [
        (KafkaAction::Produce, "orders", "rogue-service"),
        (KafkaAction::Produce, "events", "payment-service"),
        (KafkaAction::Consume, "orders", "payment-service"),
    ] {
        let d = m.decide(&flow(&m, "backend/api", "kafka/kafka", 9092, k(a, t, c)));
        assert_eq!(
            (d.decision, d.layer, d.outcome),
            (
                Decision::Deny,
                Some(Layer::L7),
                Outcome::KafkaTopicAuthorizationFailed
            ),
            "{a:?} {t} {c}"
        );
    }
    let consume = m.decide(&flow(
        &m,
        "backend/api",
        "kafka/kafka",
        9092,
        k(KafkaAction::Consume, "events", "payment-service"),
    ));
    assert_eq!(consume.decision, Decision::Allow);
}

// §7: `apiVersion` pins the request version; the agent produces with Produce v3 after Metadata v1.
#[test]
fn kafka_api_version_rules_match_the_versions_the_agent_sends() {
    let rules = |v: &str| {
        format!(
            "  ingress:\n  - fromEndpoints: [{{matchLabels: {{k8s:io.kubernetes.pod.namespace: backend}}}}]\n    toPorts:\n    - ports: [{{port: \"9092\", protocol: TCP}}]\n      rules:\n        kafka:\n        - {{apiKey: produce, apiVersion: \"{v}\", topic: orders}}\n        - {{apiKey: metadata, topic: orders}}\n"
        )
    };
    let produce = || {
        Some(L7Request::Kafka(requests_for(
            KafkaAction::Produce,
            "orders",
            "payment-service",
        )))
    };
    let m = model(&cnp(
        "kafka",
        "k",
        "{matchLabels: {app: kafka}}",
        &rules("3"),
    ));
    let v = m.decide(&flow(&m, "backend/api", "kafka/kafka", 9092, produce()));
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    let m = model(&cnp(
        "kafka",
        "k",
        "{matchLabels: {app: kafka}}",
        &rules("2"),
    ));
    let v = m.decide(&flow(&m, "backend/api", "kafka/kafka", 9092, produce()));
    assert_eq!(
        (v.decision, v.denied_kafka_key.as_deref()),
        (Decision::Deny, Some("produce"))
    );
}

// §2 (v1.18+): L7 rules in a default-allow direction only add visibility.
#[test]
fn default_allow_l7_rules_do_not_block_from_1_18() {
    let body = format!("  enableDefaultDeny: {{ingress: false}}\n{API_L7}");
    let yaml = cnp("backend", "p", "{matchLabels: {role: backend-api}}", &body);
    let del = http("DELETE", "/x", &[]);
    let m18 = model_v(&yaml, CiliumVersion::new(1, 18));
    assert_eq!(
        m18.decide(&flow(
            &m18,
            "backend/impostor",
            "backend/api",
            8080,
            del.clone()
        ))
        .decision,
        Decision::Allow
    );
    assert_eq!(
        m18.decide(&flow(&m18, "backend/api", "backend/api", 9090, None))
            .decision,
        Decision::Allow
    );
    let m17 = model_v(&yaml, CiliumVersion::new(1, 17));
    assert_eq!(
        m17.decide(&flow(&m17, "backend/impostor", "backend/api", 8080, del))
            .decision,
        Decision::Deny
    );
}

// §4: a rule with ports and no peer field admits every peer; an empty peer list admits none.
#[test]
fn missing_peer_field_means_all_but_empty_list_means_none() {
    let all = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - toPorts: [{ports: [{port: \"443\"}]}]\n",
    ));
    assert_eq!(
        all.decide(&flow(&all, "backend/api", "frontend/frontend", 443, None))
            .decision,
        Decision::Allow
    );
    let none = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - fromEndpoints: []\n    toPorts: [{ports: [{port: \"443\"}]}]\n",
    ));
    assert_eq!(
        none.decide(&flow(&none, "backend/api", "frontend/frontend", 443, None))
            .decision,
        Decision::Deny
    );
}

// Named ports resolve against the destination's container ports.
#[test]
fn named_ports_resolve_against_the_destination() {
    let m = model(&cnp(
        "frontend",
        "p",
        "{matchLabels: {role: frontend}}",
        "  ingress:\n  - toPorts: [{ports: [{port: https, protocol: TCP}]}]\n",
    ));
    assert_eq!(
        m.decide(&flow(&m, "lb", "frontend/frontend", 443, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        m.decide(&flow(&m, "lb", "frontend/frontend", 80, None))
            .decision,
        Decision::Deny
    );
}

// §6: an L3/L4 drop of UDP is no response; of TCP a connect timeout.
#[test]
fn l4_drops_predict_timeouts_not_resets() {
    let m = model(&cnp(
        "database",
        "p",
        "{matchLabels: {app: postgres}}",
        "  egress:\n  - {}\n",
    ));
    let mut f = flow(
        &m,
        "database/postgres",
        "kube-system/kube-dns",
        53,
        Some(L7Request::Dns("x.".into())),
    );
    f.protocol = Protocol::Udp;
    assert_eq!(m.decide(&f).outcome, Outcome::NoResponse);
    f.protocol = Protocol::Tcp;
    assert_eq!(m.decide(&f).outcome, Outcome::ConnectTimeout);
}

// §9: traffic from the local host to its pods is always allowed.
#[test]
fn host_to_pod_is_always_allowed() {
    let m = model(&cnp(
        "backend",
        "p",
        "{matchLabels: {role: backend-api}}",
        API_L4,
    ));
    assert_eq!(
        m.decide(&flow(&m, "host", "backend/api", 8080, None))
            .decision,
        Decision::Allow
    );
    assert_eq!(
        m.decide(&flow(&m, "remote-node", "backend/api", 8080, None))
            .decision,
        Decision::Deny
    );
}

// §3 (ICMP): `icmps` admits its ICMP types and nothing else (the model once ignored it and admitted every
// port); names resolve per family; type 0 is Cilium's port 0, every ICMP type of the family.
#[test]
fn icmp_rules_admit_only_their_types_and_type_zero_admits_every_type() {
    let body = |types: &str| {
        format!(
            "  ingress:\n  - fromEndpoints: [{{matchLabels: {{k8s:io.kubernetes.pod.namespace: frontend}}}}]\n    icmps:\n    - fields: {types}\n"
        )
    };
    let icmp = |m: &Model, proto: Protocol, t: u16| {
        let mut f = flow(m, "frontend/frontend", "backend/api", t, None);
        f.protocol = proto;
        m.decide(&f).decision
    };
    let m = model(&cnp(
        "backend",
        "icmp",
        "{}",
        &body("[{type: EchoRequest}, {type: EchoRequest, family: IPv6}]"),
    ));
    assert_eq!(icmp(&m, Protocol::Icmp, 8), Decision::Allow);
    assert_eq!(icmp(&m, Protocol::IcmpV6, 128), Decision::Allow);
    assert_eq!(icmp(&m, Protocol::Icmp, 13), Decision::Deny);
    assert_eq!(icmp(&m, Protocol::Icmp, 128), Decision::Deny);
    assert_eq!(icmp(&m, Protocol::Tcp, 8080), Decision::Deny);
    let zero = model(&cnp("backend", "icmp", "{}", &body("[{type: EchoReply}]")));
    assert_eq!(icmp(&zero, Protocol::Icmp, 13), Decision::Allow);
    assert_eq!(icmp(&zero, Protocol::IcmpV6, 128), Decision::Deny);
}

// Cilium refuses `icmps` beside `toPorts`, and a type name of the other family.
#[test]
fn icmp_rules_with_to_ports_or_a_name_of_the_other_family_are_refused() {
    for body in [
        "  ingress:\n  - icmps: [{fields: [{type: 8}]}]\n    toPorts: [{ports: [{port: \"80\"}]}]\n",
        "  ingress:\n  - icmps: [{fields: [{type: PacketTooBig}]}]\n",
    ] {
        let m = model(&cnp("backend", "icmp", "{}", body));
        assert!(
            matches!(&m.policies[0].status, PolicyStatus::Rejected { .. }),
            "{body}: {:?}",
            m.policies[0].status
        );
    }
}

// Named ports (1.20): an egress named port is the destination's own port of that name; up to 1.19 it
// resolves cluster-wide. The kafka pod alone names 9092 `kafka`.
#[test]
fn egress_named_ports_resolve_per_destination_from_1_20() {
    let body = "  egress:\n  - toPorts: [{ports: [{port: kafka, protocol: TCP}]}]\n";
    let yaml = cnp("database", "named", "{}", body);
    for (v, impostor) in [
        (CiliumVersion::new(1, 19), Decision::Allow),
        (CiliumVersion::new(1, 20), Decision::Deny),
    ] {
        let m = model_v(&yaml, v);
        let to_kafka = m.decide(&flow(&m, "database/postgres", "kafka/kafka", 9092, None));
        assert_eq!(to_kafka.decision, Decision::Allow, "{v}");
        let other = m.decide(&flow(&m, "database/postgres", "backend/api", 9092, None));
        assert_eq!(
            other.decision, impostor,
            "{v}: a destination without the name"
        );
    }
}

// From 1.20 the host's requests pass the proxy even when a rule names the host with L7 rules.
#[test]
fn a_rule_naming_the_host_filters_its_requests_only_up_to_1_19() {
    let body = "  ingress:\n  - fromEntities: [host]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http: [{method: GET}]\n";
    let yaml = cnp("backend", "host-l7", "{}", body);
    for (v, expected) in [
        (CiliumVersion::new(1, 19), Decision::Deny),
        (CiliumVersion::new(1, 20), Decision::Allow),
    ] {
        let m = model_v(&yaml, v);
        let d = m.decide(&flow(
            &m,
            "host",
            "backend/api",
            8080,
            http("DELETE", "/x", &[]),
        ));
        assert_eq!(d.decision, expected, "{v}");
    }
}
