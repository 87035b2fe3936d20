//! The files the test bed reads: the repository layout, `fixtures/stack.yaml` (outside hosts and their
//! Docker network), `kind/cluster.yaml` and `kind/cilium-values.yaml`, as typed structs.
//!
//! Only the fields the test bed relies on are typed; everything else in those files is ignored here
//! (kind and Helm read the files themselves).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Errors reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML of the expected shape: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

pub(crate) fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Where things are in the repository.
#[derive(Clone, Debug)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn kind_config(&self) -> PathBuf {
        self.root.join("kind/cluster.yaml")
    }
    pub fn cilium_values(&self) -> PathBuf {
        self.root.join("kind/cilium-values.yaml")
    }
    pub fn stack_fixture(&self) -> PathBuf {
        self.root.join("fixtures/stack.yaml")
    }
    pub fn dockerfile(&self) -> PathBuf {
        self.root.join("workloads/Dockerfile")
    }
    /// The default state file, `.harness/state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.root.join(".harness/state.json")
    }
}

/// `fixtures/stack.yaml`: where the manifests are and the hosts outside the cluster.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackFixture {
    /// Relative to the fixture file.
    pub manifests: PathBuf,
    pub outside: OutsideConfig,
}

impl StackFixture {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut fixture: StackFixture = read_yaml(path)?;
        if fixture.manifests.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            fixture.manifests = base.join(&fixture.manifests);
        }
        fixture
            .outside
            .check()
            .map_err(|problem| ConfigError::Invalid {
                path: path.to_path_buf(),
                problem,
            })?;
        Ok(fixture)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutsideConfig {
    pub network: NetworkConfig,
    pub hosts: Vec<OutsideHost>,
}

impl OutsideConfig {
    /// Every host address lies in the subnet and outside the range Docker hands out dynamically.
    pub fn check(&self) -> Result<(), String> {
        let net = &self.network;
        if !net.subnet.contains(&net.ip_range) {
            return Err(format!(
                "ipRange {} is not inside subnet {}",
                net.ip_range, net.subnet
            ));
        }
        if !net.subnet.contains(&net.gateway) {
            return Err(format!(
                "gateway {} is not inside subnet {}",
                net.gateway, net.subnet
            ));
        }
        for h in &self.hosts {
            if !net.subnet.contains(&h.ip) {
                return Err(format!(
                    "outside host {} ({}) is not inside subnet {}",
                    h.name, h.ip, net.subnet
                ));
            }
            if net.ip_range.contains(&h.ip) {
                return Err(format!(
                    "outside host {} ({}) is inside ipRange {}, where Docker places the kind nodes",
                    h.name, h.ip, net.ip_range
                ));
            }
        }
        Ok(())
    }
}

/// The Docker network shared by the kind nodes and the outside hosts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfig {
    pub name: String,
    pub subnet: Ipv4Net,
    pub ip_range: Ipv4Net,
    pub gateway: Ipv4Addr,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutsideHost {
    pub name: String,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub description: Option<String>,
}

/// `kind/cluster.yaml` (kind.x-k8s.io/v1alpha4 `Cluster`), the fields the test bed relies on.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindClusterConfig {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub name: Option<String>,
    pub nodes: Vec<KindNode>,
    #[serde(default)]
    pub networking: KindNetworking,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindNode {
    pub role: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub extra_port_mappings: Vec<KindPortMapping>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPortMapping {
    pub container_port: u16,
    pub host_port: u16,
    #[serde(default)]
    pub listen_address: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindNetworking {
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
    #[serde(default)]
    pub kube_proxy_mode: Option<String>,
    #[serde(default)]
    pub pod_subnet: Option<String>,
    #[serde(default)]
    pub service_subnet: Option<String>,
}

impl KindClusterConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        read_yaml(path)
    }

    /// What would make the test bed misbehave: a default CNI, kube-proxy, no worker, or pod/service ranges
    /// that overlap the outside hosts' network (routes to pods would then be ambiguous).
    pub fn problems(&self, outside: &NetworkConfig) -> Vec<String> {
        let mut problems = Vec::new();
        if self.kind != "Cluster" || !self.api_version.starts_with("kind.x-k8s.io/") {
            problems.push(format!(
                "not a kind Cluster config ({} {})",
                self.api_version, self.kind
            ));
        }
        if !self.nodes.iter().any(|n| n.role == "control-plane") {
            problems.push("no control-plane node".to_string());
        }
        if !self.nodes.iter().any(|n| n.role == "worker") {
            problems.push("no worker node (cross-node traffic would not be tested)".to_string());
        }
        if !self.networking.disable_default_cni {
            problems
                .push("networking.disableDefaultCNI must be true (Cilium is the CNI)".to_string());
        }
        if self.networking.kube_proxy_mode.as_deref() != Some("none") {
            problems.push(
                "networking.kubeProxyMode must be \"none\" (Cilium replaces kube-proxy)"
                    .to_string(),
            );
        }
        for (what, range) in [
            ("podSubnet", &self.networking.pod_subnet),
            ("serviceSubnet", &self.networking.service_subnet),
        ] {
            let Some(range) = range else { continue };
            for part in range.split(',') {
                let Ok(net) = part.trim().parse::<Ipv4Net>() else {
                    continue;
                };
                if net.contains(&outside.subnet) || outside.subnet.contains(&net) {
                    problems.push(format!(
                        "{what} {net} overlaps the outside network {}",
                        outside.subnet
                    ));
                }
            }
        }
        problems
    }

    /// The host address that reaches `node_port` on the control plane through `extraPortMappings`.
    pub fn host_address_for(&self, node_port: u16) -> Option<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == "control-plane")
            .flat_map(|n| &n.extra_port_mappings)
            .find_map(|m| {
                (m.container_port == node_port).then(|| {
                    let host = match m.listen_address.as_deref() {
                        None | Some("0.0.0.0") | Some("") => "127.0.0.1",
                        Some(a) => a,
                    };
                    format!("{host}:{}", m.host_port)
                })
            })
    }
}

/// `kind/cilium-values.yaml`, the fields the test bed relies on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumValues {
    #[serde(default)]
    pub ipam: Option<CiliumIpam>,
    /// `true`/`false` (or the strings, in older charts).
    #[serde(default)]
    pub kube_proxy_replacement: Option<serde_json::Value>,
    #[serde(default)]
    pub k8s_service_host: Option<String>,
    #[serde(default)]
    pub hubble: Option<CiliumHubble>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CiliumIpam {
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CiliumHubble {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub relay: Option<CiliumHubbleRelay>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CiliumHubbleRelay {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub service: Option<CiliumRelayService>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumRelayService {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub node_port: Option<u16>,
}

impl CiliumValues {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        read_yaml(path)
    }

    /// The NodePort of the Relay Service, when the values expose Relay that way.
    pub fn relay_node_port(&self) -> Option<u16> {
        let service = self.hubble.as_ref()?.relay.as_ref()?.service.as_ref()?;
        if service.type_.as_deref() == Some("NodePort") {
            service.node_port
        } else {
            None
        }
    }

    /// What the test bed needs from the values: Kubernetes IPAM (outside routes use `node.spec.podCIDRs`),
    /// kube-proxy replacement, and Relay enabled.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.ipam.as_ref().and_then(|i| i.mode.as_deref()) != Some("kubernetes") {
            problems.push(
                "ipam.mode must be \"kubernetes\" (outside hosts route via node.spec.podCIDRs)"
                    .to_string(),
            );
        }
        let kpr = match &self.kube_proxy_replacement {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true" || s == "strict",
            _ => false,
        };
        if !kpr {
            problems.push(
                "kubeProxyReplacement must be true (kind runs without kube-proxy)".to_string(),
            );
        }
        let relay = self
            .hubble
            .as_ref()
            .and_then(|h| h.relay.as_ref())
            .and_then(|r| r.enabled);
        if relay != Some(true) {
            problems.push("hubble.relay.enabled must be true".to_string());
        }
        problems
    }
}

/// Where Hubble Relay is reachable from the host: the control plane's port mapping of the Relay NodePort,
/// or `127.0.0.1:4245` when the two files do not say.
pub fn relay_address(kind: Option<&KindClusterConfig>, values: Option<&CiliumValues>) -> String {
    kind.zip(values.and_then(CiliumValues::relay_node_port))
        .and_then(|(k, port)| k.host_address_for(port))
        .unwrap_or_else(|| DEFAULT_RELAY_ADDRESS.to_string())
}

pub const DEFAULT_RELAY_ADDRESS: &str = "127.0.0.1:4245";

#[cfg(test)]
mod tests {
    use super::*;

    fn outside() -> OutsideConfig {
        serde_saphyr::from_str(
            "network: {name: harness-kind, subnet: 10.0.0.0/11, ipRange: 10.31.0.0/16, gateway: 10.31.255.254}\n\
             hosts:\n- {name: lb, ip: 10.0.0.10}\n- {name: partner, ip: 10.20.30.10}\n",
        )
        .unwrap()
    }

    #[test]
    fn outside_hosts_inside_the_dynamic_range_are_rejected() {
        let mut o = outside();
        assert_eq!(o.check(), Ok(()));
        o.hosts[0].ip = "10.31.0.5".parse().unwrap();
        assert!(o.check().unwrap_err().contains("inside ipRange"));
        o.hosts[0].ip = "192.168.0.1".parse().unwrap();
        assert!(o.check().unwrap_err().contains("not inside subnet"));
    }

    #[test]
    fn kind_config_problems_name_cni_kube_proxy_and_overlaps() {
        let cfg: KindClusterConfig = serde_saphyr::from_str(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}]\n\
             networking: {podSubnet: 10.1.0.0/16}\n",
        )
        .unwrap();
        let problems = cfg.problems(&outside().network).join("\n");
        assert!(problems.contains("disableDefaultCNI"), "{problems}");
        assert!(problems.contains("kubeProxyMode"), "{problems}");
        assert!(problems.contains("no worker"), "{problems}");
        assert!(
            problems.contains("podSubnet 10.1.0.0/16 overlaps"),
            "{problems}"
        );
    }

    #[test]
    fn relay_address_follows_the_nodeport_mapping() {
        let kind: KindClusterConfig = serde_saphyr::from_str(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  \
             extraPortMappings: [{containerPort: 31245, hostPort: 14245, listenAddress: 127.0.0.1}]\n",
        )
        .unwrap();
        let values: CiliumValues = serde_saphyr::from_str(
            "hubble: {relay: {enabled: true, service: {type: NodePort, nodePort: 31245}}}",
        )
        .unwrap();
        assert_eq!(relay_address(Some(&kind), Some(&values)), "127.0.0.1:14245");
        assert_eq!(relay_address(Some(&kind), None), DEFAULT_RELAY_ADDRESS);
    }
}
