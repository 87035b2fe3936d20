//! The state file (`.harness/state.json`): what `up` built, read by `apply`, `run`, the tests and `down`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file's format version; a file with another version is refused rather than misread.
pub const STATE_VERSION: u32 = 1;

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no test bed state at {path}: run `harness up` first")]
    Missing { path: PathBuf },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a test bed state file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} has state format {found}, this harness reads {STATE_VERSION}: run `harness down` with the harness that wrote it"
    )]
    Version { path: PathBuf, found: u32 },
}

/// How the cluster came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A kind cluster the harness created (with Cilium it installed).
    Kind,
    /// The current kube context's cluster, already running Cilium; only the stack was deployed.
    Existing,
    /// The lab: a control plane, a Cilium agent and the stack's pods as processes and network namespaces
    /// on this Linux host (see [`crate::lab`]).
    Lab,
}

/// Everything the harness created, so that `down` removes exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Created {
    DockerNetwork {
        name: String,
    },
    KindCluster {
        name: String,
    },
    HelmRelease {
        name: String,
        namespace: String,
    },
    Container {
        name: String,
    },
    /// The lab's processes, network namespaces, links and mounts (all removed by `scripts/lab.sh down`).
    Lab {
        run_dir: PathBuf,
    },
    /// A Kubernetes object that did not exist before `up`.
    Object {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
}

/// One outside host as started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideHostState {
    pub name: String,
    pub ip: Ipv4Addr,
    /// The Docker container to `docker exec` into.
    pub container: String,
}

/// The hosts outside the cluster, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum OutsideHosts {
    Started {
        network: String,
        hosts: Vec<OutsideHostState>,
    },
    /// This test bed has no outside hosts by design (an existing cluster): scenarios from them are not
    /// applicable, for this reason.
    NotAvailable { reason: String },
    /// `up` has not (yet) started them: it stopped before that step or failed in it. Scenarios from them
    /// cannot run, but this is a fault of the test bed, not a property of it: they are inconclusive, never
    /// not applicable.
    NotStarted,
}

/// Why scenarios from outside hosts cannot run on a test bed whose `up` stopped before starting them.
pub const OUTSIDE_NOT_STARTED: &str = "the outside hosts were not started (`harness up` stopped before that step or failed in it): run `harness up` again";

/// The state file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub mode: Mode,
    /// The kind cluster's name (kind mode) or a label for the existing cluster (its context name).
    pub cluster_name: String,
    pub kube_context: String,
    /// The installed (kind) or detected (existing) Cilium version, without a leading `v`.
    pub cilium_version: Option<String>,
    /// Where the Cilium agents run (`kube-system` for the harness's own install).
    pub cilium_namespace: String,
    /// The image whose container runs the agent in every workload pod.
    pub agent_image: String,
    /// Hubble Relay from the host, e.g. `127.0.0.1:4245`; `None` when Relay needs a port-forward.
    pub relay_address: Option<String>,
    pub outside: OutsideHosts,
    /// The lock holder identity of this test bed (see [`crate::lock`]).
    pub lock_holder: String,
    /// In creation order; `down` removes them in reverse.
    pub created: Vec<Created>,
    /// The kubeconfig file to use instead of `$KUBECONFIG`/`~/.kube/config` (the lab writes its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// What probes and checks need to reach the lab (lab mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabState>,
}

/// How to reach the lab's pods and agent from this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The in-pod agent binary, run inside a pod's or outside host's network namespace for a probe.
    pub agent_bin: PathBuf,
    /// `cilium-dbg` of the lab's Cilium version (talks to the agent's API socket).
    pub cilium_dbg: PathBuf,
    /// The agent's Hubble metrics endpoint.
    pub hubble_metrics_url: String,
    /// `namespace/pod` to its network namespace.
    pub pods: std::collections::BTreeMap<String, String>,
}

impl State {
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| StateError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let found = probe
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        if found != STATE_VERSION {
            return Err(StateError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
        serde_json::from_value(probe).map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the file atomically (a temporary file renamed over it), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Records `item` once.
    pub fn record(&mut self, item: Created) {
        if !self.created.contains(&item) {
            self.created.push(item);
        }
    }

    /// The outside host called `name`, or why outside hosts are not applicable on this test bed.
    pub fn outside_host(&self, name: &str) -> Result<&OutsideHostState, String> {
        match &self.outside {
            OutsideHosts::Started { hosts, .. } => hosts
                .iter()
                .find(|h| h.name == name)
                .ok_or_else(|| format!("no outside host named {name}")),
            OutsideHosts::NotAvailable { reason } => Err(reason.clone()),
            OutsideHosts::NotStarted => Err(OUTSIDE_NOT_STARTED.to_string()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> State {
        State {
            version: STATE_VERSION,
            mode: Mode::Kind,
            cluster_name: "cnp-harness".into(),
            kube_context: "kind-cnp-harness".into(),
            cilium_version: Some("1.19.8".into()),
            cilium_namespace: "kube-system".into(),
            agent_image: "harness-agent:dev".into(),
            relay_address: Some("127.0.0.1:4245".into()),
            outside: OutsideHosts::Started {
                network: "harness-kind".into(),
                hosts: vec![OutsideHostState {
                    name: "lb".into(),
                    ip: "10.0.0.10".parse().unwrap(),
                    container: "cnp-harness-outside-lb".into(),
                }],
            },
            lock_holder: "me@host/1".into(),
            created: vec![
                Created::DockerNetwork {
                    name: "harness-kind".into(),
                },
                Created::KindCluster {
                    name: "cnp-harness".into(),
                },
                Created::Object {
                    api_version: "v1".into(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: "frontend".into(),
                },
            ],
            kubeconfig: None,
            lab: None,
        }
    }

    #[test]
    fn state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".harness/state.json");
        let state = sample();
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"mode\": \"kind\""), "{text}");
        assert!(text.contains("\"type\": \"docker-network\""), "{text}");
    }

    #[test]
    fn missing_state_file_says_to_run_up() {
        let dir = tempfile::tempdir().unwrap();
        let err = State::load(&dir.path().join("state.json")).unwrap_err();
        assert!(err.to_string().contains("harness up"), "{err}");
    }

    #[test]
    fn state_file_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version": 99}"#).unwrap();
        assert!(matches!(
            State::load(&path),
            Err(StateError::Version { found: 99, .. })
        ));
    }

    #[test]
    fn outside_hosts_not_started_are_not_mistaken_for_unavailable() {
        let mut state = sample();
        state.outside = OutsideHosts::NotStarted;
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""status":"not-started""#), "{json}");
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back.outside, OutsideHosts::NotStarted);
        assert!(
            state
                .outside_host("lb")
                .unwrap_err()
                .contains("run `harness up` again")
        );
    }

    #[test]
    fn outside_hosts_not_available_explain_why() {
        let mut state = sample();
        assert_eq!(
            state.outside_host("lb").unwrap().container,
            "cnp-harness-outside-lb"
        );
        state.outside = OutsideHosts::NotAvailable {
            reason: "existing cluster: no outside hosts".into(),
        };
        assert_eq!(
            state.outside_host("lb").unwrap_err(),
            "existing cluster: no outside hosts"
        );
    }
}
