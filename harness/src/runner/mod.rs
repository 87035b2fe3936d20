//! The scenario runner: runs every scenario's probe on a test bed, watches Hubble for it at the same time,
//! and judges each scenario on four columns (intent, model, client, Hubble).
//!
//! The test bed is behind [`TestBed`], so the runner is the same against a kind cluster, an existing
//! cluster, or an in-process bed of a test's own.
//!
//! # Caveats
//! - Scenarios whose probes Hubble could confuse (same source, destination, port and protocol) run one after
//!   another; the rest run concurrently up to [`RunOptions::concurrency`].
//! - A deny probe is stopped as soon as Hubble reports the policy drop: the runner signals the agent on its
//!   standard input and the agent reports what it saw until then (no connection yet). The client column is
//!   therefore never invented. No other Hubble verdict stops a probe.
//! - The runner bounds every probe command by its own deadline, whatever the test bed does.
//! - A drop whose reason is not a policy reason (unroutable, conntrack, ...) is never read as a deny: the
//!   Hubble column is unclear, with the reason, and the scenario at best inconclusive.

pub mod accept;
pub mod judge;
pub mod plan;
pub mod suite;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use probe_wire::{ProbeResult, WIRE_VERSION};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::check::{flow_of, judge as judge_model};
use crate::model::{Decision, Model, Verdict};
use crate::results::{
    ClientEvidence, Environment, HubbleEvidence, Results, ResultsKind, ScenarioResult, Status,
    Summary, now_rfc3339,
};
use crate::scenario::{ConfigCheck, Scenario};
use judge::{Reading, client_reading};
pub use plan::ProbeTimeouts;

/// A boxed future, for the dyn-compatible [`TestBed`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a scenario peer is on the test bed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The address probes are sent to.
    pub ip: IpAddr,
    /// How Hubble names it.
    pub hubble: hubble::Peer,
}

/// Why the test bed could not do something.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BedError {
    /// The scenario cannot run on this test bed (for example an outside host on an existing cluster).
    #[error("not applicable: {0}")]
    NotApplicable(String),
    /// The test bed failed (a pod is missing, exec failed, a deadline passed).
    #[error("{0}")]
    Failed(String),
}

/// The metrics one Cilium agent exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMetrics {
    pub node: String,
    /// Hubble metric names enabled and served (`drop`, `tcp`, `dns`, ...).
    pub metrics: Vec<String>,
}

/// What the runner needs from a test bed.
pub trait TestBed: Send + Sync {
    /// Where a scenario peer (`namespace/name` or an outside host's name) is.
    fn locate(&self, peer: &str) -> Result<Place, BedError>;

    /// Runs the agent command `args` at `source` and returns its stdout. The bed holds the command's
    /// standard input open; when `cancel` fires it writes a line to it: the agent then stops its probe and
    /// prints what it saw.
    fn exec<'a>(
        &'a self,
        source: &'a str,
        args: Vec<String>,
        deadline: Instant,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<String, BedError>>;

    /// The Hubble flow watch to register the next probe with, or why there is none (then the probe's
    /// Hubble column is inconclusive). A bed may reopen a stream that ended.
    fn flows(&self) -> BoxFuture<'_, Result<Arc<hubble::FlowWatch>, String>>;

    /// The Hubble metrics every Cilium agent exposes.
    fn hubble_metrics(&self) -> BoxFuture<'_, Result<Vec<NodeMetrics>, BedError>>;

    /// Why this test bed cannot enforce HTTP and Kafka rules (it has no Envoy), or `None` when it can.
    /// A scenario whose traffic the model says goes to Envoy is then not applicable, never passed.
    fn no_envoy(&self) -> Option<String> {
        None
    }
}

/// Why a scenario cannot be judged on a bed without Envoy: its traffic would be redirected to Envoy (the
/// model says it is proxied) for an HTTP or Kafka rule. DNS rules are enforced by the agent's own proxy,
/// so a DNS scenario is always judged.
pub fn needs_envoy(request: &crate::scenario::Request, model: &Verdict) -> bool {
    model.proxied && !matches!(request, crate::scenario::Request::Dns(_))
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub timeouts: ProbeTimeouts,
    /// Scenarios in flight at once.
    pub concurrency: usize,
    /// Stop a probe as soon as Hubble reports its policy drop.
    pub early_stop: bool,
    /// How long to keep waiting for Hubble after the client finished (decisive flows end the wait at
    /// once). At the end of it, what Hubble did see (a drop for a reason other than policy, lost events) is
    /// reported with the inconclusive result.
    pub hubble_margin: Duration,
    /// Extra time the test bed may take to start and end a probe command.
    pub exec_overhead: Duration,
    /// When the client has finished and Hubble has not decided within this time, send a nudge (see
    /// [`NUDGE_PORT`]); `None`: never.
    pub nudge_after: Option<Duration>,
}

/// The port of the nudge: a TCP connect from the probe's source to its destination on this port (the
/// discard port), whose own flows no probe of another port can be confused with. Hubble's server serves
/// an event only once the next one is written (its ring reads up to the last write but one), so on a quiet
/// node the probe's last event (a DNS proxy's record of a refused query comes after the client's answer)
/// waits for whatever traffic comes next, and the verdict can time out inconclusive. The nudge is that
/// next traffic, on the nodes of both ends. [`NUDGE_PORT_ALT`] is used when the probe's own port is 9.
pub const NUDGE_PORT: u16 = 9;
/// The nudge's port for a probe of port 9 (the daytime port).
pub const NUDGE_PORT_ALT: u16 = 13;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeouts: ProbeTimeouts::default(),
            concurrency: 8,
            early_stop: true,
            hubble_margin: Duration::from_millis(1500),
            exec_overhead: Duration::from_secs(10),
            nudge_after: Some(Duration::from_millis(100)),
        }
    }
}

/// The model's verdict for a scenario, as `harness check` computes it.
fn model_verdict(model: &Model, s: &Scenario) -> Option<Verdict> {
    let flow = flow_of(model, s)?;
    let mut v = model.explain(&flow);
    if v.decision == Decision::Allow
        && let Some(o) = s.expect_outcome
    {
        v.expected_outcome = o;
    }
    Some(v)
}

fn empty_verdict(explanation: String) -> Verdict {
    Verdict {
        decision: Decision::Allow,
        layer: None,
        direction: None,
        drop_reason: None,
        expected_outcome: probe_wire::Outcome::Completed,
        proxied: false,
        policies: Vec::new(),
        explanation,
        notes: Vec::new(),
        denied_kafka_key: None,
        endpoint_policy_error: None,
    }
}

fn base_result(s: &Scenario, model: Verdict) -> ScenarioResult {
    let (meets, _) = judge_model(s, &model);
    ScenarioResult::unobserved(s, model, meets, Status::Inconclusive, String::new())
}

/// Hubble's reading of a probe report.
fn hubble_reading(v: &hubble::HubbleVerdict) -> Reading {
    use hubble::HubbleVerdict as H;
    match v {
        H::Forwarded(_) | H::L7Allowed(_) => Reading::Allow,
        H::Dropped(d) if d.reason.is_policy() => Reading::DenyL4(match d.direction {
            hubble::model::TrafficDirection::Ingress => Some(crate::model::Direction::Ingress),
            hubble::model::TrafficDirection::Egress => Some(crate::model::Direction::Egress),
            _ => None,
        }),
        // Unroutable, conntrack, missed tail call, ...: the datapath dropped it, but not policy. Never
        // read as a deny: a deny intent would pass on a drop that proves nothing about the policy.
        H::Dropped(d) => Reading::Unclear(format!(
            "Hubble shows a drop for a reason other than policy ({d}), which is no policy verdict"
        )),
        H::L7Denied(_) => Reading::DenyL7,
        H::NothingSeen => Reading::Unclear("Hubble showed no flow of this probe".into()),
        H::Inconclusive { reason } => {
            Reading::Unclear(format!("Hubble evidence inconclusive: {reason}"))
        }
    }
}

/// The Hubble verdict recorded for a drop whose reason is not a policy reason (see
/// [`crate::results::HubbleEvidence::verdict`]).
pub const DROPPED_OTHER: &str = "dropped-other";

fn hubble_evidence(report: &hubble::ProbeReport) -> HubbleEvidence {
    use hubble::HubbleVerdict as H;
    let verdict = match &report.verdict {
        H::Forwarded(_) => "forwarded",
        H::Dropped(d) if d.reason.is_policy() => "dropped-l4",
        H::Dropped(_) => DROPPED_OTHER,
        H::L7Denied(_) => "l7-denied",
        H::L7Allowed(_) => "l7-allowed",
        H::NothingSeen => "not-seen",
        H::Inconclusive { .. } => "inconclusive",
    };
    let mut detail = report.verdict.to_string();
    for c in &report.caveats {
        detail.push_str(&format!("; caveat: {c}"));
    }
    HubbleEvidence {
        verdict: verdict.into(),
        detail,
        flows: report
            .decisive_flows()
            .map(|m| serde_json::json!({"role": format!("{:?}", m.role), "flow": m.flow.to_string()}))
            .collect(),
        nudged: false,
    }
}

/// Whether a Hubble verdict is the one that stops a probe early: a datapath drop for a policy reason. Any
/// other verdict (forwarded, an L7 verdict, a drop for another reason) lets the probe run to its end, so the
/// client column reports what the client really saw.
fn is_policy_drop(v: &hubble::HubbleVerdict) -> bool {
    matches!(v, hubble::HubbleVerdict::Dropped(d) if d.reason.is_policy())
}

/// Run one flow scenario.
async fn run_flow(
    bed: &dyn TestBed,
    s: &Scenario,
    model: Verdict,
    opts: &RunOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let mut r = base_result(s, model.clone());
    let (Some(from), Some(to), Some(port), Some(request)) = (&s.from, &s.to, s.port, &s.request)
    else {
        r.status = Status::NotApplicable;
        r.reason = "the scenario names no flow".into();
        return r;
    };
    if let Some(e) = &model.endpoint_policy_error {
        // The agent keeps the endpoint's previous policy: whatever the traffic shows, it proves nothing
        // about these policies.
        r.status = Status::Inconclusive;
        r.reason = format!(
            "{e}; the agent keeps the endpoint's previous policy, so no verdict is expected"
        );
        return r;
    }
    if let Some(why) = bed.no_envoy()
        && needs_envoy(request, &model)
    {
        r.status = Status::NotApplicable;
        r.needs_envoy = true;
        r.reason = format!(
            "not applicable ({why}): the model says this traffic is redirected to Envoy for its L7 rules"
        );
        return r;
    }
    let (src, dst) = match (bed.locate(from), bed.locate(to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(BedError::NotApplicable(why)), _) | (_, Err(BedError::NotApplicable(why))) => {
            r.status = Status::NotApplicable;
            r.reason = why;
            return r;
        }
        (Err(BedError::Failed(why)), _) | (_, Err(BedError::Failed(why))) => {
            r.status = Status::Inconclusive;
            r.reason = format!("test bed: {why}");
            return r;
        }
    };
    let mut spec = plan::probe_spec(s, request, dst.ip, port, opts.timeouts);
    spec.cancel_on_stdin = true;
    let args = spec.to_args();
    let probe = plan::hubble_probe(
        src.hubble,
        dst.hubble,
        port,
        request,
        &model,
        SystemTime::now(),
    );
    // Register with Hubble before the client starts, so no flow of it is missed. Twice: the first
    // registration gives the early verdict while the client runs; the second, which has seen the same
    // flows, gives the verdict at the margin after the client finished (with what was seen by then).
    let handle = bed
        .flows()
        .await
        .map(|w| (w.register(probe.clone()), w.register(probe)));
    let deadline = started + Duration::from_millis(opts.timeouts.total_ms) + opts.exec_overhead;
    let hubble_deadline =
        started + Duration::from_millis(opts.timeouts.total_ms) + opts.hubble_margin;
    let cancel = CancellationToken::new();
    // The runner bounds the probe itself: a test bed whose command hangs (an exec stream that never ends)
    // cannot hold the run.
    let budget = deadline.saturating_duration_since(started);
    let exec = async {
        match tokio::time::timeout_at(deadline, bed.exec(from, args, deadline, cancel.clone()))
            .await
        {
            Ok(out) => out,
            Err(_) => Err(BedError::Failed(format!(
                "the probe command did not end within {} ms (the probe's budget and the test bed's overhead) and was abandoned",
                budget.as_millis()
            ))),
        }
    };
    tokio::pin!(exec);
    let mut nudged = false;
    let (exec_result, report) = match handle {
        Ok((early, late)) => {
            let verdict = early.verdict(hubble_deadline);
            tokio::pin!(verdict);
            tokio::select! {
                out = &mut exec => {
                    // The client finished: Hubble gets a bounded margin for its flows. At the margin the
                    // report says what was seen (a drop for a reason other than policy, nothing, lost
                    // events), so the reason of an inconclusive column is never lost.
                    let now = Instant::now();
                    let margin = (now + opts.hubble_margin).min(hubble_deadline.max(now));
                    let nudge = Nudge { bed, from, ip: dst.ip, port, timeouts: opts.timeouts };
                    let (rep, sent) =
                        nudged_verdict(late.verdict(margin), opts.nudge_after, nudge).await;
                    nudged = sent;
                    (out, Ok(rep))
                }
                rep = &mut verdict => {
                    drop(late);
                    if opts.early_stop && is_policy_drop(&rep.verdict) {
                        cancel.cancel();
                    }
                    ((&mut exec).await, Ok(rep))
                }
            }
        }
        Err(why) => ((&mut exec).await, Err(why)),
    };
    r.timings.probe_ms = Some(started.elapsed().as_millis() as u64);
    // Client column.
    let client = match exec_result {
        Ok(stdout) => match ProbeResult::from_json(stdout.trim()) {
            Ok(pr) if pr.version != WIRE_VERSION => Err(format!(
                "the agent speaks wire version {}, the harness {WIRE_VERSION}",
                pr.version
            )),
            Ok(pr) => Ok(pr),
            Err(e) => Err(format!("agent output unreadable: {e}")),
        },
        Err(BedError::NotApplicable(why)) => {
            r.status = Status::NotApplicable;
            r.reason = why;
            return r;
        }
        Err(BedError::Failed(why)) => Err(format!("probe could not run: {why}")),
    };
    let client_read = match &client {
        Ok(pr) => {
            r.client = Some(ClientEvidence {
                outcome: pr.outcome,
                detail: pr.detail.clone(),
                raw: serde_json::to_value(pr).unwrap_or_default(),
            });
            client_reading(pr.outcome)
        }
        Err(why) => Reading::Unclear(why.clone()),
    };
    // Hubble column.
    let hubble_read = match report {
        Ok(rep) => {
            let mut evidence = hubble_evidence(&rep);
            evidence.nudged = nudged;
            r.hubble = Some(evidence);
            hubble_reading(&rep.verdict)
        }
        Err(why) => Reading::Unclear(format!("no Hubble evidence: {why}")),
    };
    r.timings.total_ms = Some(started.elapsed().as_millis() as u64);
    let j = judge::judge(&r.intent, &model, Some(&client_read), Some(&hubble_read));
    r.status = j.status;
    r.reason = j.reason;
    r.model_divergence = j.model_divergence;
    r
}

/// What a nudge needs: the bed, the probe's source and destination.
struct Nudge<'a> {
    bed: &'a dyn TestBed,
    from: &'a str,
    ip: IpAddr,
    port: u16,
    timeouts: ProbeTimeouts,
}

impl Nudge<'_> {
    /// The agent command: a TCP connect to the destination's nudge port, short enough to end well within
    /// the margin (its outcome is not read).
    fn args(&self) -> Vec<String> {
        let port = if self.port == NUDGE_PORT {
            NUDGE_PORT_ALT
        } else {
            NUDGE_PORT
        };
        let target = match self.ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        probe_wire::ProbeSpec {
            target,
            connect_timeout_ms: self.timeouts.connect_ms.min(300),
            timeout_ms: self.timeouts.total_ms.min(300),
            request: probe_wire::ProbeRequest::Tcp,
            cancel_on_stdin: true,
        }
        .to_args()
    }
}

/// The verdict at the margin; when it is not decided within `after`, a nudge is sent from the probe's
/// source while the wait goes on. Returns the report and whether a nudge was sent.
async fn nudged_verdict(
    verdict: impl Future<Output = hubble::ProbeReport>,
    after: Option<Duration>,
    nudge: Nudge<'_>,
) -> (hubble::ProbeReport, bool) {
    tokio::pin!(verdict);
    let Some(after) = after else {
        return (verdict.await, false);
    };
    tokio::select! {
        rep = &mut verdict => return (rep, false),
        _ = tokio::time::sleep(after) => {}
    }
    let cancel = CancellationToken::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let exec = nudge
        .bed
        .exec(nudge.from, nudge.args(), deadline, cancel.clone());
    tokio::pin!(exec);
    let mut exec_done = false;
    let rep = loop {
        tokio::select! {
            rep = &mut verdict => break rep,
            _ = &mut exec, if !exec_done => exec_done = true,
        }
    };
    if !exec_done {
        // The nudge's command is not left behind: it is told to stop, and awaited (bounded).
        cancel.cancel();
        let _ = tokio::time::timeout_at(deadline, exec).await;
    }
    (rep, true)
}

/// Run a configuration check scenario (Hubble metrics on every agent).
async fn run_config(
    bed: &dyn TestBed,
    s: &Scenario,
    check: &ConfigCheck,
    model: Verdict,
) -> ScenarioResult {
    let mut r = base_result(s, model);
    match bed.hubble_metrics().await {
        Ok(nodes) if nodes.is_empty() => {
            r.status = Status::Inconclusive;
            r.reason = "no Cilium agent answered".into();
        }
        Ok(nodes) => {
            let missing: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    let m: Vec<&str> = check
                        .hubble_metrics
                        .iter()
                        .filter(|w| !n.metrics.contains(w))
                        .map(String::as_str)
                        .collect();
                    (!m.is_empty()).then(|| format!("{} lacks {}", n.node, m.join(", ")))
                })
                .collect();
            let exposed = missing.is_empty();
            let wanted = s.intent == Decision::Allow;
            r.status = if exposed == wanted {
                Status::Pass
            } else {
                Status::Fail
            };
            r.reason = if missing.is_empty() {
                format!(
                    "{} agents expose {}",
                    nodes.len(),
                    check.hubble_metrics.join(", ")
                )
            } else {
                missing.join("; ")
            };
            r.model_divergence = (r.model.decision == Decision::Allow) != exposed;
        }
        Err(BedError::NotApplicable(why)) => {
            r.status = Status::NotApplicable;
            r.reason = why;
        }
        Err(BedError::Failed(why)) => {
            r.status = Status::Inconclusive;
            r.reason = format!("could not read the agents' metrics: {why}");
        }
    }
    r
}

/// The key of the probes Hubble could confuse with each other.
fn conflict_key(s: &Scenario) -> String {
    format!(
        "{}|{}|{}|{:?}",
        s.from.as_deref().unwrap_or("-"),
        s.to.as_deref().unwrap_or("-"),
        s.port.unwrap_or(0),
        s.check.is_none().then(|| s.flow_protocol())
    )
}

/// Run `scenarios` on `bed`; results come back in the scenarios' order.
pub async fn run(
    bed: &dyn TestBed,
    model: &Model,
    scenarios: &[Scenario],
    opts: &RunOptions,
) -> Vec<ScenarioResult> {
    // Chains of scenarios that must not overlap; chains run concurrently.
    let mut chains: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in scenarios.iter().enumerate() {
        chains.entry(conflict_key(s)).or_default().push(i);
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut results: Vec<Option<ScenarioResult>> = vec![None; scenarios.len()];
    let chain_futures = chains.into_values().map(|chain| {
        let slots = Arc::clone(&slots);
        async move {
            let mut out = Vec::new();
            for i in chain {
                let _permit = slots.acquire().await;
                out.push((i, run_one(bed, model, &scenarios[i], opts).await));
            }
            out
        }
    });
    for chain in futures::future::join_all(chain_futures).await {
        for (i, r) in chain {
            results[i] = Some(r);
        }
    }
    results.into_iter().flatten().collect()
}

/// Run one scenario.
pub async fn run_one(
    bed: &dyn TestBed,
    model: &Model,
    s: &Scenario,
    opts: &RunOptions,
) -> ScenarioResult {
    if let Some(check) = &s.check {
        let verdict = empty_verdict("configuration check (see the check's own result)".into());
        return run_config(bed, s, check, verdict).await;
    }
    match model_verdict(model, s) {
        Some(v) => run_flow(bed, s, v, opts).await,
        None => {
            let mut r = base_result(
                s,
                empty_verdict("the model cannot place this scenario's peers".into()),
            );
            r.status = Status::NotApplicable;
            r.reason = "the scenario's peers are not in the model".into();
            r
        }
    }
}

/// The results document of a run.
pub fn results(environment: Environment, model: &Model, scenarios: Vec<ScenarioResult>) -> Results {
    let summary = Summary::of(&scenarios);
    Results {
        version: crate::results::RESULTS_VERSION,
        kind: ResultsKind::Run,
        environment,
        setup_error: None,
        policies: model.policies.clone(),
        scenarios,
        summary,
    }
}

/// Results for a run whose set-up failed: every scenario is inconclusive with the reason, so a results file
/// is written even then.
pub fn setup_failed(
    environment: Environment,
    model: &Model,
    scenarios: &[Scenario],
    why: &str,
) -> Results {
    let rs = scenarios
        .iter()
        .map(|s| {
            let v = model_verdict(model, s).unwrap_or_else(|| empty_verdict(String::new()));
            let mut r = base_result(s, v);
            r.status = Status::Inconclusive;
            r.reason = format!("not run: set-up failed: {why}");
            r
        })
        .collect();
    results(environment, model, rs)
}

/// An environment description with the current time.
pub fn environment(cilium: &str, posture: &str) -> Environment {
    Environment {
        cilium: cilium.to_string(),
        kubernetes: None,
        kind: None,
        posture: posture.to_string(),
        time: now_rfc3339(),
        harness: env!("CARGO_PKG_VERSION").to_string(),
    }
}
