//! The live test bed: a kind cluster with Cilium and Hubble (or an existing cluster that runs Cilium), the
//! reference stack deployed on it, hosts outside it, postures applied to it, and probes run in it.
//!
//! The pipeline stage after the model and the plan: `up` builds the test bed and writes the state file,
//! `apply_posture` installs a posture and waits until Cilium enforces it, the [`exec::ProbeExecutor`] runs
//! probes where the scenario's client lives, `down` removes everything.
//!
//! Each boundary sits behind a small interface: external commands behind [`command::CommandRunner`]
//! (tests use [`command::fake::FakeRunner`]), probes behind [`exec::ProbeExecutor`]. Readiness decisions are
//! pure functions on k8s-openapi objects ([`readiness`]).

use std::pin::Pin;

pub mod client;
pub mod cluster;
pub mod command;
pub mod config;
pub mod down;
pub mod exec;
pub mod lab;
pub mod lock;
pub mod manifests;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod prereq;
pub mod progress;
pub mod readiness;
pub mod state;
pub mod up;
pub mod upgrade;
pub mod wait;

#[cfg(test)]
mod fake_api;

pub use down::{DownError, DownReport, down};
pub use exec::{ExecError, ExecOutput, LiveExecutor, ProbeExecutor};
pub use policy::{ApplyOptions, PostureError, PostureReport, apply_posture};
pub use progress::{NoProgress, Progress, TerminalProgress};
pub use state::{Mode, OutsideHosts, State};
pub use up::{ExistingOptions, KindOptions, Target, UpError, UpOptions, up};
pub use upgrade::{UpgradeOptions, upgrade_cilium};

/// A boxed, sendable future (keeps the traits usable as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The server-side apply field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "cnp-harness";
/// Every object the harness creates carries `app.kubernetes.io/managed-by=cnp-harness`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "cnp-harness";
/// The agent image built from workloads/Dockerfile.
pub const AGENT_IMAGE: &str = "harness-agent:dev";
/// The kind cluster's default name, as in kind/cluster.yaml (kube context `kind-harness`).
pub const DEFAULT_CLUSTER_NAME: &str = "harness";
/// The Cilium chart version installed by default.
pub const DEFAULT_CILIUM_VERSION: &str = "1.19.8";
