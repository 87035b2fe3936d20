//! Upgrading Cilium on the harness's own kind cluster (for upgrade runs).

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::command::{CommandRunner, SystemRunner, Tools};
use crate::config::Layout;
use crate::lock::{DEFAULT_LEASE_DURATION, LockGuard};
use crate::progress::{Progress, step};
use crate::state::{Mode, State};
use crate::up::{CILIUM_NAMESPACE, UpError, helm_cilium, load_configs, wait_cilium_ready};

#[derive(Clone, Debug)]
pub struct UpgradeOptions {
    pub root: PathBuf,
    pub state_file: PathBuf,
    /// As [`crate::up::KindOptions::cilium_chart`].
    pub chart: Option<String>,
    pub wait_timeout: Duration,
}

impl UpgradeOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            state_file: Layout::new(&root).state_file(),
            root,
            chart: None,
            wait_timeout: Duration::from_secs(600),
        }
    }
}

/// `helm upgrade` of Cilium to `to_version` with the same values, then the same readiness waits as `up`;
/// records the new version in the state file.
///
/// # Errors
/// Refuses an existing-cluster test bed: the harness never installs or upgrades Cilium there.
pub async fn upgrade_cilium(
    state: &mut State,
    to_version: &str,
    opts: &UpgradeOptions,
    progress: &dyn Progress,
) -> Result<(), UpError> {
    upgrade_cilium_with(
        state,
        to_version,
        opts,
        &SystemRunner,
        &Tools::for_repo(&opts.root),
        progress,
    )
    .await
}

pub async fn upgrade_cilium_with(
    state: &mut State,
    to_version: &str,
    opts: &UpgradeOptions,
    runner: &dyn CommandRunner,
    tools: &Tools,
    progress: &dyn Progress,
) -> Result<(), UpError> {
    if state.mode != Mode::Kind {
        return Err(UpError::Other(format!(
            "the test bed on {} is an existing cluster: the harness does not upgrade its Cilium",
            state.kube_context
        )));
    }
    let layout = Layout::new(&opts.root);
    let configs = load_configs(&layout)?;
    let (client, _) = crate::client::connect_state(state)
        .await
        .map_err(|e| UpError::Other(e.to_string()))?;
    let _lock = LockGuard::acquire(&client, &state.lock_holder, DEFAULT_LEASE_DURATION).await?;
    let from = state
        .cilium_version
        .clone()
        .unwrap_or_else(|| "(unknown)".into());
    step(
        progress,
        &format!("Upgrade Cilium {from} -> {to_version}"),
        async {
            helm_cilium(
                runner,
                tools,
                &layout,
                &state.cluster_name,
                to_version,
                opts.chart.as_deref(),
                &state.kube_context,
                &configs.fixture.outside.network,
                true,
            )
            .await
            .map(|_| ((), None))
        },
    )
    .await?;
    state.cilium_version = Some(to_version.to_string());
    state.save(&opts.state_file)?;
    let deadline = Instant::now() + opts.wait_timeout;
    step(progress, "Wait for Cilium after the upgrade", async {
        wait_cilium_ready(
            &client,
            CILIUM_NAMESPACE,
            Some(configs.kind.nodes.len()),
            true,
            deadline,
        )
        .await
        .map(|_| ((), None))
    })
    .await?;
    Ok(())
}
