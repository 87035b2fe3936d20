//! The live test bed behind the runner's [`TestBed`]: probes run by Kubernetes exec in the stack's pods and
//! by `docker exec` in the outside hosts, Hubble flows from Relay, metrics from the Cilium agents.
//!
//! # Caveats
//! Needs a test bed made by `harness up` (its state file). Nothing here changes the cluster.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::runner::{BedError, BoxFuture, NodeMetrics, Place, TestBed};
use crate::stack::Stack;

/// Where a probe source runs.
enum Source {
    Pod {
        namespace: String,
        pod: String,
        container: String,
    },
    Outside(String),
    /// The lab: a pod's or outside host's network namespace, probes run with the host's agent binary.
    Netns(String),
}

/// The live test bed of a state file.
pub struct LiveBed {
    exec: testbed::LiveExecutor,
    /// The lab's details (lab mode only).
    lab: Option<testbed::state::LabState>,
    places: HashMap<String, Result<Place, BedError>>,
    sources: HashMap<String, Source>,
    watch: Result<RelayWatch, String>,
    cilium_namespace: String,
}

/// The label selector that finds a workload's pods: the harness's own label for the stack's workloads,
/// the workload's labels for those the cluster provides (kube-dns).
fn selector(w: &crate::stack::Workload) -> String {
    if w.labels.contains_key("harness/workload") {
        format!("harness/workload={}", w.name)
    } else {
        w.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where each outside host is, or why scenarios from it cannot run: not applicable on a test bed that has
/// none by design (an existing cluster), a failure of the test bed when `up` did not start them.
fn outside_places(
    outside: &testbed::OutsideHosts,
    stack: &Stack,
) -> Vec<(String, Result<Place, BedError>)> {
    match outside {
        testbed::OutsideHosts::Started { hosts, .. } => hosts
            .iter()
            .map(|h| {
                let ip = std::net::IpAddr::V4(h.ip);
                (
                    h.name.clone(),
                    Ok(Place {
                        ip,
                        hubble: hubble::Peer::ip(ip),
                    }),
                )
            })
            .collect(),
        testbed::OutsideHosts::NotAvailable { reason } => stack
            .outside
            .iter()
            .map(|h| {
                let why = format!("outside host {}: {reason}", h.name);
                (h.name.clone(), Err(BedError::NotApplicable(why)))
            })
            .collect(),
        testbed::OutsideHosts::NotStarted => stack
            .outside
            .iter()
            .map(|h| {
                let why = format!(
                    "outside host {}: {}",
                    h.name,
                    testbed::state::OUTSIDE_NOT_STARTED
                );
                (h.name.clone(), Err(BedError::Failed(why)))
            })
            .collect(),
    }
}

impl LiveBed {
    /// Connects to the test bed of `state`: finds every workload's pod, the outside hosts, and opens one
    /// Hubble follow stream for the run (after a health check). Problems with Hubble do not fail this: they
    /// make every Hubble column inconclusive, with the reason.
    ///
    /// # Errors
    /// The cluster cannot be reached.
    pub async fn connect(
        root: &Path,
        state: &testbed::State,
        stack: &Stack,
        relay: Option<&str>,
        progress: &dyn testbed::Progress,
    ) -> Result<LiveBed, String> {
        progress.step_started("Connect to the test bed");
        let exec = testbed::LiveExecutor::connect(state, root)
            .await
            .map_err(|e| e.to_string())?;
        let mut places = HashMap::new();
        let mut sources = HashMap::new();
        for w in &stack.workloads {
            let id = w.id();
            match exec.pod_place(&w.namespace, &selector(w)).await {
                Ok(p) => {
                    if let Some(c) = &p.container {
                        sources.insert(
                            id.clone(),
                            Source::Pod {
                                namespace: w.namespace.clone(),
                                pod: p.pod.clone(),
                                container: c.clone(),
                            },
                        );
                    }
                    places.insert(
                        id,
                        Ok(Place {
                            ip: p.ip,
                            hubble: hubble::Peer::pod(&w.namespace, &p.pod),
                        }),
                    );
                }
                Err(e) => {
                    progress.detail(&format!("{id}: {e}"));
                    places.insert(id, Err(BedError::Failed(e.to_string())));
                }
            }
        }
        for (name, place) in outside_places(&state.outside, stack) {
            if place.is_ok() {
                sources.insert(name.clone(), Source::Outside(name.clone()));
            }
            places.insert(name, place);
        }
        progress.step_started("Open the Hubble flow stream");
        let watch = match relay.or(state.relay_address.as_deref()) {
            None => Err("this test bed has no Relay address (an existing cluster): run `cilium hubble port-forward` and pass --relay 127.0.0.1:4245".to_string()),
            Some(addr) => RelayWatch::open(addr).await,
        };
        match &watch {
            Ok(w) => progress.detail(&format!("following flows from {}", w.url)),
            Err(why) => progress.detail(&format!("no Hubble evidence this run: {why}")),
        }
        // In the lab, probes run in the pods' and outside hosts' network namespaces.
        if let Some(lab) = &state.lab {
            for (id, source) in sources.iter_mut() {
                let netns = match source {
                    Source::Pod { namespace, pod, .. } => {
                        lab.pods.get(&format!("{namespace}/{pod}")).cloned()
                    }
                    Source::Outside(host) => match &state.outside {
                        testbed::OutsideHosts::Started { hosts, .. } => hosts
                            .iter()
                            .find(|h| &h.name == host)
                            .map(|h| h.container.clone()),
                        _ => None,
                    },
                    Source::Netns(n) => Some(n.clone()),
                };
                match netns {
                    Some(n) => *source = Source::Netns(n),
                    None => progress.detail(&format!("{id}: no network namespace in the lab")),
                }
            }
        }
        Ok(LiveBed {
            exec,
            lab: state.lab.clone(),
            places,
            sources,
            watch,
            cilium_namespace: state.cilium_namespace.clone(),
        })
    }
}

/// How long to wait for the follow call's answer right after a successful health check.
const HEALTHY_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// One follow stream from Hubble Relay for a run, reopened when it ends (a Relay restart, a dropped
/// connection): probes waiting on the old stream resolve inconclusive, later probes use the new one.
pub struct RelayWatch {
    pub url: String,
    current: tokio::sync::Mutex<Arc<hubble::FlowWatch>>,
}

impl RelayWatch {
    /// Connects to Relay at `addr` (`127.0.0.1:4245` or a URL), checks its health (every node connected,
    /// flows flowing) and starts following flows from now.
    ///
    /// # Errors
    /// Relay unreachable or unhealthy, with what to check.
    pub async fn open(addr: &str) -> Result<RelayWatch, String> {
        let url = if addr.starts_with("http") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let watch = Self::follow(&url, true).await?;
        Ok(RelayWatch {
            url,
            current: tokio::sync::Mutex::new(Arc::new(watch)),
        })
    }

    async fn follow(url: &str, check_health: bool) -> Result<hubble::FlowWatch, String> {
        let client = hubble::HubbleClient::connect(url)
            .await
            .map_err(|e| format!("Hubble Relay at {url}: {e}"))?;
        if check_health {
            client
                .check_health(&hubble::HealthCheck::default())
                .await
                .map_err(|e| e.to_string())?;
        }
        // Healthy a moment ago: a short wait for the call's answer (a quiet lab agent answers only with
        // its first flow, and each test process of the nextest profiles opens its own stream).
        let answer_wait = if check_health {
            HEALTHY_ANSWER_WAIT
        } else {
            hubble::FOLLOW_ANSWER_WAIT
        };
        client
            .follow_waiting(
                &hubble::FlowsRequest::follow_since(SystemTime::now()),
                hubble::WatchOptions::default(),
                answer_wait,
            )
            .await
            .map_err(|e| format!("cannot follow flows from {url}: {e}"))
    }

    /// The current stream; when it has ended, a new one (from now on).
    ///
    /// # Errors
    /// The stream ended and could not be reopened.
    pub async fn get(&self) -> Result<Arc<hubble::FlowWatch>, String> {
        let mut current = self.current.lock().await;
        if let Some(why) = current.stats().ended {
            let fresh = Self::follow(&self.url, false).await.map_err(|e| {
                format!("the flow stream ended ({why}) and could not be reopened: {e}")
            })?;
            *current = Arc::new(fresh);
        }
        Ok(Arc::clone(&current))
    }
}

impl LiveBed {
    /// What the Hubble flow stream has delivered so far (of the current stream, if it was reopened).
    pub async fn hubble_stats(&self) -> Option<hubble::WatchStats> {
        match &self.watch {
            Ok(w) => Some(w.current.lock().await.stats()),
            Err(_) => None,
        }
    }

    /// The API server's version (`v1.34.11`), for the results document.
    pub async fn kubernetes_version(&self) -> Option<String> {
        self.exec
            .client()
            .apiserver_version()
            .await
            .ok()
            .map(|v| v.git_version)
    }
}

impl TestBed for LiveBed {
    fn locate(&self, peer: &str) -> Result<Place, BedError> {
        self.places.get(peer).cloned().unwrap_or_else(|| {
            Err(BedError::Failed(format!(
                "{peer} is not part of this test bed"
            )))
        })
    }

    fn exec<'a>(
        &'a self,
        source: &'a str,
        args: Vec<String>,
        deadline: Instant,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<String, BedError>> {
        Box::pin(async move {
            let out = match self.sources.get(source) {
                Some(Source::Pod {
                    namespace,
                    pod,
                    container,
                }) => {
                    self.exec
                        .exec_pod_cancellable(namespace, pod, container, &args, deadline, cancel)
                        .await
                }
                Some(Source::Outside(host)) => {
                    self.exec
                        .exec_outside_cancellable(host, &args, deadline, cancel)
                        .await
                }
                Some(Source::Netns(netns)) => match &self.lab {
                    Some(lab) => {
                        testbed::lab::exec_netns_cancellable(
                            &lab.agent_bin,
                            netns,
                            &args,
                            deadline,
                            cancel,
                        )
                        .await
                    }
                    None => {
                        return Err(BedError::Failed(format!(
                            "{source}: network namespace {netns} outside a lab"
                        )));
                    }
                },
                None => {
                    return Err(match self.places.get(source) {
                        Some(Err(e)) => e.clone(),
                        _ => BedError::Failed(format!(
                            "{source} runs no agent container to probe from"
                        )),
                    });
                }
            };
            match out {
                Ok(o) if o.exit_code == 0 => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
                Ok(o) => Err(BedError::Failed(format!(
                    "the agent exited {}: {}",
                    o.exit_code,
                    String::from_utf8_lossy(&o.stderr).trim()
                ))),
                Err(testbed::ExecError::NotApplicable { reason, .. }) => {
                    Err(BedError::NotApplicable(reason))
                }
                Err(e) => Err(BedError::Failed(e.to_string())),
            }
        })
    }

    fn no_envoy(&self) -> Option<String> {
        self.lab
            .as_ref()
            .map(|_| "the lab has no Envoy".to_string())
    }

    fn flows(&self) -> BoxFuture<'_, Result<Arc<hubble::FlowWatch>, String>> {
        Box::pin(async move {
            match &self.watch {
                Ok(w) => w.get().await,
                Err(why) => Err(why.clone()),
            }
        })
    }

    fn hubble_metrics(&self) -> BoxFuture<'_, Result<Vec<NodeMetrics>, BedError>> {
        Box::pin(async move {
            if let Some(lab) = &self.lab {
                let a = testbed::lab::hubble_metrics(&lab.hubble_metrics_url)
                    .await
                    .map_err(BedError::Failed)?;
                return Ok(vec![NodeMetrics {
                    node: match a.problem {
                        Some(p) => format!("{} ({p})", a.node),
                        None => a.node,
                    },
                    metrics: a.enabled,
                }]);
            }
            let agents = tokio::time::timeout(
                Duration::from_secs(30),
                testbed::metrics::hubble_metrics(self.exec.client(), &self.cilium_namespace),
            )
            .await
            .map_err(|_| {
                BedError::Failed("the Cilium agents' metrics did not answer within 30 s".into())
            })?
            .map_err(BedError::Failed)?;
            Ok(agents
                .into_iter()
                .map(|a| NodeMetrics {
                    node: match a.problem {
                        Some(p) => format!("{} ({p})", a.node),
                        None => a.node,
                    },
                    metrics: a.enabled,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> testbed::State {
        testbed::State {
            version: testbed::state::STATE_VERSION,
            mode: testbed::Mode::Kind,
            cluster_name: "cnp-harness".into(),
            kube_context: "kind-cnp-harness".into(),
            cilium_version: Some("1.19.8".into()),
            cilium_namespace: "kube-system".into(),
            agent_image: "harness-agent:dev".into(),
            relay_address: None,
            outside: testbed::OutsideHosts::Started {
                network: "harness-kind".into(),
                hosts: vec![testbed::state::OutsideHostState {
                    name: "lb".into(),
                    ip: "10.0.0.10".parse().expect("ip"),
                    container: "cnp-harness-outside-lb".into(),
                }],
            },
            lock_holder: "test".into(),
            created: Vec::new(),
            kubeconfig: None,
            lab: None,
        }
    }

    #[test]
    fn outside_hosts_up_did_not_start_are_a_bed_failure_not_not_applicable() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let stack = Stack::load(&root.join("fixtures/stack.yaml")).expect("stack");
        assert!(!stack.outside.is_empty());
        let not_started = outside_places(&testbed::OutsideHosts::NotStarted, &stack);
        assert_eq!(not_started.len(), stack.outside.len());
        for (name, place) in &not_started {
            match place {
                Err(BedError::Failed(why)) => assert!(why.contains("harness up"), "{name}: {why}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let existing = testbed::OutsideHosts::NotAvailable {
            reason: "existing cluster".into(),
        };
        assert!(
            outside_places(&existing, &stack)
                .iter()
                .all(|(_, p)| matches!(p, Err(BedError::NotApplicable(_))))
        );
        let started = outside_places(&state().outside, &stack);
        assert_eq!(started.len(), 1);
        assert_eq!(
            started[0].1.as_ref().map(|p| p.ip.to_string()).ok(),
            Some("10.0.0.10".into())
        );
    }

    /// A `docker` that stands for `docker exec -i <container> agent probe ... --cancel-on-stdin`: it waits
    /// for one line on its standard input and prints it back as the agent's answer.
    fn fake_docker(dir: &Path) {
        let path = dir.join("docker");
        std::fs::write(
            &path,
            "#!/bin/sh\n\
             [ \"$1 $2\" = \"exec -i\" ] || { echo \"expected docker exec -i, got: $*\" >&2; exit 3; }\n\
             IFS= read -r line || line='(standard input closed)'\n\
             printf '{\"stdin\":\"%s\"}\\n' \"$line\"\n",
        )
        .expect("write the fake docker");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The live bed's whole path for an outside host (`LiveBed::exec` → `LiveExecutor` → `docker exec
    /// -i`): when the runner cancels a probe, the agent receives the stop line on its standard input.
    #[tokio::test]
    async fn a_cancelled_probe_on_an_outside_host_receives_the_stop_line_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake_docker(dir.path());
        let state = state();
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:9".parse().expect("url"),
        ))
        .expect("client");
        let exec = testbed::LiveExecutor::new(
            client,
            &state,
            testbed::command::Tools {
                bin_dir: Some(dir.path().to_path_buf()),
            },
            Arc::new(testbed::command::SystemRunner),
        );
        let bed = LiveBed {
            exec,
            lab: None,
            places: HashMap::new(),
            sources: HashMap::from([("lb".to_string(), Source::Outside("lb".into()))]),
            watch: Err("no Relay in this test".into()),
            cilium_namespace: "kube-system".into(),
        };
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let started = Instant::now();
        let args = vec!["agent".to_string(), "probe".into(), "tcp".into()];
        let out = bed
            .exec("lb", args, started + Duration::from_secs(10), cancel)
            .await
            .expect("the probe ends once it is told to stop");
        assert_eq!(out.trim(), r#"{"stdin":"stop"}"#);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
