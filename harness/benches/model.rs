//! Decisions per second of the policy model on a synthetic production-sized posture.
//!
//! 1,000 CiliumNetworkPolicies over 2,000 workloads in 50 namespaces: each policy selects the workloads of
//! one app and admits two peer selectors (one in another namespace) on a few ports, a third of them with
//! HTTP rules, a tenth with a CIDR peer and a twentieth with an ingressDeny rule. Then 1,000,000 flows between
//! random workloads and ports are decided on one thread.
//!
//! Run: `cargo bench -p harness --bench model` (a release build; prints build time and decisions/second).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use harness::model::http::HttpRequest;
use harness::model::{CiliumVersion, Flow, L7Request, Model};
use harness::policy::{Protocol, parse_policies};
use harness::stack::{NamedPort, Stack, Workload};

const WORKLOADS: usize = 2_000;
const POLICIES: usize = 1_000;
const NAMESPACES: usize = 50;
const FLOWS: usize = 1_000_000;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn stack() -> Stack {
    let mut workloads = Vec::new();
    for i in 0..WORKLOADS {
        let ns = format!("ns{}", i % NAMESPACES);
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), format!("app{}", i / 2));
        labels.insert(
            "tier".to_string(),
            ["web", "api", "db", "cache"][i % 4].to_string(),
        );
        labels.insert("team".to_string(), format!("team{}", i % 17));
        workloads.push(Workload {
            namespace: ns,
            name: format!("w{i}"),
            labels,
            service_account: "default".into(),
            ports: vec![
                NamedPort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: Protocol::Tcp,
                },
                NamedPort {
                    name: Some("metrics".into()),
                    port: 9090,
                    protocol: Protocol::Tcp,
                },
            ],
            origin: "synthetic".into(),
        });
    }
    Stack {
        workloads,
        namespaces: BTreeMap::new(),
        outside: Vec::new(),
        network: None,
        manifest_files: Vec::new(),
    }
}

fn policies_yaml(rng: &mut Rng) -> String {
    let mut y = String::new();
    for p in 0..POLICIES {
        // Policy p selects app{p} (two workloads), living in namespace ns{(2p)%50}.
        let ns = (2 * p) % NAMESPACES;
        let other_ns = rng.below(NAMESPACES);
        let team = rng.below(17);
        let _ = write!(
            y,
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p{p}\n  namespace: ns{ns}\nspec:\n  endpointSelector:\n    matchLabels: {{app: app{p}}}\n  ingress:\n  - fromEndpoints:\n    - matchLabels: {{tier: web}}\n    - matchLabels: {{k8s:io.kubernetes.pod.namespace: ns{other_ns}, team: team{team}}}\n"
        );
        if p % 10 == 0 {
            let _ = writeln!(y, "    fromCIDR: [10.{}.0.0/16]", p % 200);
        }
        if p % 3 == 0 {
            y.push_str("    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http:\n        - {method: GET, path: \"/api/v1/.*\"}\n        - {method: POST, path: \"/api/v1/orders\", headers: [\"Authorization\"]}\n");
        } else {
            y.push_str("    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}, {port: \"9000\", endPort: 9100, protocol: TCP}]\n");
        }
        if p % 20 == 0 {
            y.push_str("  ingressDeny:\n  - fromEndpoints: [{matchLabels: {tier: cache}}]\n");
        }
        if p % 7 == 0 {
            y.push_str("  egress:\n  - toEndpoints: [{matchLabels: {tier: db}, matchExpressions: [{key: io.kubernetes.pod.namespace, operator: Exists}]}]\n    toPorts: [{ports: [{port: \"5432\"}]}]\n");
        }
        y.push_str("---\n");
    }
    y
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let stack = stack();
    let yaml = policies_yaml(&mut rng);
    let t = Instant::now();
    let policies =
        parse_policies(Path::new("synthetic.yaml"), &yaml).expect("synthetic policies parse");
    let parse = t.elapsed();
    let t = Instant::now();
    let model = Model::build(
        &policies,
        Model::identities_of(&stack),
        CiliumVersion::new(1, 19),
    );
    let build = t.elapsed();

    let get = Some(L7Request::Http(HttpRequest {
        method: "GET".into(),
        path: "/api/v1/orders".into(),
        host: None,
        headers: vec![],
    }));
    let del = Some(L7Request::Http(HttpRequest {
        method: "DELETE".into(),
        path: "/api/v1/orders/1".into(),
        host: None,
        headers: vec![],
    }));
    let flows: Vec<Flow> = (0..FLOWS)
        .map(|i| Flow {
            from: rng.below(WORKLOADS),
            to: rng.below(WORKLOADS),
            port: [8080, 9090, 9050, 5432][i % 4],
            protocol: Protocol::Tcp,
            l7: match i % 8 {
                0 => get.clone(),
                1 => del.clone(),
                _ => None,
            },
        })
        .collect();
    let t = Instant::now();
    let mut allowed = 0usize;
    for f in &flows {
        if black_box(model.decide(black_box(f))).decision == harness::model::Decision::Allow {
            allowed += 1;
        }
    }
    let decide = t.elapsed();
    let t = Instant::now();
    for f in flows.iter().take(10_000) {
        black_box(model.explain(black_box(f)));
    }
    let explain = t.elapsed();
    println!(
        "synthetic posture: {POLICIES} policies, {WORKLOADS} workloads, {NAMESPACES} namespaces"
    );
    println!(
        "parse: {:.1} ms, model build: {:.1} ms",
        parse.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3
    );
    println!(
        "decide: {FLOWS} flows in {:.3} s = {:.0} decisions/s on one thread ({allowed} allowed)",
        decide.as_secs_f64(),
        FLOWS as f64 / decide.as_secs_f64()
    );
    println!(
        "explain: {:.0} explained decisions/s",
        10_000.0 / explain.as_secs_f64()
    );
}
