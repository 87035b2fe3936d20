//! The reference stack: workloads read from the deployed manifests, workloads the cluster provides, and the
//! hosts outside the cluster.
//!
//! The manifests under `workloads/manifests/` are the single source of truth: the model takes each
//! workload's namespace, pod labels and named ports from the same files `harness up` applies, so the two
//! cannot drift.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PodTemplateSpec};
use serde::{Deserialize, Serialize};

use crate::load::{self, InputError};
use crate::policy::Protocol;

/// A workload: the pods of one controller (or a workload the cluster provides).
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// Pod labels (the pod template's labels).
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ports: Vec<NamedPort>,
    /// Where it was defined.
    #[serde(skip)]
    pub origin: String,
}

impl Workload {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPort {
    pub name: Option<String>,
    pub port: u16,
    #[serde(default = "tcp")]
    pub protocol: Protocol,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}

/// A host outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutsideHost {
    pub name: String,
    pub ip: IpAddr,
    #[serde(default)]
    pub description: String,
}

/// The Docker network the outside hosts and the kind nodes share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutsideNetwork {
    pub name: String,
    pub subnet: IpNet,
    pub ip_range: IpNet,
    pub gateway: IpAddr,
}

/// The whole stack.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub workloads: Vec<Workload>,
    /// Namespace labels, by namespace (a namespace not defined in the manifests has only
    /// `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub outside: Vec<OutsideHost>,
    pub network: Option<OutsideNetwork>,
    /// The manifest files the workloads came from.
    pub manifest_files: Vec<PathBuf>,
}

/// `fixtures/stack.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StackFile {
    manifests: PathBuf,
    #[serde(default)]
    cluster_workloads: Vec<ClusterWorkload>,
    outside: Option<OutsideFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClusterWorkload {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<NamedPort>,
    service_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutsideFile {
    network: Option<OutsideNetwork>,
    #[serde(default)]
    hosts: Vec<OutsideHost>,
}

/// Only `apiVersion` and `kind`, to pick the type of a manifest document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    kind: Option<String>,
}

impl Stack {
    /// Load the stack described by a `stack.yaml` (paths in it are relative to that file).
    ///
    /// # Errors
    /// The first bad file, with its path and line.
    pub fn load(stack_file: &Path) -> Result<Stack, InputError> {
        let sf: StackFile = load::read_one(stack_file)?;
        let base = stack_file.parent().unwrap_or(Path::new("."));
        let manifests = base.join(&sf.manifests);
        let mut stack = Stack::from_manifests(&manifests)?;
        for cw in sf.cluster_workloads {
            stack.workloads.push(Workload {
                namespace: cw.namespace,
                name: cw.name,
                labels: cw.labels,
                service_account: cw.service_account.unwrap_or_else(|| "default".into()),
                ports: cw.ports,
                origin: format!("{} (clusterWorkloads)", stack_file.display()),
            });
        }
        if let Some(o) = sf.outside {
            if let Some(net) = &o.network {
                for h in &o.hosts {
                    if !net.subnet.contains(&h.ip) {
                        return Err(InputError::at(
                            stack_file,
                            None,
                            format!(
                                "outside.hosts: {} ({}) is not inside the network's subnet {}",
                                h.name, h.ip, net.subnet
                            ),
                        ));
                    }
                }
            }
            stack.network = o.network;
            stack.outside = o.hosts;
        }
        stack.check_unique(stack_file)?;
        Ok(stack)
    }

    /// Read the workloads of every manifest file in a directory.
    pub fn from_manifests(dir: &Path) -> Result<Stack, InputError> {
        let files = load::yaml_files(dir)?;
        let mut stack = Stack {
            workloads: Vec::new(),
            namespaces: BTreeMap::new(),
            outside: Vec::new(),
            network: None,
            manifest_files: files.clone(),
        };
        for file in &files {
            let text = load::read_text(file)?;
            for doc in load::split_documents(&text) {
                let tm: TypeMeta = load::parse_document(file, &doc)?;
                let origin = format!("{}:{}", file.display(), doc.first_line);
                match tm.kind.as_deref() {
                    Some("Namespace") => {
                        let ns: Namespace = load::parse_document(file, &doc)?;
                        let name = ns.metadata.name.clone().ok_or_else(|| {
                            InputError::at(file, Some(doc.first_line), "metadata.name: missing")
                        })?;
                        let mut labels = ns.metadata.labels.unwrap_or_default();
                        labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                        stack.namespaces.insert(name, labels);
                    }
                    Some("Deployment") => {
                        let d: Deployment = load::parse_document(file, &doc)?;
                        let t = Some(d.spec.template);
                        stack.push_workload(file, doc.first_line, d.metadata, t, origin)?;
                    }
                    Some("StatefulSet") => {
                        let d: StatefulSet = load::parse_document(file, &doc)?;
                        let t = Some(d.spec.template);
                        stack.push_workload(file, doc.first_line, d.metadata, t, origin)?;
                    }
                    Some("DaemonSet") => {
                        let d: DaemonSet = load::parse_document(file, &doc)?;
                        let t = Some(d.spec.template);
                        stack.push_workload(file, doc.first_line, d.metadata, t, origin)?;
                    }
                    Some(_) => {}
                    None => {
                        return Err(InputError::at(file, Some(doc.first_line), "kind: missing"));
                    }
                }
            }
        }
        Ok(stack)
    }

    fn push_workload(
        &mut self,
        file: &Path,
        line: u64,
        meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: Option<PodTemplateSpec>,
        origin: String,
    ) -> Result<(), InputError> {
        let err = |m: &str| InputError::at(file, Some(line), m.to_string());
        let name = meta.name.ok_or_else(|| err("metadata.name: missing"))?;
        let namespace = meta.namespace.ok_or_else(|| {
            err("metadata.namespace: missing (the stack's manifests name their namespace explicitly)")
        })?;
        let template = template.ok_or_else(|| err("spec.template: missing"))?;
        let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
        let spec = template
            .spec
            .ok_or_else(|| err("spec.template.spec: missing"))?;
        let mut ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                let protocol = match p.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    Some(other) => {
                        return Err(err(&format!(
                            "spec.template.spec.containers[{}].ports: unknown protocol `{other}`",
                            c.name
                        )));
                    }
                };
                let port = u16::try_from(p.container_port).map_err(|_| {
                    err(&format!(
                        "spec.template.spec.containers[{}].ports: containerPort {} out of range",
                        c.name, p.container_port
                    ))
                })?;
                ports.push(NamedPort {
                    name: p.name.clone(),
                    port,
                    protocol,
                });
            }
        }
        self.workloads.push(Workload {
            namespace,
            name,
            labels,
            service_account: spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            ports,
            origin,
        });
        Ok(())
    }

    fn check_unique(&self, stack_file: &Path) -> Result<(), InputError> {
        let mut seen = BTreeMap::new();
        for w in &self.workloads {
            if let Some(prev) = seen.insert(w.id(), &w.origin) {
                return Err(InputError::at(
                    stack_file,
                    None,
                    format!(
                        "workload {} is defined twice ({} and {})",
                        w.id(),
                        prev,
                        w.origin
                    ),
                ));
            }
        }
        for h in &self.outside {
            if h.name.contains('/') {
                return Err(InputError::at(
                    stack_file,
                    None,
                    format!("outside.hosts: name `{}` must not contain `/`", h.name),
                ));
            }
        }
        Ok(())
    }

    /// Look up a workload by `namespace/name`.
    pub fn workload(&self, id: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.id() == id)
    }

    /// Look up an outside host by name.
    pub fn outside_host(&self, name: &str) -> Option<&OutsideHost> {
        self.outside.iter().find(|h| h.name == name)
    }

    /// The labels of a namespace (at least `kubernetes.io/metadata.name`).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces.get(ns).cloned().unwrap_or_else(|| {
            BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn reference_stack_reads_identities_from_the_deployed_manifests() {
        let s = Stack::load(&repo().join("fixtures/stack.yaml")).expect("stack loads");
        let fe = s.workload("frontend/frontend").expect("frontend");
        assert_eq!(fe.labels.get("role").map(String::as_str), Some("frontend"));
        assert!(
            fe.ports
                .iter()
                .any(|p| p.port == 443 && p.name.as_deref() == Some("https"))
        );
        let imp = s.workload("backend/impostor").expect("impostor");
        assert_eq!(imp.labels.get("role").map(String::as_str), Some("frontend"));
        assert!(
            !s.workload("attacker/attacker")
                .expect("attacker")
                .labels
                .contains_key("role")
        );
        assert!(s.workload("kube-system/kube-dns").is_some());
        assert_eq!(
            s.outside_host("lb").expect("lb").ip.to_string(),
            "10.0.0.10"
        );
        for id in [
            "backend/api",
            "database/postgres",
            "kafka/kafka",
            "kafka/internal-client",
            "analytics/reporting",
            "frontend/rogue",
            "attacker/fake-api",
        ] {
            assert!(s.workload(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn manifest_without_namespace_is_rejected_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c}]}\n",
        )
        .unwrap();
        let err = Stack::from_manifests(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a.yaml:5"), "{err}");
        assert!(err.contains("metadata.namespace"), "{err}");
    }
}
