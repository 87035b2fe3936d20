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
}

/// The live test bed of a state file.
pub struct LiveBed {
    exec: testbed::LiveExecutor,
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
        match &state.outside {
            testbed::OutsideHosts::Started { hosts, .. } => {
                for h in hosts {
                    let ip = std::net::IpAddr::V4(h.ip);
                    places.insert(
                        h.name.clone(),
                        Ok(Place {
                            ip,
                            hubble: hubble::Peer::ip(ip),
                        }),
                    );
                    sources.insert(h.name.clone(), Source::Outside(h.name.clone()));
                }
            }
            testbed::OutsideHosts::NotAvailable { reason } => {
                for h in &stack.outside {
                    places.insert(
                        h.name.clone(),
                        Err(BedError::NotApplicable(format!(
                            "outside host {}: {reason}",
                            h.name
                        ))),
                    );
                }
            }
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
        Ok(LiveBed {
            exec,
            places,
            sources,
            watch,
            cilium_namespace: state.cilium_namespace.clone(),
        })
    }
}

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
        client
            .follow(
                &hubble::FlowsRequest::follow_since(SystemTime::now()),
                hubble::WatchOptions::default(),
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
