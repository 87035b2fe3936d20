//! `harness up`: the test bed from nothing (kind mode) or on the current cluster (existing mode).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use crate::client::{api_message, connect};
use crate::cluster::{
    ClusterError, POLICY_CRDS, daemonset_exists, deployment_exists, detect_cilium,
    wait_crd_established, wait_daemonset, wait_deployment, wait_nodes_ready, wait_stack_ready,
};
use crate::command::{CommandError, CommandRunner, SystemRunner, Tools, output_tail, run_checked};
use crate::config::{
    CiliumValues, ConfigError, KindClusterConfig, Layout, OutsideConfig, StackFixture,
    relay_address,
};
use crate::lock::{DEFAULT_LEASE_DURATION, LockError, LockGuard, new_holder_identity};
use crate::manifests::{self, ManifestError};
use crate::plan::{self, CiliumChart, NetworkAction, NodeRoute};
use crate::prereq::{Pins, Prerequisites, check_tools};
use crate::progress::{Progress, step};
use crate::state::{
    Created, Mode, OutsideHostState, OutsideHosts, STATE_VERSION, State, StateError,
};
use crate::{AGENT_IMAGE, DEFAULT_CILIUM_VERSION, DEFAULT_CLUSTER_NAME};

/// Where Cilium goes on a kind cluster.
pub const CILIUM_NAMESPACE: &str = "kube-system";

/// Options of [`up`].
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The repository root (kind/, fixtures/, workloads/, .tools/bin).
    pub root: PathBuf,
    /// Where to write the state (default `<root>/.harness/state.json`).
    pub state_file: PathBuf,
    pub target: Target,
    /// The bound of each wait (Cilium ready, stack ready).
    pub wait_timeout: Duration,
}

/// Which cluster to set up.
#[derive(Clone, Debug)]
pub enum Target {
    Kind(KindOptions),
    Existing(ExistingOptions),
    /// The lab on this Linux host (see [`crate::lab`]).
    Lab(crate::lab::LabOptions),
}

#[derive(Clone, Debug)]
pub struct KindOptions {
    pub cluster_name: String,
    /// Chart version, no leading `v` (e.g. `1.19.8`).
    pub cilium_version: String,
    /// A chart reference or path for Helm; `None` = chart `cilium` from https://helm.cilium.io.
    pub cilium_chart: Option<String>,
    /// Keep a kind cluster of that name if it exists (otherwise one the harness created is recreated).
    pub reuse: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ExistingOptions {
    /// The kube context; `None` = the current context.
    pub context: Option<String>,
    /// The agent image as the cluster can pull it (e.g. pushed to a registry). `None` keeps
    /// `harness-agent:dev` with `imagePullPolicy: Never` (the nodes must already have it).
    pub agent_image: Option<String>,
}

impl UpOptions {
    /// kind mode with the defaults: cluster `cnp-harness`, Cilium [`DEFAULT_CILIUM_VERSION`], no reuse.
    pub fn kind(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            state_file: Layout::new(&root).state_file(),
            root,
            target: Target::Kind(KindOptions {
                cluster_name: DEFAULT_CLUSTER_NAME.into(),
                cilium_version: DEFAULT_CILIUM_VERSION.into(),
                cilium_chart: None,
                reuse: false,
            }),
            wait_timeout: Duration::from_secs(600),
        }
    }

    /// Existing-cluster mode on `context` (the current one when `None`).
    pub fn existing(root: impl Into<PathBuf>, context: Option<String>) -> Self {
        let root = root.into();
        Self {
            state_file: Layout::new(&root).state_file(),
            root,
            target: Target::Existing(ExistingOptions {
                context,
                agent_image: None,
            }),
            wait_timeout: Duration::from_secs(600),
        }
    }
}

/// Why `up` failed. Whatever was created before the failure is in the state file, so `down` removes it.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "Docker is not available: {0}\n(install Docker and make sure `docker info` works for this user)"
    )]
    DockerUnavailable(String),
    #[error("the test bed cannot be set up on this machine; nothing was changed:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Prerequisites(Vec<String>),
    #[error("configuration problems:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<String>),
    #[error(transparent)]
    ConfigFile(#[from] ConfigError),
    #[error("Docker network: {0}")]
    Network(String),
    #[error(
        "a kind cluster named {0} already exists and was not created by this checkout's harness: pass --reuse to use it, or delete it (`kind delete cluster --name {0}`)"
    )]
    ClusterExists(String),
    #[error(
        "Cilium {installed} is installed but {wanted} was asked for: use `harness upgrade` (or `down` and `up` again)"
    )]
    CiliumVersion { installed: String, wanted: String },
    #[error(
        "no Cilium found on kube context {0} (no DaemonSet labelled k8s-app=cilium): existing-cluster mode needs a cluster that already runs Cilium"
    )]
    NoCilium(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Builds the test bed (see the crate's README for the steps) and writes the state file.
///
/// Idempotent: every step looks before it acts (an existing network with the right subnet, cluster, Cilium
/// release of the same version, objects, outside hosts are kept or brought to the wanted state).
pub async fn up(opts: &UpOptions, progress: &dyn Progress) -> Result<State, UpError> {
    let tools = Tools::for_repo(&opts.root);
    up_with(opts, &SystemRunner, &tools, progress).await
}

/// [`up`] with an explicit command runner and tool locations.
pub async fn up_with(
    opts: &UpOptions,
    runner: &dyn CommandRunner,
    tools: &Tools,
    progress: &dyn Progress,
) -> Result<State, UpError> {
    match &opts.target {
        Target::Kind(k) => up_kind(opts, k, runner, tools, progress).await,
        Target::Existing(e) => up_existing(opts, e, progress).await,
        Target::Lab(l) => crate::lab::up_lab(opts, l, runner, progress).await,
    }
}

/// The configuration files, loaded and cross-checked.
pub struct Configs {
    pub fixture: StackFixture,
    pub kind: KindClusterConfig,
    pub values: CiliumValues,
}

/// Loads fixtures/stack.yaml, kind/cluster.yaml and kind/cilium-values.yaml and lists every problem.
pub fn load_configs(layout: &Layout) -> Result<Configs, UpError> {
    let fixture = StackFixture::load(&layout.stack_fixture())?;
    let kind = KindClusterConfig::load(&layout.kind_config())?;
    let values = CiliumValues::load(&layout.cilium_values())?;
    let mut problems: Vec<String> = kind
        .problems(&fixture.outside.network)
        .into_iter()
        .map(|p| format!("kind/cluster.yaml: {p}"))
        .collect();
    problems.extend(
        values
            .problems()
            .into_iter()
            .map(|p| format!("kind/cilium-values.yaml: {p}")),
    );
    if problems.is_empty() {
        Ok(Configs {
            fixture,
            kind,
            values,
        })
    } else {
        Err(UpError::Config(problems))
    }
}

async fn up_kind(
    opts: &UpOptions,
    k: &KindOptions,
    runner: &dyn CommandRunner,
    tools: &Tools,
    progress: &dyn Progress,
) -> Result<State, UpError> {
    let layout = Layout::new(&opts.root);
    let configs = step(progress, "Check configuration", async {
        load_configs(&layout).map(|c| (c, None))
    })
    .await?;
    let net = &configs.fixture.outside.network;
    let previous = previous_state(
        &opts.state_file,
        Mode::Kind,
        &plan::kind_context(&k.cluster_name),
    )?;
    let mut state = State {
        version: STATE_VERSION,
        mode: Mode::Kind,
        cluster_name: k.cluster_name.clone(),
        kube_context: plan::kind_context(&k.cluster_name),
        cilium_version: Some(k.cilium_version.clone()),
        cilium_namespace: CILIUM_NAMESPACE.into(),
        agent_image: AGENT_IMAGE.into(),
        relay_address: Some(relay_address(Some(&configs.kind), Some(&configs.values))),
        // Not "not available": that is what an existing cluster records, and it makes scenarios not applicable.
        outside: OutsideHosts::NotStarted,
        lock_holder: previous
            .as_ref()
            .map(|p| p.lock_holder.clone())
            .unwrap_or_else(new_holder_identity),
        created: previous
            .as_ref()
            .map(|p| p.created.clone())
            .unwrap_or_default(),
        kubeconfig: None,
        lab: None,
    };

    let prereqs = step(
        progress,
        "Check Docker, kind, helm and kubectl",
        check_prerequisites(runner, tools, &opts.root),
    )
    .await?;
    step(progress, &format!("Docker network {}", net.name), async {
        let action = prepare_network(runner, tools, net).await?;
        let note = match action {
            NetworkAction::Create => {
                state.record(Created::DockerNetwork {
                    name: net.name.clone(),
                });
                None
            }
            NetworkAction::Reuse { ours } => {
                if ours {
                    state.record(Created::DockerNetwork {
                        name: net.name.clone(),
                    });
                }
                Some(format!("exists with subnet {}, reused", net.subnet))
            }
        };
        state.save(&opts.state_file)?;
        Ok::<_, UpError>(((), note))
    })
    .await?;

    let created_by_us = previous.as_ref().is_some_and(|p| {
        p.created.contains(&Created::KindCluster {
            name: k.cluster_name.clone(),
        })
    });
    step(
        progress,
        &format!("kind cluster {}", k.cluster_name),
        async {
            let action =
                ensure_kind_cluster(runner, tools, &layout.kind_config(), k, net, created_by_us)
                    .await?;
            // A cluster only reused is not the harness's to delete (unless an earlier `up` made it).
            if action != ClusterAction::Reused {
                state.record(Created::KindCluster {
                    name: k.cluster_name.clone(),
                });
            }
            state.save(&opts.state_file)?;
            Ok::<_, UpError>(((), action.note()))
        },
    )
    .await?;

    let (client, _) = crate::client::connect_state(&state)
        .await
        .map_err(|e| UpError::Other(e.to_string()))?;
    let _lock = LockGuard::acquire(&client, &state.lock_holder, DEFAULT_LEASE_DURATION).await?;

    step(
        progress,
        &format!("Install Cilium {}", k.cilium_version),
        async {
            let note = install_cilium(runner, tools, &layout, k, &state.kube_context, net).await?;
            if note.is_none() {
                state.record(Created::HelmRelease {
                    name: plan::CILIUM_RELEASE.into(),
                    namespace: CILIUM_NAMESPACE.into(),
                });
            }
            state.save(&opts.state_file)?;
            Ok::<_, UpError>(((), note))
        },
    )
    .await?;

    let deadline = Instant::now() + opts.wait_timeout;
    step(
        progress,
        "Wait for nodes, Cilium agents, Envoy, operator, Hubble Relay and policy CRDs",
        async {
            wait_cilium_ready(
                &client,
                CILIUM_NAMESPACE,
                Some(configs.kind.nodes.len()),
                true,
                deadline,
            )
            .await
            .map(|_| ((), None))
        },
    )
    .await?;

    step(
        progress,
        &format!(
            "Build {AGENT_IMAGE} for {} and load it into kind",
            prereqs.platform
        ),
        load_agent_image(
            runner,
            tools,
            opts,
            &layout,
            &k.cluster_name,
            &prereqs.platform,
        ),
    )
    .await?;

    let stack = manifests::load_dir(&configs.fixture.manifests)?;
    let deployments = manifests::deployments(&stack)?;
    step(
        progress,
        &format!("Deploy the stack ({} objects)", stack.len()),
        async {
            for c in manifests::apply_all(&client, &stack).await? {
                state.record(c);
            }
            state.save(&opts.state_file)?;
            Ok::<_, UpError>(((), None))
        },
    )
    .await?;

    let deadline = Instant::now() + opts.wait_timeout;
    step(
        progress,
        &format!(
            "Wait until every pod of {} deployments is Ready",
            deployments.len()
        ),
        async {
            wait_stack_ready(&client, &deployments, deadline)
                .await
                .map(|_| ((), None))
        },
    )
    .await?;

    step(
        progress,
        "Start the outside hosts and route them to the pods",
        async {
            let nodes: Api<Node> = Api::all(client.clone());
            let nodes = nodes
                .list(&ListParams::default())
                .await
                .map_err(|e| UpError::Other(api_message(&e)))?
                .items;
            let routes = plan::node_routes(&nodes, &net.subnet).map_err(UpError::Other)?;
            let hosts = start_outside_hosts(
                runner,
                tools,
                &k.cluster_name,
                &configs.fixture.outside,
                AGENT_IMAGE,
                &routes,
            )
            .await?;
            for h in &hosts {
                state.record(Created::Container {
                    name: h.container.clone(),
                });
            }
            state.outside = OutsideHosts::Started {
                network: net.name.clone(),
                hosts,
            };
            state.save(&opts.state_file)?;
            Ok::<_, UpError>(((), None))
        },
    )
    .await?;
    Ok(state)
}

/// Builds the agent image for `platform`, saves it to an archive under `.harness/` and loads the archive
/// into the kind cluster's nodes (see [`plan::docker_save`] for why not `kind load docker-image`).
pub async fn load_agent_image(
    runner: &dyn CommandRunner,
    tools: &Tools,
    opts: &UpOptions,
    layout: &Layout,
    cluster: &str,
    platform: &str,
) -> Result<((), Option<String>), UpError> {
    let dir = opts.root.join(".harness");
    std::fs::create_dir_all(&dir)
        .map_err(|e| UpError::Other(format!("creating {}: {e}", dir.display())))?;
    let archive = dir.join("harness-agent-image.tar");
    run_checked(
        runner,
        &plan::docker_build(
            tools,
            &opts.root,
            &layout.dockerfile(),
            AGENT_IMAGE,
            platform,
        ),
        Some(Instant::now() + 3 * opts.wait_timeout),
    )
    .await?;
    run_checked(
        runner,
        &plan::docker_save(tools, AGENT_IMAGE, &archive),
        Some(Instant::now() + opts.wait_timeout),
    )
    .await?;
    let loaded = run_checked(
        runner,
        &plan::kind_load_archive(tools, &archive, cluster),
        Some(Instant::now() + opts.wait_timeout),
    )
    .await;
    // The archive is only a vehicle; a failed load leaves it for inspection.
    if loaded.is_ok() {
        let _ = std::fs::remove_file(&archive);
    }
    loaded?;
    Ok(((), None))
}

/// The state of an earlier `up` of the same test bed (same mode and kube context), if any.
///
/// # Errors
/// A state file of another test bed, or one that cannot be read, is never overwritten: its resources
/// would be forgotten. `harness down` it first.
pub fn previous_state(path: &Path, mode: Mode, context: &str) -> Result<Option<State>, UpError> {
    match State::load(path) {
        Ok(s) if s.mode == mode && s.kube_context == context => Ok(Some(s)),
        Ok(s) => Err(UpError::Other(format!(
            "{} describes another test bed ({:?} on kube context {}): run `harness down` for it first",
            path.display(),
            s.mode,
            s.kube_context
        ))),
        Err(StateError::Missing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Docker must work, and kind, helm and kubectl must be at the versions scripts/install-tools.sh pins.
/// Every problem is listed at once; nothing is changed.
pub async fn check_prerequisites(
    runner: &dyn CommandRunner,
    tools: &Tools,
    root: &Path,
) -> Result<(Prerequisites, Option<String>), UpError> {
    let pins = Pins::load(&root.join("scripts/install-tools.sh"))
        .map_err(|e| UpError::Prerequisites(vec![format!("the pinned tool versions: {e}")]))?;
    let docker = check_docker(runner, tools)
        .await
        .err()
        .map(|e| e.to_string());
    let prereqs = check_tools(runner, tools, &pins, docker)
        .await
        .map_err(UpError::Prerequisites)?;
    let note = format!(
        "kind {}, helm {}, kubectl {}; images for {}",
        pins.kind, pins.helm, pins.kubectl, prereqs.platform
    );
    Ok((prereqs, Some(note)))
}

/// `docker info` must work.
pub async fn check_docker(
    runner: &dyn CommandRunner,
    tools: &Tools,
) -> Result<((), Option<String>), UpError> {
    match runner.run(&plan::docker_info(tools), None).await {
        Ok(out) if out.success() => Ok(((), None)),
        Ok(out) => Err(UpError::DockerUnavailable(
            output_tail(&out, 5).trim().to_string(),
        )),
        Err(e) => Err(UpError::DockerUnavailable(e.to_string())),
    }
}

/// Creates the outside network, or reuses it when it has the same subnet.
pub async fn prepare_network(
    runner: &dyn CommandRunner,
    tools: &Tools,
    net: &crate::config::NetworkConfig,
) -> Result<NetworkAction, UpError> {
    let inspect = runner
        .run(&plan::network_inspect(tools, &net.name), None)
        .await?;
    let action = plan::network_decision(&inspect, net).map_err(UpError::Network)?;
    if action == NetworkAction::Create {
        run_checked(runner, &plan::network_create(tools, net), None).await?;
    }
    Ok(action)
}

/// What happened to the kind cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterAction {
    Created,
    /// An existing cluster the harness had created was deleted and created again.
    Recreated,
    /// An existing cluster was kept (`reuse`).
    Reused,
}

impl ClusterAction {
    fn note(self) -> Option<String> {
        match self {
            ClusterAction::Created => None,
            ClusterAction::Recreated => {
                Some("recreated (pass --reuse to keep an existing cluster)".into())
            }
            ClusterAction::Reused => Some("exists, reused".into()),
        }
    }
}

/// Creates the kind cluster on the outside network, keeps it (`reuse`), or recreates one this harness made
/// (`created_by_us`); refuses to delete any other.
pub async fn ensure_kind_cluster(
    runner: &dyn CommandRunner,
    tools: &Tools,
    config: &Path,
    k: &KindOptions,
    net: &crate::config::NetworkConfig,
    created_by_us: bool,
) -> Result<ClusterAction, UpError> {
    let list = run_checked(runner, &plan::kind_get_clusters(tools), None).await?;
    let exists = plan::parse_kind_clusters(&list).contains(&k.cluster_name);
    let mut action = ClusterAction::Created;
    if exists {
        if k.reuse {
            return Ok(ClusterAction::Reused);
        }
        if !created_by_us {
            return Err(UpError::ClusterExists(k.cluster_name.clone()));
        }
        run_checked(runner, &plan::kind_delete(tools, &k.cluster_name), None).await?;
        action = ClusterAction::Recreated;
    }
    run_checked(
        runner,
        &plan::kind_create(tools, config, &k.cluster_name, &net.name),
        None,
    )
    .await?;
    Ok(action)
}

/// Installs Cilium with Helm unless the same version is already installed.
pub async fn install_cilium(
    runner: &dyn CommandRunner,
    tools: &Tools,
    layout: &Layout,
    k: &KindOptions,
    context: &str,
    net: &crate::config::NetworkConfig,
) -> Result<Option<String>, UpError> {
    let list = run_checked(
        runner,
        &plan::helm_list(tools, context, CILIUM_NAMESPACE),
        None,
    )
    .await?;
    match plan::parse_helm_release_version(&list).map_err(UpError::Other)? {
        Some(v) if v == k.cilium_version => {
            return Ok(Some(format!("Cilium {v} already installed")));
        }
        Some(v) => {
            return Err(UpError::CiliumVersion {
                installed: v,
                wanted: k.cilium_version.clone(),
            });
        }
        None => {}
    }
    helm_cilium(
        runner,
        tools,
        layout,
        &k.cluster_name,
        &k.cilium_version,
        k.cilium_chart.as_deref(),
        context,
        net,
        false,
    )
    .await?;
    Ok(None)
}

/// `helm install|upgrade` of Cilium with the project's values and the control plane's address.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn helm_cilium(
    runner: &dyn CommandRunner,
    tools: &Tools,
    layout: &Layout,
    cluster: &str,
    version: &str,
    chart: Option<&str>,
    context: &str,
    net: &crate::config::NetworkConfig,
    upgrade: bool,
) -> Result<(), UpError> {
    let inspect = run_checked(
        runner,
        &plan::container_inspect(tools, &plan::control_plane_container(cluster)),
        None,
    )
    .await?;
    let api_server_host = plan::container_ip(&inspect, &net.name).map_err(|e| {
        UpError::Other(format!(
            "control plane {}: {e}",
            plan::control_plane_container(cluster)
        ))
    })?;
    let values = layout.cilium_values();
    let chart = CiliumChart {
        version,
        chart,
        values: &values,
        context,
        namespace: CILIUM_NAMESPACE,
        api_server_host,
    };
    run_checked(runner, &plan::helm_cilium(tools, &chart, upgrade), None).await?;
    Ok(())
}

/// Waits for nodes (`expect_nodes`), the agent DaemonSet, Envoy (if deployed separately), the operator,
/// Hubble Relay (`require_relay`, else only if deployed) and the policy CRDs.
pub async fn wait_cilium_ready(
    client: &Client,
    namespace: &str,
    expect_nodes: Option<usize>,
    require_relay: bool,
    deadline: Instant,
) -> Result<(), ClusterError> {
    if let Some(n) = expect_nodes {
        wait_nodes_ready(client, n, deadline).await?;
    }
    wait_daemonset(client, namespace, "cilium", deadline).await?;
    if daemonset_exists(client, namespace, "cilium-envoy").await? {
        wait_daemonset(client, namespace, "cilium-envoy", deadline).await?;
    }
    wait_deployment(client, namespace, "cilium-operator", deadline).await?;
    if require_relay || deployment_exists(client, namespace, "hubble-relay").await? {
        wait_deployment(client, namespace, "hubble-relay", deadline).await?;
    }
    for crd in POLICY_CRDS {
        wait_crd_established(client, crd, deadline).await?;
    }
    Ok(())
}

/// Starts every outside host (recreated, so it runs the current image) and adds a route to every node's pod
/// CIDR via that node.
pub async fn start_outside_hosts(
    runner: &dyn CommandRunner,
    tools: &Tools,
    cluster: &str,
    outside: &OutsideConfig,
    image: &str,
    routes: &[NodeRoute],
) -> Result<Vec<OutsideHostState>, UpError> {
    let mut started = Vec::new();
    for host in &outside.hosts {
        let container = plan::outside_container(cluster, &host.name);
        // Absent is fine: `rm --force` of a missing container only prints an error.
        runner
            .run(&plan::container_remove(tools, &container), None)
            .await?;
        run_checked(
            runner,
            &plan::outside_run(
                tools,
                cluster,
                &outside.network.name,
                &host.name,
                host.ip,
                image,
            ),
            None,
        )
        .await?;
        for route in routes {
            run_checked(runner, &plan::outside_route(tools, &container, route), None).await?;
        }
        started.push(OutsideHostState {
            name: host.name.clone(),
            ip: host.ip,
            container,
        });
    }
    Ok(started)
}

async fn up_existing(
    opts: &UpOptions,
    e: &ExistingOptions,
    progress: &dyn Progress,
) -> Result<State, UpError> {
    let layout = Layout::new(&opts.root);
    let fixture = StackFixture::load(&layout.stack_fixture())?;
    let (client, context) = connect(e.context.as_deref())
        .await
        .map_err(|err| UpError::Other(err.to_string()))?;
    let previous = previous_state(&opts.state_file, Mode::Existing, &context)?;
    let holder = previous
        .as_ref()
        .map(|p| p.lock_holder.clone())
        .unwrap_or_else(new_holder_identity);
    let _lock = step(
        progress,
        &format!("Take the harness lock on {context}"),
        async {
            LockGuard::acquire(&client, &holder, DEFAULT_LEASE_DURATION)
                .await
                .map(|g| (g, None))
        },
    )
    .await?;

    let (cilium_ns, version) = step(progress, "Find Cilium", async {
        match detect_cilium(&client).await? {
            Some((ns, v)) => {
                let note = format!(
                    "Cilium {} in namespace {ns} (left as it is)",
                    v.as_deref().unwrap_or("(unknown version)")
                );
                Ok(((ns, v), Some(note)))
            }
            None => Err(UpError::NoCilium(context.clone())),
        }
    })
    .await?;
    let relay = deployment_exists(&client, &cilium_ns, "hubble-relay").await?;
    let mut state = State {
        version: STATE_VERSION,
        mode: Mode::Existing,
        cluster_name: context.clone(),
        kube_context: context.clone(),
        cilium_version: version,
        cilium_namespace: cilium_ns.clone(),
        agent_image: e.agent_image.clone().unwrap_or_else(|| AGENT_IMAGE.into()),
        relay_address: None,
        outside: OutsideHosts::NotAvailable {
            reason: "existing cluster: the harness starts no hosts outside it, so scenarios from outside hosts are not applicable".into(),
        },
        lock_holder: holder.clone(),
        created: previous.map(|p| p.created).unwrap_or_default(),
        kubeconfig: None,
        lab: None,
    };
    state.save(&opts.state_file)?;
    if !relay {
        progress.detail(
            "Hubble Relay is not deployed on this cluster: Hubble evidence will be missing",
        );
    }

    let deadline = Instant::now() + opts.wait_timeout;
    step(
        progress,
        "Check Cilium is ready (agents, operator, policy CRDs)",
        async {
            wait_cilium_ready(&client, &cilium_ns, None, false, deadline)
                .await
                .map(|_| ((), None))
        },
    )
    .await?;

    let mut stack = manifests::load_dir(&fixture.manifests)?;
    if let Some(image) = &e.agent_image {
        for m in &mut stack {
            manifests::use_agent_image(m, AGENT_IMAGE, image);
        }
    }
    let deployments = manifests::deployments(&stack)?;
    step(
        progress,
        &format!(
            "Deploy the stack into its own namespaces ({} objects)",
            stack.len()
        ),
        async {
            manifests::check_namespaces_are_ours(&client, &manifests::namespaces(&stack)).await?;
            for c in manifests::apply_all(&client, &stack).await? {
                state.record(c);
            }
            state.save(&opts.state_file)?;
            Ok::<_, UpError>(((), None))
        },
    )
    .await?;

    let deadline = Instant::now() + opts.wait_timeout;
    step(
        progress,
        &format!(
            "Wait until every pod of {} deployments is Ready",
            deployments.len()
        ),
        async {
            wait_stack_ready(&client, &deployments, deadline)
                .await
                .map(|_| ((), None))
        },
    )
    .await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandOutput, fake::FakeRunner};
    use crate::config::NetworkConfig;

    fn net() -> NetworkConfig {
        NetworkConfig {
            name: "harness-kind".into(),
            subnet: "10.0.0.0/11".parse().unwrap(),
            ip_range: "10.31.0.0/16".parse().unwrap(),
            gateway: "10.31.255.254".parse().unwrap(),
        }
    }

    fn kind_opts(reuse: bool) -> KindOptions {
        KindOptions {
            cluster_name: "cnp-harness".into(),
            cilium_version: "1.19.8".into(),
            cilium_chart: None,
            reuse,
        }
    }

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[tokio::test]
    async fn up_checks_every_prerequisite_before_changing_anything() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "version"],
            CommandOutput::ok("kind v0.33.0 go1.25 linux/amd64\n"),
        );
        fake.on(
            &["helm", "version"],
            CommandOutput::failed(127, "helm: not found"),
        );
        fake.on(
            &["kubectl", "version"],
            CommandOutput::failed(127, "kubectl: not found"),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut opts = UpOptions::kind(repo_root());
        opts.state_file = dir.path().join("state.json");
        let err = up_with(
            &opts,
            &fake,
            &Tools::default(),
            &crate::progress::NoProgress,
        )
        .await
        .unwrap_err();
        let UpError::Prerequisites(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 2, "{problems:#?}");
        let text = err.to_string();
        assert!(
            text.contains("helm")
                && text.contains("kubectl")
                && text.contains("bash scripts/install-tools.sh"),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
        assert!(
            fake.argvs()
                .iter()
                .all(|a| a.get(1).map(String::as_str) != Some("network")),
            "no network command before the checks pass: {:?}",
            fake.argvs()
        );
        assert!(!opts.state_file.exists());
    }

    #[tokio::test]
    async fn agent_image_is_built_for_one_platform_and_loaded_through_an_archive() {
        let fake = FakeRunner::new();
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions::kind(dir.path());
        let layout = Layout::new(dir.path());
        load_agent_image(
            &fake,
            &Tools::default(),
            &opts,
            &layout,
            "harness",
            "linux/amd64",
        )
        .await
        .unwrap();
        let archive = dir
            .path()
            .join(".harness/harness-agent-image.tar")
            .to_string_lossy()
            .into_owned();
        let dockerfile = layout.dockerfile().to_string_lossy().into_owned();
        assert_eq!(
            fake.argvs(),
            vec![
                argv(&[
                    "docker",
                    "build",
                    "--platform",
                    "linux/amd64",
                    "-f",
                    &dockerfile,
                    "-t",
                    AGENT_IMAGE,
                    "."
                ]),
                argv(&["docker", "save", "--output", &archive, AGENT_IMAGE]),
                argv(&[
                    "kind",
                    "load",
                    "image-archive",
                    &archive,
                    "--name",
                    "harness"
                ]),
            ]
        );
    }

    #[tokio::test]
    async fn missing_network_is_created_with_fixture_subnet_range_and_gateway() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "Error: No such network: harness-kind"),
        );
        let action = prepare_network(&fake, &Tools::default(), &net())
            .await
            .unwrap();
        assert_eq!(action, NetworkAction::Create);
        assert_eq!(
            fake.argvs(),
            vec![
                argv(&["docker", "network", "inspect", "harness-kind"]),
                argv(&[
                    "docker",
                    "network",
                    "create",
                    "--driver",
                    "bridge",
                    "--subnet",
                    "10.0.0.0/11",
                    "--ip-range",
                    "10.31.0.0/16",
                    "--gateway",
                    "10.31.255.254",
                    "--label",
                    "app.kubernetes.io/managed-by=cnp-harness",
                    "harness-kind"
                ]),
            ]
        );
    }

    #[tokio::test]
    async fn network_with_same_subnet_is_reused_without_creating() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::ok(r#"[{"IPAM":{"Config":[{"Subnet":"10.0.0.0/11"}]},"Labels":{}}]"#),
        );
        let action = prepare_network(&fake, &Tools::default(), &net())
            .await
            .unwrap();
        assert_eq!(action, NetworkAction::Reuse { ours: false });
        assert_eq!(fake.argvs().len(), 1);
    }

    #[tokio::test]
    async fn network_with_another_subnet_stops_up_before_creating_anything() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "network", "inspect"],
            CommandOutput::ok(r#"[{"IPAM":{"Config":[{"Subnet":"172.20.0.0/16"}]}}]"#),
        );
        let err = prepare_network(&fake, &Tools::default(), &net())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("172.20.0.0/16"), "{err}");
        assert_eq!(fake.argvs().len(), 1);
    }

    #[tokio::test]
    async fn docker_missing_is_reported_as_such() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "info"],
            CommandOutput::failed(
                1,
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
            ),
        );
        let err = check_docker(&fake, &Tools::default()).await.unwrap_err();
        assert!(matches!(err, UpError::DockerUnavailable(_)));
        assert!(
            err.to_string()
                .contains("Cannot connect to the Docker daemon"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn kind_cluster_is_created_on_the_harness_network() {
        let fake = FakeRunner::new();
        fake.on(&["kind", "get", "clusters"], CommandOutput::ok("other\n"));
        let note = ensure_kind_cluster(
            &fake,
            &Tools::default(),
            Path::new("/repo/kind/cluster.yaml"),
            &kind_opts(false),
            &net(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(note, ClusterAction::Created);
        let cmds = fake.commands();
        assert_eq!(cmds.len(), 2);
        assert_eq!(
            cmds[1].argv(),
            argv(&[
                "kind",
                "create",
                "cluster",
                "--config",
                "/repo/kind/cluster.yaml",
                "--name",
                "cnp-harness"
            ])
        );
        assert_eq!(
            cmds[1].env,
            vec![(
                "KIND_EXPERIMENTAL_DOCKER_NETWORK".to_string(),
                "harness-kind".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn existing_kind_cluster_is_kept_with_reuse() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "get", "clusters"],
            CommandOutput::ok("cnp-harness\n"),
        );
        let note = ensure_kind_cluster(
            &fake,
            &Tools::default(),
            Path::new("c.yaml"),
            &kind_opts(true),
            &net(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(note, ClusterAction::Reused);
        assert_eq!(fake.argvs().len(), 1);
    }

    #[tokio::test]
    async fn foreign_kind_cluster_of_that_name_is_not_deleted() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "get", "clusters"],
            CommandOutput::ok("cnp-harness\n"),
        );
        let err = ensure_kind_cluster(
            &fake,
            &Tools::default(),
            Path::new("c.yaml"),
            &kind_opts(false),
            &net(),
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, UpError::ClusterExists(_)), "{err}");
        assert_eq!(fake.argvs().len(), 1);
    }

    #[tokio::test]
    async fn cluster_the_harness_created_is_recreated_without_reuse() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "get", "clusters"],
            CommandOutput::ok("cnp-harness\n"),
        );
        ensure_kind_cluster(
            &fake,
            &Tools::default(),
            Path::new("c.yaml"),
            &kind_opts(false),
            &net(),
            true,
        )
        .await
        .unwrap();
        let argvs = fake.argvs();
        assert_eq!(
            argvs[1],
            argv(&["kind", "delete", "cluster", "--name", "cnp-harness"])
        );
        assert_eq!(argvs[2][..3], argv(&["kind", "create", "cluster"]));
    }

    const CP_INSPECT: &str =
        r#"[{"NetworkSettings":{"Networks":{"harness-kind":{"IPAddress":"10.31.0.2"}}}}]"#;

    #[tokio::test]
    async fn cilium_is_installed_with_version_values_and_control_plane_address() {
        let fake = FakeRunner::new();
        fake.on(&["helm", "list"], CommandOutput::ok("[]"));
        fake.on(
            &["docker", "inspect", "cnp-harness-control-plane"],
            CommandOutput::ok(CP_INSPECT),
        );
        let layout = Layout::new("/repo");
        install_cilium(
            &fake,
            &Tools::default(),
            &layout,
            &kind_opts(false),
            "kind-cnp-harness",
            &net(),
        )
        .await
        .unwrap();
        let argvs = fake.argvs();
        assert_eq!(
            argvs[0],
            argv(&[
                "helm",
                "list",
                "--namespace",
                "kube-system",
                "--kube-context",
                "kind-cnp-harness",
                "--filter",
                "^cilium$",
                "--output",
                "json"
            ])
        );
        assert_eq!(
            argvs[2],
            argv(&[
                "helm",
                "install",
                "cilium",
                "cilium",
                "--repo",
                "https://helm.cilium.io",
                "--version",
                "1.19.8",
                "--namespace",
                "kube-system",
                "--kube-context",
                "kind-cnp-harness",
                "--values",
                "/repo/kind/cilium-values.yaml",
                "--set",
                "k8sServiceHost=10.31.0.2",
                "--set",
                "k8sServicePort=6443"
            ])
        );
    }

    #[tokio::test]
    async fn same_cilium_version_is_not_reinstalled_and_another_is_refused() {
        let fake = FakeRunner::new();
        fake.on(
            &["helm", "list"],
            CommandOutput::ok(r#"[{"name":"cilium","chart":"cilium-1.19.8"}]"#),
        );
        let layout = Layout::new("/repo");
        let note = install_cilium(
            &fake,
            &Tools::default(),
            &layout,
            &kind_opts(false),
            "ctx",
            &net(),
        )
        .await
        .unwrap();
        assert!(note.unwrap().contains("already installed"));
        assert_eq!(fake.argvs().len(), 1);
        let mut other = kind_opts(false);
        other.cilium_version = "1.20.2".into();
        let err = install_cilium(&fake, &Tools::default(), &layout, &other, "ctx", &net())
            .await
            .unwrap_err();
        assert!(matches!(err, UpError::CiliumVersion { .. }), "{err}");
    }

    #[tokio::test]
    async fn outside_hosts_start_at_their_addresses_with_a_route_per_node() {
        let fake = FakeRunner::new();
        let outside = OutsideConfig {
            network: net(),
            hosts: vec![
                crate::config::OutsideHost {
                    name: "lb".into(),
                    ip: "10.0.0.10".parse().unwrap(),
                    description: None,
                },
                crate::config::OutsideHost {
                    name: "partner".into(),
                    ip: "10.20.30.10".parse().unwrap(),
                    description: None,
                },
            ],
        };
        let routes = vec![
            NodeRoute {
                node: "cp".into(),
                pod_cidr: "10.244.0.0/24".parse().unwrap(),
                via: "10.31.0.2".parse().unwrap(),
            },
            NodeRoute {
                node: "w1".into(),
                pod_cidr: "10.244.1.0/24".parse().unwrap(),
                via: "10.31.0.3".parse().unwrap(),
            },
        ];
        let hosts = start_outside_hosts(
            &fake,
            &Tools::default(),
            "cnp-harness",
            &outside,
            "harness-agent:dev",
            &routes,
        )
        .await
        .unwrap();
        assert_eq!(
            hosts[1],
            OutsideHostState {
                name: "partner".into(),
                ip: "10.20.30.10".parse().unwrap(),
                container: "cnp-harness-outside-partner".into()
            }
        );
        let argvs = fake.argvs();
        assert_eq!(argvs.len(), 8);
        assert_eq!(
            argvs[0],
            argv(&["docker", "rm", "--force", "cnp-harness-outside-lb"])
        );
        assert_eq!(
            argvs[1],
            argv(&[
                "docker",
                "run",
                "--detach",
                "--name",
                "cnp-harness-outside-lb",
                "--hostname",
                "lb",
                "--network",
                "harness-kind",
                "--ip",
                "10.0.0.10",
                "--cap-add",
                "NET_ADMIN",
                "--label",
                "app.kubernetes.io/managed-by=cnp-harness",
                "--label",
                "harness/cluster=cnp-harness",
                "--label",
                "harness/outside-host=lb",
                "harness-agent:dev",
                "serve",
                "idle",
                "--health-port",
                "8081"
            ])
        );
        assert_eq!(
            argvs[2],
            argv(&[
                "docker",
                "exec",
                "--user",
                "0",
                "cnp-harness-outside-lb",
                "ip",
                "route",
                "replace",
                "10.244.0.0/24",
                "via",
                "10.31.0.2"
            ])
        );
        assert_eq!(
            argvs[7],
            argv(&[
                "docker",
                "exec",
                "--user",
                "0",
                "cnp-harness-outside-partner",
                "ip",
                "route",
                "replace",
                "10.244.1.0/24",
                "via",
                "10.31.0.3"
            ])
        );
    }

    #[test]
    fn state_of_another_test_bed_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(
            previous_state(&path, Mode::Kind, "kind-harness")
                .unwrap()
                .is_none()
        );
        crate::state::tests::sample().save(&path).unwrap();
        assert!(
            previous_state(&path, Mode::Kind, "kind-cnp-harness")
                .unwrap()
                .is_some()
        );
        let err = previous_state(&path, Mode::Kind, "kind-other").unwrap_err();
        assert!(err.to_string().contains("harness down"), "{err}");
        assert!(previous_state(&path, Mode::Existing, "kind-cnp-harness").is_err());
    }
}
