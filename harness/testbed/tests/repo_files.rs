//! The repository's own files parse into the typed forms the test bed relies on (no cluster needed).

use std::path::PathBuf;

use testbed::config::{CiliumValues, KindClusterConfig, Layout, StackFixture, relay_address};
use testbed::manifests::{self, LABEL_WORKLOAD, StackObject};
use testbed::{AGENT_IMAGE, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn stack_fixture_declares_the_outside_hosts_on_a_consistent_network() {
    let fixture = StackFixture::load(&Layout::new(root()).stack_fixture()).unwrap();
    let names: Vec<&str> = fixture
        .outside
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["lb", "outsider", "partner", "partner-neighbour"]);
    assert_eq!(fixture.outside.network.name, "harness-kind");
    assert!(
        fixture.manifests.join("00-namespaces.yaml").is_file(),
        "{}",
        fixture.manifests.display()
    );
}

#[test]
fn workload_manifests_parse_into_k8s_openapi_types() {
    let fixture = StackFixture::load(&Layout::new(root()).stack_fixture()).unwrap();
    let all = manifests::load_dir(&fixture.manifests).unwrap();
    let mut deployments = 0;
    for m in &all {
        let typed = manifests::typed(m).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !matches!(typed, StackObject::Other { .. }),
            "{} is a kind the test bed does not inspect",
            m.describe()
        );
        assert_eq!(
            m.value
                .pointer(&format!(
                    "/metadata/labels/{}",
                    LABEL_MANAGED_BY.replace('/', "~1")
                ))
                .and_then(|v| v.as_str()),
            Some(MANAGED_BY_VALUE),
            "{} lacks the managed-by label that `down` relies on",
            m.describe()
        );
        if let StackObject::Deployment(d) = typed {
            deployments += 1;
            let name = d.metadata.name.clone().unwrap();
            let selector = d.spec.selector.match_labels.clone().unwrap_or_default();
            assert_eq!(
                selector.get(LABEL_WORKLOAD),
                Some(&name),
                "{}: pods must be selectable by {LABEL_WORKLOAD}={name}",
                m.describe()
            );
            let template = d
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|md| md.labels.clone())
                .unwrap_or_default();
            assert_eq!(
                template.get(LABEL_WORKLOAD),
                Some(&name),
                "{}",
                m.describe()
            );
        }
    }
    assert!(deployments >= 8, "only {deployments} deployments");
    assert_eq!(
        manifests::namespaces(&all),
        [
            "frontend",
            "backend",
            "database",
            "kafka",
            "analytics",
            "attacker"
        ]
    );
}

#[test]
fn probe_sources_run_the_agent_image_except_the_kafka_broker() {
    let fixture = StackFixture::load(&Layout::new(root()).stack_fixture()).unwrap();
    let all = manifests::load_dir(&fixture.manifests).unwrap();
    let without_agent: Vec<String> = manifests::deployments(&all)
        .unwrap()
        .iter()
        .filter(|d| {
            let spec = d.spec.template.spec.as_ref().unwrap();
            !spec
                .containers
                .iter()
                .any(|c| c.image.as_deref() == Some(AGENT_IMAGE))
        })
        .map(|d| {
            format!(
                "{}/{}",
                d.metadata.namespace.as_deref().unwrap(),
                d.metadata.name.as_deref().unwrap()
            )
        })
        .collect();
    assert_eq!(
        without_agent,
        ["kafka/kafka"],
        "workloads where a probe cannot be run"
    );
}

#[test]
fn kind_config_parses_and_fits_the_outside_network() {
    let layout = Layout::new(root());
    let fixture = StackFixture::load(&layout.stack_fixture()).unwrap();
    let kind = KindClusterConfig::load(&layout.kind_config()).unwrap();
    assert_eq!(
        kind.problems(&fixture.outside.network),
        Vec::<String>::new()
    );
    assert_eq!(kind.nodes.iter().filter(|n| n.role == "worker").count(), 2);
}

#[test]
fn cilium_values_parse_and_expose_relay_on_the_default_address() {
    let layout = Layout::new(root());
    let kind = KindClusterConfig::load(&layout.kind_config()).unwrap();
    let values = CiliumValues::load(&layout.cilium_values()).unwrap();
    assert_eq!(values.problems(), Vec::<String>::new());
    assert_eq!(values.relay_node_port(), Some(31245));
    assert_eq!(relay_address(Some(&kind), Some(&values)), "127.0.0.1:4245");
    assert!(
        values.k8s_service_host.is_none(),
        "k8sServiceHost is set by `harness up`, not the values file"
    );
}

#[test]
fn all_configs_load_together_for_up() {
    testbed::up::load_configs(&Layout::new(root())).unwrap_or_else(|e| panic!("{e}"));
}
