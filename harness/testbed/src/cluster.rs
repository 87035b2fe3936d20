//! Waiting for the cluster: nodes, Cilium's components, its CRDs and the stack's pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use crate::client::api_message;
use crate::readiness::{
    crd_established, daemonset_ready, deployment_ready, describe_unready_pod, node_ready,
    pod_ready, pods_ready,
};
use crate::wait::{Backoff, Check, WaitTimeout, poll_until};

/// The CRDs a posture needs before it can be applied.
pub const POLICY_CRDS: [&str; 2] = [
    "ciliumnetworkpolicies.cilium.io",
    "ciliumclusterwidenetworkpolicies.cilium.io",
];
/// The label of Cilium agent pods and of their DaemonSet.
pub const CILIUM_AGENT_SELECTOR: &str = "k8s-app=cilium";
/// The agent container in a Cilium agent pod.
pub const CILIUM_AGENT_CONTAINER: &str = "cilium-agent";

/// Errors while waiting for the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Timeout(#[from] WaitTimeout),
    /// A stack pod did not become ready; the text names it, its containers' states and its events.
    #[error("timed out after {waited:.0?} waiting for the stack's pods to be Ready:\n{report}")]
    PodsNotReady {
        waited: std::time::Duration,
        report: String,
    },
    #[error("{what}: {message}")]
    Api { what: String, message: String },
}

/// Waits until every node's `Ready` condition is `True` (`expect` nodes at least).
pub async fn wait_nodes_ready(
    client: &Client,
    expect: usize,
    deadline: Instant,
) -> Result<Vec<Node>, ClusterError> {
    let api: Api<Node> = Api::all(client.clone());
    Ok(poll_until(
        "every node to be Ready",
        deadline,
        Backoff::default(),
        || async {
            match api.list(&ListParams::default()).await {
                Err(e) => Check::NotYet(api_message(&e)),
                Ok(list) if list.items.len() < expect => {
                    Check::NotYet(format!("{} of {expect} nodes registered", list.items.len()))
                }
                Ok(list) => match list.items.iter().find_map(|n| node_ready(n).err()) {
                    Some(why) => Check::NotYet(why),
                    None => Check::Ready(list.items),
                },
            }
        },
    )
    .await?)
}

/// Waits until DaemonSet `namespace/name` is fully rolled out and ready.
pub async fn wait_daemonset(
    client: &Client,
    namespace: &str,
    name: &str,
    deadline: Instant,
) -> Result<(), ClusterError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let what = format!("daemonset {namespace}/{name} to be ready");
    Ok(poll_until(&what, deadline, Backoff::default(), || async {
        match api.get_opt(name).await {
            Err(e) => Check::NotYet(api_message(&e)),
            Ok(None) => Check::NotYet(format!("daemonset {name} does not exist")),
            Ok(Some(ds)) => match daemonset_ready(&ds) {
                Ok(()) => Check::Ready(()),
                Err(why) => Check::NotYet(why),
            },
        }
    })
    .await?)
}

/// Waits until Deployment `namespace/name` has all replicas updated, ready and available.
pub async fn wait_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    deadline: Instant,
) -> Result<(), ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let what = format!("deployment {namespace}/{name} to be ready");
    Ok(poll_until(&what, deadline, Backoff::default(), || async {
        match api.get_opt(name).await {
            Err(e) => Check::NotYet(api_message(&e)),
            Ok(None) => Check::NotYet(format!("deployment {name} does not exist")),
            Ok(Some(d)) => match deployment_ready(&d) {
                Ok(()) => Check::Ready(()),
                Err(why) => Check::NotYet(why),
            },
        }
    })
    .await?)
}

/// Whether a DaemonSet exists (e.g. `cilium-envoy`, absent when Envoy is embedded in the agent).
pub async fn daemonset_exists(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ClusterError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map(|d| d.is_some())
        .map_err(|e| ClusterError::Api {
            what: format!("reading daemonset {namespace}/{name}"),
            message: api_message(&e),
        })
}

/// Whether a Deployment exists.
pub async fn deployment_exists(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map(|d| d.is_some())
        .map_err(|e| ClusterError::Api {
            what: format!("reading deployment {namespace}/{name}"),
            message: api_message(&e),
        })
}

/// Waits until the CRD exists and is `Established` (Cilium's operator registers its CRDs at start-up).
pub async fn wait_crd_established(
    client: &Client,
    name: &str,
    deadline: Instant,
) -> Result<(), ClusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let what = format!("CRD {name} to be Established");
    Ok(poll_until(&what, deadline, Backoff::default(), || async {
        match api.get_opt(name).await {
            Err(e) => Check::NotYet(api_message(&e)),
            Ok(None) => Check::NotYet(format!("CRD {name} does not exist yet")),
            Ok(Some(crd)) => match crd_established(&crd) {
                Ok(()) => Check::Ready(()),
                Err(why) => Check::NotYet(why),
            },
        }
    })
    .await?)
}

/// Waits until every Deployment is rolled out and every one of its pods is `Ready`.
///
/// # Errors
/// On timeout, [`ClusterError::PodsNotReady`] names each unready pod with its containers' last states and
/// its recent events.
pub async fn wait_stack_ready(
    client: &Client,
    deployments: &[Deployment],
    deadline: Instant,
) -> Result<(), ClusterError> {
    let started = Instant::now();
    let result = poll_until(
        "the stack's pods to be Ready",
        deadline,
        Backoff::default(),
        || async {
            let mut waiting = Vec::new();
            for d in deployments {
                match deployment_status(client, d).await {
                    Ok(()) => {}
                    Err(why) => waiting.push(why),
                }
            }
            if waiting.is_empty() {
                Check::Ready(())
            } else {
                Check::NotYet(waiting.join("\n"))
            }
        },
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(timeout) => {
            let report = unready_report(client, deployments)
                .await
                .unwrap_or(timeout.last);
            Err(ClusterError::PodsNotReady {
                waited: started.elapsed(),
                report,
            })
        }
    }
}

fn deployment_key(d: &Deployment) -> (String, String) {
    (
        d.metadata.namespace.clone().unwrap_or_default(),
        d.metadata.name.clone().unwrap_or_default(),
    )
}

/// The label selector of a Deployment's pods, as `k=v,k=v`.
pub fn selector_of(d: &Deployment) -> String {
    let labels: BTreeMap<String, String> = d.spec.selector.match_labels.clone().unwrap_or_default();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn deployment_status(client: &Client, manifest: &Deployment) -> Result<(), String> {
    let (ns, name) = deployment_key(manifest);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let live = match deployments.get_opt(&name).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(format!("deployment {ns}/{name} does not exist")),
        Err(e) => return Err(format!("deployment {ns}/{name}: {}", api_message(&e))),
    };
    deployment_ready(&live)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels(&selector_of(&live)))
        .await
        .map_err(|e| format!("pods of {ns}/{name}: {}", api_message(&e)))?;
    let want = live.spec.replicas.unwrap_or(1).max(0) as usize;
    match pods_ready(&list.items, want) {
        Ok(()) => Ok(()),
        Err(Some(pod)) => Err(pod_ready(pod).err().unwrap_or_default()),
        Err(None) => Err(format!(
            "deployment {ns}/{name}: {} of {want} pods exist",
            list.items.len()
        )),
    }
}

/// For every Deployment with an unready pod: the pod's states and events (or what is missing).
async fn unready_report(client: &Client, deployments: &[Deployment]) -> Option<String> {
    let mut lines = Vec::new();
    for d in deployments {
        let (ns, name) = deployment_key(d);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let list = pods
            .list(&ListParams::default().labels(&selector_of(d)))
            .await
            .ok()?;
        if list.items.is_empty() {
            lines.push(format!(
                "deployment {ns}/{name}: no pods (check its ReplicaSet's events)"
            ));
            continue;
        }
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        for pod in list.items.iter().filter(|p| pod_ready(p).is_err()) {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let evs = events
                .list(&ListParams::default().fields(&format!("involvedObject.name={pod_name}")))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            lines.push(describe_unready_pod(pod, &evs));
        }
    }
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}

/// The Cilium agent pods, with the node each runs on.
pub async fn cilium_agents(client: &Client, namespace: &str) -> Result<Vec<Pod>, ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(CILIUM_AGENT_SELECTOR))
        .await
        .map_err(|e| ClusterError::Api {
            what: format!("listing Cilium agents in {namespace}"),
            message: api_message(&e),
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Where Cilium runs on a cluster the harness did not set up: the namespace of the agent DaemonSet and the
/// version from its image tag.
pub async fn detect_cilium(
    client: &Client,
) -> Result<Option<(String, Option<String>)>, ClusterError> {
    let api: Api<DaemonSet> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(CILIUM_AGENT_SELECTOR))
        .await
        .map_err(|e| ClusterError::Api {
            what: "looking for Cilium".into(),
            message: api_message(&e),
        })?;
    Ok(list.items.into_iter().next().map(|ds| {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let image = ds
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .find(|c| c.name == CILIUM_AGENT_CONTAINER)
                    .or(s.containers.first())
            })
            .and_then(|c| c.image.clone());
        (ns, image.as_deref().and_then(version_from_image))
    }))
}

/// `quay.io/cilium/cilium:v1.19.8@sha256:...` -> `1.19.8`.
pub fn version_from_image(image: &str) -> Option<String> {
    let without_digest = image.split('@').next()?;
    let (_, tag) = without_digest
        .rsplit_once(':')
        .filter(|(repo, _)| !repo.ends_with('/'))?;
    if tag.contains('/') {
        return None;
    }
    Some(tag.trim_start_matches('v').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cilium_version_is_read_from_the_image_tag() {
        assert_eq!(
            version_from_image("quay.io/cilium/cilium:v1.19.8@sha256:abc").as_deref(),
            Some("1.19.8")
        );
        assert_eq!(
            version_from_image("localhost:5000/cilium/cilium:v1.20.2").as_deref(),
            Some("1.20.2")
        );
        assert_eq!(version_from_image("localhost:5000/cilium"), None);
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::fake_api::{self, list};
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn stack_timeout_names_the_unready_pod_its_container_state_and_events() {
        let (client, _) = fake_api::client(|r| match r.path.as_str() {
            "/apis/apps/v1/namespaces/kafka/deployments/kafka" => (
                200,
                json!({
                    "metadata": {"name": "kafka", "namespace": "kafka", "generation": 1},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"harness/workload": "kafka"}}, "template": {}},
                    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0}
                }),
            ),
            "/api/v1/namespaces/kafka/pods" => list(
                "PodList",
                vec![json!({
                    "metadata": {"name": "kafka-7d9", "namespace": "kafka"},
                    "status": {"phase": "Running",
                        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                        "containerStatuses": [{"name": "kafka", "ready": false, "restartCount": 2, "image": "apache/kafka:3.9.1", "imageID": "",
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
                })],
            ),
            "/api/v1/namespaces/kafka/events" => list(
                "EventList",
                vec![json!({
                    "metadata": {"name": "e1"}, "involvedObject": {"name": "kafka-7d9"},
                    "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container kafka"
                })],
            ),
            _ => fake_api::not_found(),
        });
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "kafka", "namespace": "kafka"},
            "spec": {"selector": {"matchLabels": {"harness/workload": "kafka"}}, "template": {}}
        }))
        .unwrap();
        let err = wait_stack_ready(
            &client,
            &[deployment],
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("pod kafka/kafka-7d9: phase Running"), "{err}");
        assert!(
            err.contains("container kafka: waiting (CrashLoopBackOff)"),
            "{err}"
        );
        assert!(
            err.contains("last terminated (Error, exit code 1)"),
            "{err}"
        );
        assert!(
            err.contains("event Warning BackOff: Back-off restarting failed container kafka"),
            "{err}"
        );
    }
}
