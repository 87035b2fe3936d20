//! `harness down`: remove what `up` created, then check that nothing is left.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use tokio::time::Instant;

use crate::client::{api_message, cilium_clusterwide_network_policy, is_not_found, resource_for};
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
        Mode::Lab => down_lab(root, &SystemRunner, progress).await,
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

/// kind mode: outside containers (those recorded and those labelled as this test bed's), the kind cluster
/// (with everything in it, the lease included) if the harness created it, the network if the harness created
/// it; then `kind get clusters`, `docker ps`, `docker network inspect`.
/// Lab mode: `scripts/lab.sh down` removes the processes, network namespaces, links, mounts and Cilium's
/// run directory, then lists what is left (see [`crate::lab::down_lab`]).
pub async fn down_lab(
    root: &Path,
    runner: &dyn CommandRunner,
    progress: &dyn Progress,
) -> DownReport {
    let mut report = DownReport::default();
    let result = step(
        progress,
        "Remove the lab (processes, network namespaces, links, mounts)",
        async {
            crate::lab::down_lab(root, runner)
                .await
                .map(|()| ((), None))
        },
    )
    .await;
    match result {
        Ok(()) => report.removed.push("the lab".to_string()),
        Err(e) => report.remaining.push(e),
    }
    report
}

pub async fn down_kind(
    state: &State,
    runner: &dyn CommandRunner,
    tools: &Tools,
    progress: &dyn Progress,
) -> DownReport {
    let mut report = DownReport::default();
    let mut containers = outside_containers(state);
    // Containers labelled as this test bed's were all started by `up`, also those it had not recorded yet
    // when it failed part way (an outside host started, the next one failed).
    match runner
        .run(&plan::containers_of(tools, &state.cluster_name), None)
        .await
    {
        Ok(out) if out.success() => {
            for name in out
                .stdout_text()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                if !containers.iter().any(|c| c == name) {
                    containers.push(name.to_string());
                }
            }
        }
        // Docker not answering: the recorded containers are still removed, and the final check says
        // what is left.
        Ok(_) | Err(_) => {}
    }
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
    let (client, _) =
        crate::client::connect_state(state)
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
            kubeconfig: None,
            lab: None,
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
                argv(&[
                    "docker",
                    "ps",
                    "--all",
                    "--filter",
                    "label=harness/cluster=cnp-harness",
                    "--format",
                    "{{.Names}}"
                ]),
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

    fn repo_root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// A fake runner on which `up` gets past its prerequisites (the pinned tool versions answer).
    fn prerequisites_met() -> FakeRunner {
        let pins = crate::prereq::Pins::load(&repo_root().join("scripts/install-tools.sh"))
            .expect("the installer pins its tools");
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "version"],
            CommandOutput::ok(format!("kind {} go1.25 linux/amd64\n", pins.kind)),
        );
        fake.on(&["helm", "version"], CommandOutput::ok(pins.helm.clone()));
        fake.on(
            &["kubectl", "version"],
            CommandOutput::ok(format!("Client Version: {}\n", pins.kubectl)),
        );
        fake
    }

    /// `up` creates the network, then fails to create the kind cluster. `down` removes the network, and
    /// neither deletes a cluster nor removes a container the harness never made.
    #[tokio::test]
    async fn down_after_up_failed_at_the_cluster_removes_only_the_network_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("state.json");
        let fake = prerequisites_met();
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(
                1,
                "Error response from daemon: network harness-kind not found",
            ),
        );
        fake.on(&["kind", "get", "clusters"], CommandOutput::ok(""));
        fake.on(
            &["kind", "create", "cluster"],
            CommandOutput::failed(1, "ERROR: failed to create cluster: node(s) already exist"),
        );
        let opts = crate::up::UpOptions {
            root: repo_root(),
            state_file: state_file.clone(),
            target: crate::up::Target::Kind(crate::up::KindOptions {
                cluster_name: "cnp-harness".into(),
                cilium_version: "1.19.8".into(),
                cilium_chart: None,
                reuse: false,
            }),
            wait_timeout: Duration::from_secs(5),
        };
        let err = crate::up::up_with(&opts, &fake, &Tools::default(), &NoProgress)
            .await
            .expect_err("up fails at the cluster");
        assert!(
            err.to_string().contains("failed to create cluster"),
            "{err}"
        );
        assert!(
            fake.argvs()
                .iter()
                .any(|a| a.starts_with(&argv(&["docker", "network", "create"]))),
            "up created the network: {:?}",
            fake.argvs()
        );
        let state = State::load(&state_file).expect("up saved what it had created");
        assert_eq!(
            state.created,
            vec![Created::DockerNetwork {
                name: "harness-kind".into()
            }]
        );
        assert_eq!(state.outside, OutsideHosts::NotStarted);

        let teardown = FakeRunner::new();
        teardown.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "Error: No such network: harness-kind"),
        );
        let report = down_kind(&state, &teardown, &Tools::default(), &NoProgress).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.removed, vec!["Docker network harness-kind"]);
        let ps = argv(&[
            "docker",
            "ps",
            "--all",
            "--filter",
            "label=harness/cluster=cnp-harness",
            "--format",
            "{{.Names}}",
        ]);
        assert_eq!(
            teardown.argvs(),
            vec![
                ps.clone(),
                argv(&["docker", "network", "rm", "harness-kind"]),
                ps,
                argv(&["docker", "network", "inspect", "harness-kind"]),
            ]
        );
    }

    /// `up` started the first outside host, then failed on the second, before recording either. `down`
    /// still removes the one started (it carries the test bed's label), with the cluster and network.
    #[tokio::test]
    async fn down_after_up_failed_starting_outside_hosts_removes_those_it_started() {
        let fixture = crate::config::StackFixture::load(&repo_root().join("fixtures/stack.yaml"))
            .expect("stack fixture");
        let first = fixture.outside.hosts[0].name.clone();
        let second = fixture.outside.hosts[1].name.clone();
        let started = FakeRunner::new();
        started.on(
            &[
                "docker",
                "run",
                "--detach",
                "--name",
                &format!("cnp-harness-outside-{second}"),
            ],
            CommandOutput::failed(
                125,
                "docker: Error response from daemon: Address already in use.",
            ),
        );
        let err = crate::up::start_outside_hosts(
            &started,
            &Tools::default(),
            "cnp-harness",
            &fixture.outside,
            "harness-agent:dev",
            &[],
        )
        .await
        .expect_err("the second host fails");
        assert!(err.to_string().contains("Address already in use"), "{err}");
        // What `up` has recorded at that point: the network and cluster, no outside host yet.
        let mut state = kind_state(true);
        state
            .created
            .retain(|c| !matches!(c, Created::Container { .. }));
        state.outside = OutsideHosts::NotStarted;

        let lb = format!("cnp-harness-outside-{first}");
        let teardown = FakeRunner::new();
        // Docker lists the container that was started (once: it is gone when the check looks again).
        teardown.once(&["docker", "ps"], CommandOutput::ok(format!("{lb}\n")));
        teardown.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "Error: No such network: harness-kind"),
        );
        let report = down_kind(&state, &teardown, &Tools::default(), &NoProgress).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            report.removed,
            vec![
                format!("container {lb}"),
                "kind cluster cnp-harness".to_string(),
                "Docker network harness-kind".to_string()
            ]
        );
        assert!(
            !teardown
                .argvs()
                .iter()
                .any(|a| a.iter().any(|w| w.ends_with(&format!("outside-{second}")))),
            "the host that never started is not touched: {:?}",
            teardown.argvs()
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
