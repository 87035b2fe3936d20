//! One follow stream shared by many concurrent probes, with early verdicts.
//!
//! A [`FlowWatch`] consumes one event stream (normally `GetFlows` with
//! `follow` and `since` = run start, from [`crate::HubbleClient::follow`]),
//! keeps a short backlog, and feeds every event to the matcher of every
//! registered probe. [`ProbeHandle::verdict`] resolves as soon as the
//! decisive flows are in (see [`crate::matcher`]), after a short settle
//! window when only companion flows are missing, or at the caller's
//! deadline.
//!
//! # Caveats
//! - Probes that [`crate::Probe::conflicts_with`] each other must not be
//!   registered at the same time: their flows cannot be told apart.
//! - After a policy change, do not reuse a probe tuple until the previous
//!   client attempt has stopped: its retransmitted SYNs can still be dropped
//!   (and reported) after the next probe started.
//! - The watch does not reconnect. When the stream fails, every pending
//!   probe resolves at once (inconclusive unless positive evidence was
//!   already in) and later registrations resolve immediately; open a new
//!   watch to continue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, oneshot, watch};
use tokio_stream::{Stream, StreamExt};

use crate::matcher::{MatchOptions, Matcher, Progress};
use crate::model::{Event, NodeState, Payload};
use crate::probe::Probe;
use crate::verdict::{HubbleVerdict, InconclusiveReason, ProbeReport, Resolution};

/// An error from the event stream (transport failure, gRPC status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StreamError {
    /// What happened.
    pub message: String,
}

impl From<tonic::Status> for StreamError {
    fn from(status: tonic::Status) -> StreamError {
        StreamError {
            message: format!("{:?}: {}", status.code(), status.message()),
        }
    }
}

/// A stream of events, as [`FlowWatch::new`] consumes it.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, StreamError>> + Send>>;

/// Tuning of a [`FlowWatch`]. The defaults suit a kind cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// After a decisive flow, how long to wait for its companions (the
    /// policy-verdict event with the attribution, the L7 response) before
    /// resolving anyway.
    pub settle: Duration,
    /// Allowed clock difference between nodes and the runner (see [`MatchOptions`]).
    pub clock_skew: Duration,
    /// How long events are kept for probes registered after their flows arrived.
    pub backlog_age: Duration,
    /// At most this many events are kept.
    pub backlog_events: usize,
    /// Flows kept per report.
    pub max_flows_per_probe: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            settle: Duration::from_millis(100),
            clock_skew: Duration::ZERO,
            backlog_age: Duration::from_secs(30),
            backlog_events: 50_000,
            max_flows_per_probe: 256,
        }
    }
}

/// Counters of a watch, for health reporting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchStats {
    /// Events received.
    pub events: u64,
    /// Flows received.
    pub flows: u64,
    /// Events Hubble reported lost.
    pub lost_events: u64,
    /// Nodes currently reported unavailable (or failed).
    pub unavailable_nodes: Vec<String>,
    /// Probes waiting for a verdict.
    pub active_probes: usize,
    /// Why the stream ended, if it did.
    pub ended: Option<String>,
}

/// Errors of [`FlowWatch::wait_for_flows`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// No flow arrived in time.
    #[error(
        "no flow arrived on the Hubble stream within {0:?}: check that Hubble is enabled on the \
         agents (`cilium status`), that the stream's filters are not too narrow, and that the \
         cluster has traffic"
    )]
    NoFlows(Duration),
    /// The stream ended.
    #[error("the Hubble flow stream ended: {0}")]
    Ended(String),
}

struct Active {
    matcher: Matcher,
    done: oneshot::Sender<ProbeReport>,
    settle_tx: watch::Sender<Option<Instant>>,
    settle_at: Option<Instant>,
}

impl Active {
    fn resolve(self, resolution: Resolution) {
        // The receiver may be gone (handle dropped): nothing to do then.
        let _ = self.done.send(self.matcher.finish(resolution));
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    probes: HashMap<u64, Active>,
    backlog: VecDeque<(Instant, Arc<Event>)>,
    unavailable: BTreeMap<String, (NodeState, String)>,
    ended: Option<String>,
    events: u64,
    lost_events: u64,
}

struct Shared {
    options: WatchOptions,
    state: Mutex<State>,
    flows: AtomicU64,
    activity: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ingest(&self, event: Arc<Event>) {
        let now = Instant::now();
        let settle = self.options.settle;
        let mut state = self.lock();
        state.events += 1;
        match &event.payload {
            Payload::Flow(_) => {
                self.flows.fetch_add(1, Ordering::Relaxed);
            }
            Payload::LostEvents(lost) => state.lost_events += lost.count,
            Payload::NodeStatus(status) => match status.state {
                NodeState::Connected | NodeState::Gone => {
                    for node in &status.nodes {
                        state.unavailable.remove(node);
                    }
                }
                NodeState::Unavailable | NodeState::Error => {
                    for node in &status.nodes {
                        state
                            .unavailable
                            .insert(node.clone(), (status.state, status.message.clone()));
                    }
                }
                NodeState::Unknown | NodeState::Other(_) => {}
            },
        }
        state.backlog.push_back((now, Arc::clone(&event)));
        while state.backlog.len() > self.options.backlog_events
            || state
                .backlog
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.options.backlog_age)
        {
            state.backlog.pop_front();
        }
        let mut resolved = Vec::new();
        for (id, active) in &mut state.probes {
            match active.matcher.observe(&event) {
                Progress::Complete => resolved.push((*id, Resolution::Complete)),
                Progress::Decisive if active.settle_at.is_none() => {
                    if settle.is_zero() {
                        resolved.push((*id, Resolution::Settled));
                    } else {
                        let at = now + settle;
                        active.settle_at = Some(at);
                        let _ = active.settle_tx.send(Some(at));
                    }
                }
                Progress::Decisive | Progress::Pending => {}
            }
        }
        for (id, resolution) in resolved {
            if let Some(active) = state.probes.remove(&id) {
                active.resolve(resolution);
            }
        }
        drop(state);
        self.activity.notify_waiters();
    }

    fn end(&self, message: String) {
        let mut state = self.lock();
        if state.ended.is_some() {
            return;
        }
        state.ended = Some(message.clone());
        for (_, mut active) in state.probes.drain() {
            let resolution = match active.matcher.progress() {
                Progress::Complete => Resolution::Complete,
                Progress::Decisive => Resolution::Settled,
                Progress::Pending => Resolution::StreamEnded,
            };
            active.matcher.add_caveat(InconclusiveReason::StreamFailed {
                message: message.clone(),
            });
            active.resolve(resolution);
        }
        drop(state);
        self.activity.notify_waiters();
    }

    fn finalize(&self, id: u64, resolution: Resolution) -> Option<ProbeReport> {
        let active = self.lock().probes.remove(&id)?;
        Some(active.matcher.finish(resolution))
    }
}

/// One shared follow stream and the probes waiting on it.
///
/// Dropping the watch stops the stream and resolves pending probes as
/// inconclusive.
pub struct FlowWatch {
    shared: Arc<Shared>,
    pump: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FlowWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowWatch")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl FlowWatch {
    /// Starts consuming `stream` on the current tokio runtime.
    ///
    /// Events without a time get the time of arrival.
    ///
    /// # Panics
    /// Outside a tokio runtime (the stream is consumed by a spawned task).
    pub fn new(
        stream: impl Stream<Item = Result<Event, StreamError>> + Send + 'static,
        options: WatchOptions,
    ) -> FlowWatch {
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(State::default()),
            flows: AtomicU64::new(0),
            activity: Notify::new(),
        });
        let pump_shared = Arc::clone(&shared);
        let pump = tokio::spawn(async move {
            let mut stream = Box::pin(stream);
            loop {
                match stream.next().await {
                    Some(Ok(mut event)) => {
                        if event.time.is_none() {
                            event.time = Some(SystemTime::now());
                        }
                        pump_shared.ingest(Arc::new(event));
                    }
                    Some(Err(err)) => {
                        pump_shared.end(format!("stream error: {err}"));
                        return;
                    }
                    None => {
                        pump_shared.end("the server closed the flow stream".to_string());
                        return;
                    }
                }
            }
        });
        FlowWatch { shared, pump }
    }

    /// Registers a probe and returns the handle to await its verdict.
    ///
    /// Events already received (the backlog) are replayed to it first, so a
    /// probe registered just after its traffic still sees its flows. Nodes
    /// that are unavailable right now become caveats of the probe.
    pub fn register(&self, probe: Probe) -> ProbeHandle {
        let options = self.shared.options;
        let (done_tx, done_rx) = oneshot::channel();
        let (settle_tx, settle_rx) = watch::channel(None);
        let mut state = self.shared.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut matcher = Matcher::with_options(
            probe,
            MatchOptions {
                clock_skew: options.clock_skew,
                max_flows: options.max_flows_per_probe,
            },
        );
        let mut progress = Progress::Pending;
        for (_, event) in &state.backlog {
            progress = matcher.observe(event);
            if progress == Progress::Complete {
                break;
            }
        }
        for (node, (node_state, message)) in &state.unavailable {
            matcher.add_caveat(InconclusiveReason::NodeUnavailable {
                node: node.clone(),
                state: *node_state,
                message: message.clone(),
            });
        }
        let mut active = Active {
            matcher,
            done: done_tx,
            settle_tx,
            settle_at: None,
        };
        if let Some(message) = &state.ended {
            let resolution = match progress {
                Progress::Complete => Resolution::Complete,
                Progress::Decisive => Resolution::Settled,
                Progress::Pending => Resolution::StreamEnded,
            };
            active.matcher.add_caveat(InconclusiveReason::StreamFailed {
                message: message.clone(),
            });
            active.resolve(resolution);
        } else {
            match progress {
                Progress::Complete => active.resolve(Resolution::Complete),
                Progress::Decisive if options.settle.is_zero() => {
                    active.resolve(Resolution::Settled);
                }
                Progress::Decisive => {
                    let at = Instant::now() + options.settle;
                    active.settle_at = Some(at);
                    let _ = active.settle_tx.send(Some(at));
                    state.probes.insert(id, active);
                }
                Progress::Pending => {
                    state.probes.insert(id, active);
                }
            }
        }
        drop(state);
        ProbeHandle {
            id,
            shared: Arc::clone(&self.shared),
            done: done_rx,
            settle: settle_rx,
        }
    }

    /// Counters and current node problems.
    pub fn stats(&self) -> WatchStats {
        let state = self.shared.lock();
        WatchStats {
            events: state.events,
            flows: self.shared.flows.load(Ordering::Relaxed),
            lost_events: state.lost_events,
            unavailable_nodes: state.unavailable.keys().cloned().collect(),
            active_probes: state.probes.len(),
            ended: state.ended.clone(),
        }
    }

    /// Waits until at least one flow has arrived ("flows flowing"), or fails
    /// after `timeout`.
    ///
    /// # Errors
    /// [`WatchError::NoFlows`] on timeout, [`WatchError::Ended`] if the
    /// stream ended first.
    pub async fn wait_for_flows(&self, timeout: Duration) -> Result<(), WatchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.activity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.flows.load(Ordering::Relaxed) > 0 {
                return Ok(());
            }
            if let Some(message) = self.shared.lock().ended.clone() {
                return Err(WatchError::Ended(message));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(WatchError::NoFlows(timeout));
            }
        }
    }
}

impl Drop for FlowWatch {
    fn drop(&mut self) {
        self.pump.abort();
        self.shared.end("the flow watch was closed".to_string());
    }
}

/// A registered probe. Await [`ProbeHandle::verdict`]; dropping the handle
/// unregisters the probe.
pub struct ProbeHandle {
    id: u64,
    shared: Arc<Shared>,
    done: oneshot::Receiver<ProbeReport>,
    settle: watch::Receiver<Option<Instant>>,
}

impl std::fmt::Debug for ProbeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeHandle").field("id", &self.id).finish()
    }
}

impl ProbeHandle {
    /// The probe's registration number (unique within its watch).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Resolves with the probe's report as soon as the decisive flows are
    /// seen (early verdict), after the settle window when only companion
    /// flows are missing, when the stream fails, or at `deadline`.
    ///
    /// # Caveats
    /// The deadline is the caller's: Hubble reports flows some milliseconds
    /// after the packets, so a deadline at the very moment the client gave
    /// up can miss the last flows. Allow a margin (hundreds of ms).
    pub async fn verdict(mut self, deadline: tokio::time::Instant) -> ProbeReport {
        let mut settle_open = true;
        loop {
            let settle_at = *self.settle.borrow_and_update();
            let wake = match settle_at {
                Some(at) => tokio::time::Instant::from_std(at).min(deadline),
                None => deadline,
            };
            tokio::select! {
                biased;
                report = &mut self.done => {
                    return report.unwrap_or_else(|_| closed_report());
                }
                changed = self.settle.changed(), if settle_open => {
                    if changed.is_err() {
                        settle_open = false;
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    let resolution = if settle_at.is_some_and(|at| tokio::time::Instant::from_std(at) <= deadline) {
                        Resolution::Settled
                    } else {
                        Resolution::Deadline
                    };
                    if let Some(report) = self.shared.finalize(self.id, resolution) {
                        return report;
                    }
                    // Resolved concurrently by the stream: the report is on its way.
                    return (&mut self.done).await.unwrap_or_else(|_| closed_report());
                }
            }
        }
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.shared.lock().probes.remove(&self.id);
    }
}

fn closed_report() -> ProbeReport {
    let reason = InconclusiveReason::StreamFailed {
        message: "the flow watch was closed".to_string(),
    };
    ProbeReport {
        verdict: HubbleVerdict::Inconclusive {
            reason: reason.clone(),
        },
        flows: Vec::new(),
        omitted_flows: 0,
        caveats: vec![reason],
        resolution: Resolution::StreamEnded,
    }
}
