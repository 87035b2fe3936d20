//! Hubble evidence for the conformance harness: an Observer gRPC client for
//! Hubble Relay, a transport-independent flow model, a parser for
//! `hubble observe -o json`, a per-probe flow matcher, and early verdicts on
//! one follow stream shared by concurrent probes.
//!
//! # Usage
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use hubble::{FlowsRequest, HealthCheck, HubbleClient, Peer, Probe, WatchOptions};
//!
//! let run_start = SystemTime::now();
//! let client = HubbleClient::connect("http://127.0.0.1:4245").await?;
//! client.check_health(&HealthCheck::default()).await?;
//! let watch = client
//!     .follow(&FlowsRequest::follow_since(run_start), WatchOptions::default())
//!     .await?;
//! watch.wait_for_flows(Duration::from_secs(10)).await?;
//!
//! let probe = Probe::tcp(Peer::pod("shop", "attacker"), Peer::pod("shop", "db-0"), 5432, SystemTime::now());
//! let pending = watch.register(probe);
//! // ... start the client in the pod; meanwhile:
//! let report = pending
//!     .verdict(tokio::time::Instant::now() + Duration::from_secs(5))
//!     .await;
//! println!("{}", report.verdict);
//! # Ok(()) }
//! ```
//!
//! The crate does not depend on the harness or its policy model.

pub mod client;
pub mod convert;
pub mod fake;
pub mod health;
pub mod json;
pub mod matcher;
pub mod model;
pub mod probe;
pub mod verdict;
pub mod watch;

/// Generated Hubble messages and the `observer.Observer` client and server
/// (from the `.proto` subset in `proto/`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `flow` package.
    pub mod flow {
        tonic::include_proto!("flow");
    }
    /// `relay` package.
    pub mod relay {
        tonic::include_proto!("relay");
    }
    /// `observer` package.
    pub mod observer {
        tonic::include_proto!("observer");
    }
}

pub use client::{
    ClientError, FOLLOW_ANSWER_WAIT, FlowsRequest, HubbleClient, NodeInfo, ServerStatus,
    scope_filters,
};
pub use health::{HealthCheck, HealthError, HealthProblem, HealthReport};
pub use matcher::{MatchOptions, Matcher, Progress};
pub use model::{DropReason, Event, Flow, Payload, Protocol};
pub use probe::{L7Request, Peer, Probe};
pub use proto::flow::FlowFilter;
pub use verdict::{
    Decision, FlowRole, HubbleVerdict, InconclusiveReason, L7Protocol, L7Verdict, L34Dropped,
    L34Forwarded, MatchedFlow, ProbeReport, Resolution,
};
pub use watch::{
    EventStream, FlowWatch, ProbeHandle, StreamError, WatchError, WatchOptions, WatchStats,
};
