//! `harness down`: remove what `up` created, then check that nothing is left.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use tokio::time::Instant;

use crate::client::{
    api_message, cilium_clusterwide_network_policy, connect, is_not_found, resource_for,
};
use crate::command::{CommandRunner, SystemRunner, Tools, output_tail};
use crate::lock::{self, DEFAULT_LEASE_DURATION, LockError};
use crate::plan;
use crate::progress::{Progress, step};
use crate::state::{Created, Mode, OutsideHosts, State};
use crate::wait::{Backoff, Check, poll_until};
use crate::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// What `down` did and what it found left afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    pub removed: Vec<String>,
    /// Still present after removal (each with what was seen); empty when the test bed is gone.
    pub remaining: Vec<String>,
    /// Removal steps that failed (the item is usually also in `remaining`).
    pub errors: Vec<String>,
}

impl DownReport {
    pub fn is_clean(&self) -> bool {
        self.remaining.is_empty() && self.errors.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownError {
    #[error("cannot reach kube context {context}: {message}")]
    Connect { context: String, message: String },
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Removes the test bed of `state`; deletes the state file when nothing is left.
pub async fn down(
    state: &State,
    state_file: &Path,
    root: &Path,
    progress: &dyn Progress,
) -> Result<DownReport, DownError> {
    let report = match state.mode {
        Mode::Kind => down_kind(state, &SystemRunner, &Tools::for_repo(root), progress).await,
        Mode::Existing => down_existing(state, progress).await?,
    };
    if report.is_clean() {
        let _ = std::fs::remove_file(state_file);
    }
    Ok(report)
}

fn outside_containers(state: &State) -> Vec<String> {
    let mut names: Vec<String> = state
        .created
        .iter()
        .filter_map(|c| match c {
            Created::Container { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if let OutsideHosts::Started { hosts, .. } = &state.outside {
        for h in hosts {
            if !names.contains(&h.container) {
                names.push(h.container.clone());
            }
        }
    }
    names
}

/// kind mode: outside containers, the kind cluster (with everything in it, the lease included), the
/// network if the harness created it; then `kind get clusters`, `docker ps`, `docker network inspect`.
pub async fn down_kind(
    state: &State,
    runner: &dyn CommandRunner,
    tools: &Tools,
    progress: &dyn Progress,
) -> DownReport {
    let mut report = DownReport::default();
    let containers = outside_containers(state);
    let cluster = state.created.iter().find_map(|c| match c {
        Created::KindCluster { name } => Some(name.clone()),
        _ => None,
    });
    let network = state.created.iter().find_map(|c| match c {
        Created::DockerNetwork { name } => Some(name.clone()),
        _ => None,
    });

    let _ = step(progress, "Remove the outside hosts", async {
        for c in &containers {
            run_logged(
                runner,
                &plan::container_remove(tools, c),
                &format!("container {c}"),
                &mut report,
            )
            .await;
        }
        Ok::<_, String>(((), containers.is_empty().then(|| "none".to_string())))
    })
    .await;
    let _ = step(progress, "Delete the kind cluster", async {
        if let Some(name) = &cluster {
            run_logged(
                runner,
                &plan::kind_delete(tools, name),
                &format!("kind cluster {name}"),
                &mut report,
            )
            .await;
        }
        Ok::<_, String>((
            (),
            cluster
                .is_none()
                .then(|| "not created by the harness".to_string()),
        ))
    })
    .await;
    let _ = step(progress, "Remove the Docker network", async {
        if let Some(name) = &network {
            run_logged(
                runner,
                &plan::network_remove(tools, name),
                &format!("Docker network {name}"),
                &mut report,
            )
            .await;
        }
        Ok::<_, String>((
            (),
            network
                .is_none()
                .then(|| "not created by the harness, left in place".to_string()),
        ))
    })
    .await;

    let _ = step(progress, "Check nothing is left", async {
        if let Some(name) = &cluster {
            match runner.run(&plan::kind_get_clusters(tools), None).await {
                Ok(out) if plan::parse_kind_clusters(&out).contains(name) => {
                    report.remaining.push(format!("kind cluster {name}"))
                }
                Ok(_) => {}
                Err(e) => report.errors.push(format!("checking kind clusters: {e}")),
            }
        }
        match runner
            .run(&plan::containers_of(tools, &state.cluster_name), None)
            .await
        {
            Ok(out) => {
                for n in out
                    .stdout_text()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                {
                    report.remaining.push(format!("container {n}"));
                }
            }
            Err(e) => report.errors.push(format!("checking containers: {e}")),
        }
        if let Some(name) = &network {
            match runner.run(&plan::network_inspect(tools, name), None).await {
                Ok(out) if out.success() => report.remaining.push(format!("Docker network {name}")),
                Ok(_) => {}
                Err(e) => report.errors.push(format!("checking network {name}: {e}")),
            }
        }
        if report.remaining.is_empty() {
            Ok(((), None))
        } else {
            Err(format!("left: {}", report.remaining.join(", ")))
        }
    })
    .await;
    report
}

async fn run_logged(
    runner: &dyn CommandRunner,
    cmd: &crate::command::CommandSpec,
    what: &str,
    report: &mut DownReport,
) {
    match runner.run(cmd, None).await {
        Ok(out) if out.success() => report.removed.push(what.to_string()),
        Ok(out) => {
            let tail = output_tail(&out, 3);
            let text = tail.trim().to_lowercase();
            // Already gone is not a failure of `down`.
            if text.contains("no such") || text.contains("not found") {
                report.removed.push(format!("{what} (already gone)"));
            } else {
                report
                    .errors
                    .push(format!("removing {what}: {}", tail.trim()));
            }
        }
        Err(e) => report.errors.push(format!("removing {what}: {e}")),
    }
}

/// Existing-cluster mode: the harness's clusterwide policies, then every object `up` created (namespaces
/// last, awaited until gone), then the lease; then a check that each is absent.
async fn down_existing(state: &State, progress: &dyn Progress) -> Result<DownReport, DownError> {
    let (client, _) = connect(Some(&state.kube_context))
        .await
        .map_err(|e| DownError::Connect {
            context: state.kube_context.clone(),
            message: e.to_string(),
        })?;
    // Refuse to tear down under another run's feet.
    lock::acquire(&client, &state.lock_holder, DEFAULT_LEASE_DURATION).await?;
    let mut report = DownReport::default();

    let _ = step(
        progress,
        "Delete the harness's clusterwide policies",
        async {
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &cilium_clusterwide_network_policy());
            let selector =
                ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"));
            match api.list(&selector).await {
                Ok(list) => {
                    for p in list.items {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        match api.delete(&name, &DeleteParams::default()).await {
                            Ok(_) => report
                                .removed
                                .push(format!("CiliumClusterwideNetworkPolicy {name}")),
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => report
                                .errors
                                .push(format!("deleting CCNP {name}: {}", api_message(&e))),
                        }
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => report
                    .errors
                    .push(format!("listing CCNPs: {}", api_message(&e))),
            }
            Ok::<_, String>(((), None))
        },
    )
    .await;

    let objects: Vec<&Created> = state
        .created
        .iter()
        .filter(|c| matches!(c, Created::Object { .. }))
        .collect();
    let _ = step(
        progress,
        &format!("Delete the {} objects the harness created", objects.len()),
        async {
            for c in objects.iter().rev() {
                let Created::Object {
                    api_version,
                    kind,
                    namespace,
                    name,
                } = c
                else {
                    continue;
                };
                let what = describe(kind, namespace.as_deref(), name);
                let Some(api) = api_for(&client, api_version, kind, namespace.as_deref()) else {
                    report.errors.push(format!("{what}: unknown kind"));
                    continue;
                };
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => report.removed.push(what),
                    Err(e) if is_not_found(&e) => {
                        report.removed.push(format!("{what} (already gone)"))
                    }
                    Err(e) => report
                        .errors
                        .push(format!("deleting {what}: {}", api_message(&e))),
                }
            }
            Ok::<_, String>(((), None))
        },
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(300);
    let _ = step(progress, "Check nothing is left", async {
        for c in objects.iter() {
            let Created::Object {
                api_version,
                kind,
                namespace,
                name,
            } = c
            else {
                continue;
            };
            let Some(api) = api_for(&client, api_version, kind, namespace.as_deref()) else {
                continue;
            };
            let what = describe(kind, namespace.as_deref(), name);
            let gone = poll_until(
                &format!("{what} to be gone"),
                deadline,
                Backoff::default(),
                || async {
                    match api.get_opt(name).await {
                        Ok(None) => Check::Ready(()),
                        Ok(Some(o)) if o.metadata.deletion_timestamp.is_some() => {
                            Check::NotYet("terminating".into())
                        }
                        Ok(Some(_)) => Check::NotYet("still present".into()),
                        Err(e) => Check::NotYet(api_message(&e)),
                    }
                },
            )
            .await;
            if let Err(e) = gone {
                report.remaining.push(format!("{what} ({})", e.last));
            }
        }
        if report.remaining.is_empty() {
            Ok(((), None))
        } else {
            Err(format!("left: {}", report.remaining.join(", ")))
        }
    })
    .await;

    if report.is_clean() {
        lock::release(&client, &state.lock_holder).await?;
        report.removed.push(format!(
            "lease {}/{}",
            lock::LEASE_NAMESPACE,
            lock::LEASE_NAME
        ));
    }
    Ok(report)
}

fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn api_for(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Option<Api<DynamicObject>> {
    let (ar, namespaced) = resource_for(api_version, kind)?;
    Some(match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (true, None) => return None,
        (false, _) => Api::all_with(client.clone(), &ar),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandOutput, fake::FakeRunner};
    use crate::progress::NoProgress;
    use crate::state::{OutsideHostState, STATE_VERSION};

    fn kind_state(network_created: bool) -> State {
        let mut created = vec![Created::KindCluster {
            name: "cnp-harness".into(),
        }];
        if network_created {
            created.insert(
                0,
                Created::DockerNetwork {
                    name: "harness-kind".into(),
                },
            );
        }
        created.push(Created::Container {
            name: "cnp-harness-outside-lb".into(),
        });
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
                hosts: vec![
                    OutsideHostState {
                        name: "lb".into(),
                        ip: "10.0.0.10".parse().unwrap(),
                        container: "cnp-harness-outside-lb".into(),
                    },
                    OutsideHostState {
                        name: "partner".into(),
                        ip: "10.20.30.10".parse().unwrap(),
                        container: "cnp-harness-outside-partner".into(),
                    },
                ],
            },
            lock_holder: "me".into(),
            created,
        }
    }

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn down_removes_containers_cluster_and_network_then_checks_each() {
        let fake = FakeRunner::new();
        fake.on(&["kind", "get", "clusters"], CommandOutput::ok("other\n"));
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "Error: No such network: harness-kind"),
        );
        let report = down_kind(&kind_state(true), &fake, &Tools::default(), &NoProgress).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            fake.argvs(),
            vec![
                argv(&["docker", "rm", "--force", "cnp-harness-outside-lb"]),
                argv(&["docker", "rm", "--force", "cnp-harness-outside-partner"]),
                argv(&["kind", "delete", "cluster", "--name", "cnp-harness"]),
                argv(&["docker", "network", "rm", "harness-kind"]),
                argv(&["kind", "get", "clusters"]),
                argv(&[
                    "docker",
                    "ps",
                    "--all",
                    "--filter",
                    "label=harness/cluster=cnp-harness",
                    "--format",
                    "{{.Names}}"
                ]),
                argv(&["docker", "network", "inspect", "harness-kind"]),
            ]
        );
    }

    #[tokio::test]
    async fn down_reports_what_remains() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "get", "clusters"],
            CommandOutput::ok("cnp-harness\n"),
        );
        fake.on(
            &["docker", "ps"],
            CommandOutput::ok("cnp-harness-outside-lb\n"),
        );
        fake.on(
            &["docker", "network", "rm"],
            CommandOutput::failed(1, "error: network harness-kind has active endpoints"),
        );
        fake.on(&["docker", "network", "inspect"], CommandOutput::ok("[{}]"));
        let report = down_kind(&kind_state(true), &fake, &Tools::default(), &NoProgress).await;
        assert!(!report.is_clean());
        assert_eq!(
            report.remaining,
            vec![
                "kind cluster cnp-harness",
                "container cnp-harness-outside-lb",
                "Docker network harness-kind"
            ]
        );
        assert!(
            report.errors[0].contains("active endpoints"),
            "{:?}",
            report.errors
        );
    }

    #[tokio::test]
    async fn a_network_the_harness_did_not_create_is_left_alone() {
        let fake = FakeRunner::new();
        let report = down_kind(&kind_state(false), &fake, &Tools::default(), &NoProgress).await;
        assert!(report.is_clean(), "{report:?}");
        assert!(
            !fake
                .argvs()
                .iter()
                .any(|a| a[..2] == argv(&["docker", "network"]))
        );
    }

    #[tokio::test]
    async fn already_removed_items_are_not_errors() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "rm"],
            CommandOutput::failed(
                1,
                "Error response from daemon: No such container: cnp-harness-outside-lb",
            ),
        );
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "not found"),
        );
        let report = down_kind(&kind_state(true), &fake, &Tools::default(), &NoProgress).await;
        assert!(report.is_clean(), "{report:?}");
        assert!(report.removed[0].ends_with("(already gone)"));
    }
}
