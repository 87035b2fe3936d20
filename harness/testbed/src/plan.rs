//! The external commands of `up`, `down` and `upgrade_cilium`, and the parsing of their output, as pure
//! functions. `up.rs`/`down.rs` run them through a [`crate::command::CommandRunner`].

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::command::{CommandOutput, CommandSpec, Tools};
use crate::config::NetworkConfig;
use crate::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// The Docker label that ties containers to one test bed.
pub const LABEL_CLUSTER: &str = "harness/cluster";
/// The Docker label naming an outside host.
pub const LABEL_OUTSIDE_HOST: &str = "harness/outside-host";
/// The Helm release name of Cilium.
pub const CILIUM_RELEASE: &str = "cilium";
/// The Helm chart repository of Cilium (chart `cilium`).
pub const CILIUM_CHART_REPO: &str = "https://helm.cilium.io";
/// The API server port inside the kind control-plane container.
pub const API_SERVER_PORT: u16 = 6443;

pub fn docker_info(tools: &Tools) -> CommandSpec {
    CommandSpec::new(tools.docker()).args(["info", "--format", "{{.ServerVersion}}"])
}

pub fn network_inspect(tools: &Tools, name: &str) -> CommandSpec {
    CommandSpec::new(tools.docker()).args(["network", "inspect", name])
}

/// `docker network create` with the fixture's subnet, dynamic range and gateway, labelled as the harness's.
pub fn network_create(tools: &Tools, net: &NetworkConfig) -> CommandSpec {
    CommandSpec::new(tools.docker()).args([
        "network".to_string(),
        "create".into(),
        "--driver".into(),
        "bridge".into(),
        "--subnet".into(),
        net.subnet.to_string(),
        "--ip-range".into(),
        net.ip_range.to_string(),
        "--gateway".into(),
        net.gateway.to_string(),
        "--label".into(),
        format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"),
        net.name.clone(),
    ])
}

pub fn network_remove(tools: &Tools, name: &str) -> CommandSpec {
    CommandSpec::new(tools.docker()).args(["network", "rm", name])
}

/// What to do about the Docker network, from `docker network inspect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkAction {
    Create,
    /// It exists with the expected subnet; `ours` when it carries the harness's label.
    Reuse {
        ours: bool,
    },
}

/// Decides from `docker network inspect <name>`: absent -> create; same subnet -> reuse; else an error.
pub fn network_decision(
    inspect: &CommandOutput,
    net: &NetworkConfig,
) -> Result<NetworkAction, String> {
    if !inspect.success() {
        let err = inspect.stderr_text().to_lowercase();
        if err.contains("not found") || err.contains("no such network") {
            return Ok(NetworkAction::Create);
        }
        return Err(format!(
            "docker network inspect {} failed: {}",
            net.name,
            inspect.stderr_text().trim()
        ));
    }
    let parsed: Value = serde_json::from_slice(&inspect.stdout).map_err(|e| {
        format!(
            "docker network inspect {}: unreadable output: {e}",
            net.name
        )
    })?;
    let first = parsed
        .get(0)
        .ok_or_else(|| format!("docker network inspect {}: empty output", net.name))?;
    let subnets: Vec<String> = first
        .pointer("/IPAM/Config")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("Subnet").and_then(Value::as_str).map(str::to_string))
        .collect();
    if !subnets
        .iter()
        .any(|s| s.parse::<Ipv4Net>().ok() == Some(net.subnet))
    {
        return Err(format!(
            "Docker network {} exists with subnet {} but the outside hosts need {}: remove it (`docker network rm {}`) or change fixtures/stack.yaml",
            net.name,
            if subnets.is_empty() {
                "(none)".to_string()
            } else {
                subnets.join(", ")
            },
            net.subnet,
            net.name
        ));
    }
    let ours = first
        .pointer(&format!("/Labels/{}", LABEL_MANAGED_BY.replace('/', "~1")))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE);
    Ok(NetworkAction::Reuse { ours })
}

pub fn kind_get_clusters(tools: &Tools) -> CommandSpec {
    CommandSpec::new(tools.kind()).args(["get", "clusters"])
}

/// The cluster names listed by `kind get clusters`.
pub fn parse_kind_clusters(out: &CommandOutput) -> Vec<String> {
    out.stdout_text()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `kind create cluster` on the harness's Docker network (kind reads `KIND_EXPERIMENTAL_DOCKER_NETWORK`).
pub fn kind_create(tools: &Tools, config: &Path, name: &str, network: &str) -> CommandSpec {
    CommandSpec::new(tools.kind())
        .args(["create", "cluster", "--config"])
        .arg(config.to_string_lossy())
        .args(["--name", name])
        .env("KIND_EXPERIMENTAL_DOCKER_NETWORK", network)
}

pub fn kind_delete(tools: &Tools, name: &str) -> CommandSpec {
    CommandSpec::new(tools.kind()).args(["delete", "cluster", "--name", name])
}

/// The kube context kind writes for a cluster.
pub fn kind_context(name: &str) -> String {
    format!("kind-{name}")
}

/// The control-plane node's container (kind's naming).
pub fn control_plane_container(name: &str) -> String {
    format!("{name}-control-plane")
}

pub fn container_inspect(tools: &Tools, container: &str) -> CommandSpec {
    CommandSpec::new(tools.docker()).args(["inspect", container])
}

/// A container's IPv4 address on `network`, from `docker inspect <container>`.
pub fn container_ip(inspect: &CommandOutput, network: &str) -> Result<Ipv4Addr, String> {
    let parsed: Value = serde_json::from_slice(&inspect.stdout)
        .map_err(|e| format!("unreadable docker inspect output: {e}"))?;
    let ip = parsed
        .get(0)
        .and_then(|c| c.pointer("/NetworkSettings/Networks"))
        .and_then(|n| n.get(network))
        .and_then(|n| n.get("IPAddress"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the container has no address on Docker network {network}"))?;
    ip.parse()
        .map_err(|e| format!("address {ip} on {network}: {e}"))
}

/// Parameters of a Cilium Helm install or upgrade.
#[derive(Clone, Debug)]
pub struct CiliumChart<'a> {
    pub version: &'a str,
    /// `None`: chart `cilium` from [`CILIUM_CHART_REPO`]; `Some`: a chart reference or path given to Helm as is.
    pub chart: Option<&'a str>,
    pub values: &'a Path,
    pub context: &'a str,
    pub namespace: &'a str,
    pub api_server_host: Ipv4Addr,
}

/// `helm install` (or `helm upgrade` when `upgrade`) of Cilium with the project's values, the API server
/// address (kube-proxy replacement needs it) and no `--wait` (readiness is awaited by the test bed).
pub fn helm_cilium(tools: &Tools, chart: &CiliumChart<'_>, upgrade: bool) -> CommandSpec {
    let mut cmd = CommandSpec::new(tools.helm())
        .args([if upgrade { "upgrade" } else { "install" }, CILIUM_RELEASE]);
    cmd = match chart.chart {
        Some(reference) => cmd.arg(reference),
        None => cmd.args(["cilium", "--repo", CILIUM_CHART_REPO]),
    };
    cmd.args([
        "--version",
        chart.version,
        "--namespace",
        chart.namespace,
        "--kube-context",
        chart.context,
        "--values",
    ])
    .arg(chart.values.to_string_lossy())
    .args([
        "--set".to_string(),
        format!("k8sServiceHost={}", chart.api_server_host),
    ])
    .args([
        "--set".to_string(),
        format!("k8sServicePort={API_SERVER_PORT}"),
    ])
}

pub fn helm_list(tools: &Tools, context: &str, namespace: &str) -> CommandSpec {
    CommandSpec::new(tools.helm()).args([
        "list",
        "--namespace",
        namespace,
        "--kube-context",
        context,
        "--filter",
        &format!("^{CILIUM_RELEASE}$"),
        "--output",
        "json",
    ])
}

/// The installed chart version of the Cilium release, from `helm list -o json` (`None` if not installed).
pub fn parse_helm_release_version(out: &CommandOutput) -> Result<Option<String>, String> {
    let parsed: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("unreadable helm list output: {e}"))?;
    let release = parsed
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(CILIUM_RELEASE));
    Ok(release.and_then(|r| {
        r.get("chart")
            .and_then(Value::as_str)
            .and_then(|c| c.strip_prefix("cilium-"))
            .or_else(|| r.get("app_version").and_then(Value::as_str))
            .map(|v| v.trim_start_matches('v').to_string())
    }))
}

/// Builds the agent image for one platform only (the Docker engine's), so that the image has a single
/// manifest that `docker save` can export whole with either image store.
pub fn docker_build(
    tools: &Tools,
    root: &Path,
    dockerfile: &Path,
    image: &str,
    platform: &str,
) -> CommandSpec {
    CommandSpec::new(tools.docker())
        .args(["build", "--platform", platform, "-f"])
        .arg(dockerfile.to_string_lossy())
        .args(["-t", image, "."])
        .cwd(root)
}

/// Writes the image to an archive. With Docker's containerd image store, `kind load docker-image` can fail
/// with `content digest ... not found` (kind issue 3795); an archive of a single-platform image loads with
/// `kind load image-archive` on both image stores.
pub fn docker_save(tools: &Tools, image: &str, archive: &Path) -> CommandSpec {
    CommandSpec::new(tools.docker())
        .args(["save", "--output"])
        .arg(archive.to_string_lossy())
        .arg(image)
}

pub fn kind_load_archive(tools: &Tools, archive: &Path, cluster: &str) -> CommandSpec {
    CommandSpec::new(tools.kind())
        .args(["load", "image-archive"])
        .arg(archive.to_string_lossy())
        .args(["--name", cluster])
}

/// The container name of an outside host.
pub fn outside_container(cluster: &str, host: &str) -> String {
    format!("{cluster}-outside-{host}")
}

pub fn container_remove(tools: &Tools, container: &str) -> CommandSpec {
    CommandSpec::new(tools.docker()).args(["rm", "--force", container])
}

/// Starts an outside host: the agent image, idle, at its fixed address, allowed to change its routes.
pub fn outside_run(
    tools: &Tools,
    cluster: &str,
    network: &str,
    host: &str,
    ip: Ipv4Addr,
    image: &str,
) -> CommandSpec {
    CommandSpec::new(tools.docker()).args([
        "run".to_string(),
        "--detach".into(),
        "--name".into(),
        outside_container(cluster, host),
        "--hostname".into(),
        host.to_string(),
        "--network".into(),
        network.to_string(),
        "--ip".into(),
        ip.to_string(),
        "--cap-add".into(),
        "NET_ADMIN".into(),
        "--label".into(),
        format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"),
        "--label".into(),
        format!("{LABEL_CLUSTER}={cluster}"),
        "--label".into(),
        format!("{LABEL_OUTSIDE_HOST}={host}"),
        image.to_string(),
        "serve".into(),
        "idle".into(),
        "--health-port".into(),
        "8081".into(),
    ])
}

/// A route from the outside hosts to one node's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoute {
    pub node: String,
    pub pod_cidr: Ipv4Net,
    pub via: Ipv4Addr,
}

/// The routes to every node's pod CIDRs (`spec.podCIDRs`, IPv4) via the node's address on the outside
/// network.
pub fn node_routes(nodes: &[Node], network: &Ipv4Net) -> Result<Vec<NodeRoute>, String> {
    let mut routes = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let via = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse::<Ipv4Addr>().ok())
            .find(|ip| network.contains(ip))
            .ok_or_else(|| format!("node {name} has no InternalIP in {network}"))?;
        let spec = node.spec.as_ref();
        let cidrs: Vec<String> = match spec.and_then(|s| s.pod_cidrs.clone()) {
            Some(list) if !list.is_empty() => list,
            _ => spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect(),
        };
        let v4: Vec<Ipv4Net> = cidrs
            .iter()
            .filter_map(|c| c.parse::<Ipv4Net>().ok())
            .collect();
        if v4.is_empty() {
            return Err(format!(
                "node {name} has no IPv4 pod CIDR in spec.podCIDRs (is Cilium's ipam.mode kubernetes?)"
            ));
        }
        routes.extend(v4.into_iter().map(|pod_cidr| NodeRoute {
            node: name.clone(),
            pod_cidr,
            via,
        }));
    }
    Ok(routes)
}

/// `ip route replace` (idempotent) inside an outside host, as root.
pub fn outside_route(tools: &Tools, container: &str, route: &NodeRoute) -> CommandSpec {
    CommandSpec::new(tools.docker()).args([
        "exec".to_string(),
        "--user".into(),
        "0".into(),
        container.to_string(),
        "ip".into(),
        "route".into(),
        "replace".into(),
        route.pod_cidr.to_string(),
        "via".into(),
        route.via.to_string(),
    ])
}

/// Containers labelled as this test bed's, by name.
pub fn containers_of(tools: &Tools, cluster: &str) -> CommandSpec {
    CommandSpec::new(tools.docker()).args([
        "ps".to_string(),
        "--all".into(),
        "--filter".into(),
        format!("label={LABEL_CLUSTER}={cluster}"),
        "--format".into(),
        "{{.Names}}".into(),
    ])
}

/// `docker exec` of a probe in an outside host.
pub fn outside_exec(tools: &Tools, container: &str, args: &[String]) -> CommandSpec {
    CommandSpec::new(tools.docker())
        .arg("exec")
        .arg(container)
        .args(args.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn net() -> NetworkConfig {
        NetworkConfig {
            name: "harness-kind".into(),
            subnet: "10.0.0.0/11".parse().unwrap(),
            ip_range: "10.31.0.0/16".parse().unwrap(),
            gateway: "10.31.255.254".parse().unwrap(),
        }
    }

    #[test]
    fn missing_network_is_created() {
        let out = CommandOutput::failed(
            1,
            "Error response from daemon: network harness-kind not found",
        );
        assert_eq!(network_decision(&out, &net()), Ok(NetworkAction::Create));
    }

    #[test]
    fn network_with_same_subnet_is_reused_and_recognised_as_ours() {
        let out = CommandOutput::ok(
            r#"[{"Name":"harness-kind","IPAM":{"Config":[{"Subnet":"10.0.0.0/11","IPRange":"10.31.0.0/16"}]},
                "Labels":{"app.kubernetes.io/managed-by":"cnp-harness"}}]"#,
        );
        assert_eq!(
            network_decision(&out, &net()),
            Ok(NetworkAction::Reuse { ours: true })
        );
    }

    #[test]
    fn network_with_other_subnet_is_a_clear_conflict() {
        let out = CommandOutput::ok(
            r#"[{"Name":"harness-kind","IPAM":{"Config":[{"Subnet":"172.18.0.0/16"}]},"Labels":{}}]"#,
        );
        let err = network_decision(&out, &net()).unwrap_err();
        assert!(
            err.contains("172.18.0.0/16")
                && err.contains("10.0.0.0/11")
                && err.contains("docker network rm"),
            "{err}"
        );
    }

    #[test]
    fn control_plane_ip_is_read_from_its_network() {
        let out = CommandOutput::ok(
            r#"[{"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"},"harness-kind":{"IPAddress":"10.31.0.3"}}}}]"#,
        );
        assert_eq!(
            container_ip(&out, "harness-kind"),
            Ok("10.31.0.3".parse().unwrap())
        );
        assert!(container_ip(&out, "other").is_err());
    }

    #[test]
    fn helm_release_version_comes_from_the_chart_name() {
        let out = CommandOutput::ok(
            r#"[{"name":"cilium","chart":"cilium-1.19.8","app_version":"1.19.8","status":"deployed"}]"#,
        );
        assert_eq!(parse_helm_release_version(&out), Ok(Some("1.19.8".into())));
        assert_eq!(
            parse_helm_release_version(&CommandOutput::ok("[]")),
            Ok(None)
        );
    }

    fn node(name: &str, ips: &[&str], cidrs: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidrs: Some(cidrs.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(
                    ips.iter()
                        .map(|ip| NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn node_routes_use_each_nodes_address_on_the_outside_network() {
        let nodes = [
            node(
                "cp",
                &["fc00::3", "10.31.0.3"],
                &["10.244.0.0/24", "fd00:10:244::/64"],
            ),
            node("w1", &["10.31.0.2"], &["10.244.1.0/24"]),
        ];
        let routes = node_routes(&nodes, &net().subnet).unwrap();
        assert_eq!(
            routes,
            vec![
                NodeRoute {
                    node: "cp".into(),
                    pod_cidr: "10.244.0.0/24".parse().unwrap(),
                    via: "10.31.0.3".parse().unwrap()
                },
                NodeRoute {
                    node: "w1".into(),
                    pod_cidr: "10.244.1.0/24".parse().unwrap(),
                    via: "10.31.0.2".parse().unwrap()
                },
            ]
        );
    }

    #[test]
    fn node_without_pod_cidr_or_address_on_the_network_is_an_error() {
        let err = node_routes(&[node("w1", &["10.31.0.2"], &[])], &net().subnet).unwrap_err();
        assert!(err.contains("w1") && err.contains("podCIDRs"), "{err}");
        let err = node_routes(
            &[node("w2", &["172.18.0.2"], &["10.244.2.0/24"])],
            &net().subnet,
        )
        .unwrap_err();
        assert!(err.contains("w2") && err.contains("10.0.0.0/11"), "{err}");
    }
}
