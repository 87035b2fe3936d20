//! Readiness decisions on Kubernetes objects, as pure functions (tested on constructed objects).
//!
//! Each returns `Ok(())` when ready, or `Err(text)` saying what is still missing, in words that end up in a
//! timeout error.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ContainerState, Event, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// A pod is ready when its `Ready` condition is `True` (not merely phase `Running`) and it is not being
/// deleted.
pub fn pod_ready(pod: &Pod) -> Result<(), String> {
    let name = pod.metadata.name.as_deref().unwrap_or("<unnamed>");
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(format!("pod {name} is terminating"));
    }
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    if ready {
        Ok(())
    } else {
        Err(format!("pod {name} is not Ready ({})", pod_summary(pod)))
    }
}

/// Phase, the Ready condition's reason and each container's state, on one line.
pub fn pod_summary(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else {
        return "no status yet".to_string();
    };
    let mut parts = vec![format!(
        "phase {}",
        status.phase.as_deref().unwrap_or("Unknown")
    )];
    for c in status.conditions.iter().flatten() {
        if (c.type_ == "Ready" || c.type_ == "PodScheduled") && c.status != "True" {
            let mut s = format!("{}={}", c.type_, c.status);
            if let Some(r) = &c.reason {
                s.push_str(&format!(" {r}"));
            }
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            parts.push(s);
        }
    }
    for cs in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let mut s = format!(
            "container {}: {}",
            cs.name,
            container_state(cs.state.as_ref())
        );
        if !cs.ready {
            s.push_str(", not ready");
        }
        if cs.restart_count > 0 {
            s.push_str(&format!(", {} restarts", cs.restart_count));
            if let Some(last) = cs.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                s.push_str(&format!(", last {}", container_state(Some(last))));
            }
        }
        parts.push(s);
    }
    parts.join("; ")
}

fn container_state(state: Option<&ContainerState>) -> String {
    let Some(state) = state else {
        return "no state".to_string();
    };
    if let Some(w) = &state.waiting {
        let mut s = format!("waiting ({})", w.reason.as_deref().unwrap_or("no reason"));
        if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(&format!(": {m}"));
        }
        return s;
    }
    if let Some(t) = &state.terminated {
        let mut s = format!(
            "terminated ({}, exit code {})",
            t.reason.as_deref().unwrap_or("no reason"),
            t.exit_code
        );
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(&format!(": {}", m.trim()));
        }
        return s;
    }
    if state.running.is_some() {
        return "running".to_string();
    }
    "no state".to_string()
}

/// A multi-line report on a pod that did not become ready: its summary and its most recent events.
pub fn describe_unready_pod(pod: &Pod, events: &[Event]) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("<unnamed>");
    let mut text = format!("pod {ns}/{name}: {}", pod_summary(pod));
    let mut mine: Vec<&Event> = events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    mine.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let start = mine.len().saturating_sub(8);
    if mine.is_empty() {
        text.push_str("\n  (no events)");
    }
    for e in &mine[start..] {
        text.push_str(&format!(
            "\n  event {} {}: {}",
            e.type_.as_deref().unwrap_or("?"),
            e.reason.as_deref().unwrap_or("?"),
            e.message.as_deref().unwrap_or("").trim()
        ));
    }
    text
}

/// A DaemonSet is ready when its controller has seen the latest spec and every scheduled pod is updated,
/// ready and available.
pub fn daemonset_ready(ds: &DaemonSet) -> Result<(), String> {
    let name = ds.metadata.name.as_deref().unwrap_or("<unnamed>");
    let Some(st) = ds.status.as_ref() else {
        return Err(format!("daemonset {name} has no status yet"));
    };
    let generation = ds.metadata.generation.unwrap_or(0);
    if st.observed_generation.unwrap_or(0) < generation {
        return Err(format!(
            "daemonset {name}: controller has not observed generation {generation} yet"
        ));
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    if desired == 0 {
        return Err(format!("daemonset {name}: no pods scheduled yet"));
    }
    if st.number_ready < desired || updated < desired || available < desired {
        return Err(format!(
            "daemonset {name}: {}/{desired} ready, {updated}/{desired} updated, {available}/{desired} available",
            st.number_ready
        ));
    }
    Ok(())
}

/// A Deployment is ready when its controller has seen the latest spec and all replicas are updated and
/// available (no old replicas left).
pub fn deployment_ready(d: &Deployment) -> Result<(), String> {
    let name = d.metadata.name.as_deref().unwrap_or("<unnamed>");
    let Some(st) = d.status.as_ref() else {
        return Err(format!("deployment {name} has no status yet"));
    };
    let generation = d.metadata.generation.unwrap_or(0);
    if st.observed_generation.unwrap_or(0) < generation {
        return Err(format!(
            "deployment {name}: controller has not observed generation {generation} yet"
        ));
    }
    let want = d.spec.replicas.unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    if updated < want || available < want || ready < want || total > want {
        return Err(format!(
            "deployment {name}: {ready}/{want} ready, {updated}/{want} updated, {available}/{want} available, {total} total"
        ));
    }
    Ok(())
}

/// Every pod listed is Ready and there are at least `want` of them. On failure, the first unready pod.
pub fn pods_ready(pods: &[Pod], want: usize) -> Result<(), Option<&Pod>> {
    if let Some(p) = pods.iter().find(|p| pod_ready(p).is_err()) {
        return Err(Some(p));
    }
    if pods.len() < want { Err(None) } else { Ok(()) }
}

/// A CRD can be used once its `Established` condition is `True`.
pub fn crd_established(crd: &CustomResourceDefinition) -> Result<(), String> {
    let name = crd.metadata.name.as_deref().unwrap_or("<unnamed>");
    let ok = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Established"))
        .is_some_and(|c| c.status == "True");
    if ok {
        Ok(())
    } else {
        Err(format!("CRD {name} is not Established"))
    }
}

/// A node is ready when its `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> Result<(), String> {
    let name = node.metadata.name.as_deref().unwrap_or("<unnamed>");
    let cond = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    match cond {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!(
            "node {name} is not Ready ({}: {})",
            c.reason.as_deref().unwrap_or("no reason"),
            c.message.as_deref().unwrap_or("")
        )),
        None => Err(format!("node {name} has no Ready condition yet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSetStatus, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{
        ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, ObjectReference,
        PodCondition, PodStatus,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            generation: Some(2),
            ..Default::default()
        }
    }

    fn pod(name: &str, phase: &str, ready: &str) -> Pod {
        Pod {
            metadata: meta(name),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    reason: (ready != "True").then(|| "ContainersNotReady".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn running_pod_without_ready_condition_true_is_not_ready() {
        let p = pod("api-1", "Running", "False");
        let err = pod_ready(&p).unwrap_err();
        assert!(
            err.contains("api-1") && err.contains("Ready=False ContainersNotReady"),
            "{err}"
        );
        assert!(pod_ready(&pod("api-1", "Running", "True")).is_ok());
    }

    #[test]
    fn terminating_pod_is_not_ready_even_if_ready_condition_is_true() {
        let mut p = pod("api-1", "Running", "True");
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(pod_ready(&p).unwrap_err().contains("terminating"));
    }

    #[test]
    fn unready_pod_report_names_pod_container_state_and_events() {
        let mut p = pod("kafka-0", "Pending", "False");
        let status = p.status.as_mut().unwrap();
        status.container_statuses = Some(vec![ContainerStatus {
            name: "kafka".into(),
            ready: false,
            restart_count: 3,
            image: "apache/kafka:3.9.1".into(),
            image_id: String::new(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some("back-off 40s".into()),
                }),
                ..Default::default()
            }),
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    reason: Some("Error".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let event = Event {
            involved_object: ObjectReference {
                name: Some("kafka-0".into()),
                ..Default::default()
            },
            reason: Some("BackOff".into()),
            type_: Some("Warning".into()),
            message: Some("Back-off restarting failed container".into()),
            ..Default::default()
        };
        let other = Event {
            involved_object: ObjectReference {
                name: Some("other".into()),
                ..Default::default()
            },
            reason: Some("Pulled".into()),
            ..Default::default()
        };
        let text = describe_unready_pod(&p, &[event, other]);
        assert!(text.starts_with("pod ns/kafka-0: phase Pending"), "{text}");
        assert!(
            text.contains("container kafka: waiting (CrashLoopBackOff): back-off 40s"),
            "{text}"
        );
        assert!(
            text.contains("3 restarts, last terminated (Error, exit code 1)"),
            "{text}"
        );
        assert!(
            text.contains("event Warning BackOff: Back-off restarting failed container"),
            "{text}"
        );
        assert!(!text.contains("Pulled"), "{text}");
    }

    fn ds(desired: i32, ready: i32, updated: i32, observed: i64) -> DaemonSet {
        DaemonSet {
            metadata: meta("cilium"),
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                number_ready: ready,
                updated_number_scheduled: Some(updated),
                number_available: Some(ready),
                observed_generation: Some(observed),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn daemonset_ready_needs_every_scheduled_pod_updated_and_ready() {
        assert!(daemonset_ready(&ds(3, 3, 3, 2)).is_ok());
        assert!(
            daemonset_ready(&ds(3, 2, 3, 2))
                .unwrap_err()
                .contains("2/3 ready")
        );
        assert!(
            daemonset_ready(&ds(3, 3, 1, 2))
                .unwrap_err()
                .contains("1/3 updated")
        );
        assert!(
            daemonset_ready(&ds(3, 3, 3, 1))
                .unwrap_err()
                .contains("generation 2")
        );
        assert!(
            daemonset_ready(&ds(0, 0, 0, 2))
                .unwrap_err()
                .contains("no pods scheduled")
        );
    }

    fn deploy(want: i32, ready: i32, total: i32) -> Deployment {
        Deployment {
            metadata: meta("api"),
            spec: DeploymentSpec {
                replicas: Some(want),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(total),
                ready_replicas: Some(ready),
                updated_replicas: Some(ready),
                available_replicas: Some(ready),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn deployment_ready_needs_all_replicas_and_no_old_ones() {
        assert!(deployment_ready(&deploy(1, 1, 1)).is_ok());
        assert!(
            deployment_ready(&deploy(1, 0, 1))
                .unwrap_err()
                .contains("0/1 ready")
        );
        assert!(
            deployment_ready(&deploy(1, 1, 2))
                .unwrap_err()
                .contains("2 total")
        );
    }

    #[test]
    fn pods_ready_reports_the_first_unready_pod_or_missing_pods() {
        let pods = vec![pod("a", "Running", "True"), pod("b", "Running", "False")];
        let err = pods_ready(&pods, 2).unwrap_err().unwrap();
        assert_eq!(err.metadata.name.as_deref(), Some("b"));
        assert!(pods_ready(&pods[..1], 2).unwrap_err().is_none());
        assert!(pods_ready(&pods[..1], 1).is_ok());
    }

    #[test]
    fn crd_is_usable_only_when_established() {
        let mut crd = CustomResourceDefinition {
            metadata: meta("ciliumnetworkpolicies.cilium.io"),
            ..Default::default()
        };
        assert!(crd_established(&crd).is_err());
        crd.status = Some(CustomResourceDefinitionStatus {
            conditions: Some(vec![CustomResourceDefinitionCondition {
                type_: "Established".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(crd_established(&crd).is_ok());
    }
}
