//! The results document: one JSON file per run (`harness run`) or per offline check (`harness check`).
//!
//! Every scenario has four columns: the intent, the model's prediction, what the client saw and what Hubble
//! reported. `harness check` fills the first two; a live run fills all four. Reports and diffs read this
//! document and nothing else.

use serde::{Deserialize, Serialize};

use crate::model::{Decision, Direction, Layer, PolicyInfo, Verdict};
use crate::scenario::{ConfigCheck, Request, Scenario};

/// Version of the results document. Bump on an incompatible change.
pub const RESULTS_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub version: u32,
    pub kind: ResultsKind,
    pub environment: Environment,
    /// Why a live run could not start (no test bed, Relay unreachable, ...): then every scenario is
    /// inconclusive for this one reason, which reports show in their headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    pub policies: Vec<PolicyInfo>,
    pub scenarios: Vec<ScenarioResult>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultsKind {
    /// Offline: intent and model only.
    Check,
    /// Live: all four columns.
    Run,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Environment {
    /// The Cilium version the model used (and, for a run, the one installed).
    pub cilium: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub posture: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub harness: String,
}

/// The intent of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

impl Intent {
    pub fn of(s: &Scenario) -> Intent {
        Intent {
            decision: s.intent,
            layer: s.layer,
            direction: s.direction,
        }
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decision {
            Decision::Allow => f.write_str("allow")?,
            Decision::Deny => f.write_str("deny")?,
        }
        if let Some(l) = self.layer {
            write!(f, " {}", if l == Layer::L4 { "l4" } else { "l7" })?;
        }
        if let Some(d) = self.direction {
            write!(
                f,
                " {}",
                if d == Direction::Egress {
                    "egress"
                } else {
                    "ingress"
                }
            )?;
        }
        Ok(())
    }
}

/// The judgement of one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// check: the model meets the intent.
    Met,
    /// check: the model does not meet the intent.
    Gap,
    /// run: client and Hubble both agree with the intent.
    Pass,
    /// run: client or Hubble contradicts the intent.
    Fail,
    /// run: evidence is missing or could not be collected; never a pass.
    Inconclusive,
    /// The scenario cannot be run here (for example an outside host on an existing cluster).
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Gap => "gap",
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Inconclusive => "inconclusive",
            Status::NotApplicable => "not-applicable",
        }
    }
}

/// What the client saw (live runs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientEvidence {
    pub outcome: probe_wire::Outcome,
    pub detail: String,
    /// The agent's full result, as it printed it.
    #[serde(default)]
    pub raw: serde_json::Value,
}

/// What Hubble reported (live runs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HubbleEvidence {
    /// `forwarded`, `dropped-l4` (a policy drop), `dropped-other` (a drop for a reason other than policy,
    /// never a deny), `l7-denied`, `l7-allowed`, `not-seen` or `inconclusive`.
    pub verdict: String,
    pub detail: String,
    /// The flows that decided: `{"role": "PolicyDrop" | "Delivered" | "L7Request" | ..., "flow": "<the flow
    /// on one line: time, node, source -> destination, verdict, drop reason, direction, L7 record>"}`.
    #[serde(default)]
    pub flows: Vec<serde_json::Value>,
    /// Whether the runner sent a nudge to get the probe's last event out of Hubble (the client had
    /// finished and Hubble had not decided; `runner::NUDGE_PORT`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nudged: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Timings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubble_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub id: String,
    pub phase: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::policy::Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ConfigCheck>,
    pub intent: Intent,
    pub model: Verdict,
    /// Whether the model's prediction meets the intent.
    pub model_meets_intent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubble: Option<HubbleEvidence>,
    pub status: Status,
    /// Why the status is what it is, in one line.
    pub reason: String,
    /// Live runs: the observation disagrees with the model's prediction.
    #[serde(default)]
    pub model_divergence: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub timings: Timings,
    /// Not applicable because the test bed has no Envoy and the model sends this traffic to Envoy for its
    /// HTTP or Kafka rules (`runner::needs_envoy`); `no-envoy` in `HARNESS_ACCEPT_NOT_APPLICABLE` accepts
    /// exactly these.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_envoy: bool,
}

impl ScenarioResult {
    /// A scenario's result with the intent and model columns filled and nothing observed.
    pub fn unobserved(
        s: &Scenario,
        model: Verdict,
        model_meets_intent: bool,
        status: Status,
        reason: String,
    ) -> Self {
        ScenarioResult {
            id: s.id.clone(),
            phase: s.phase.clone(),
            description: s.description.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            port: s.port,
            protocol: s.check.is_none().then(|| s.flow_protocol()),
            request: s.request.clone(),
            check: s.check.clone(),
            intent: Intent::of(s),
            model_meets_intent,
            model,
            client: None,
            hubble: None,
            status,
            reason,
            model_divergence: false,
            note: s.note.clone(),
            timings: Timings::default(),
            needs_envoy: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub met: usize,
    pub gaps: usize,
    pub pass: usize,
    pub fail: usize,
    pub inconclusive: usize,
    pub not_applicable: usize,
    pub model_divergences: usize,
}

impl Summary {
    pub fn of(rs: &[ScenarioResult]) -> Summary {
        let mut s = Summary {
            total: rs.len(),
            ..Summary::default()
        };
        for r in rs {
            match r.status {
                Status::Met => s.met += 1,
                Status::Gap => s.gaps += 1,
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Inconclusive => s.inconclusive += 1,
                Status::NotApplicable => s.not_applicable += 1,
            }
            if r.model_divergence {
                s.model_divergences += 1;
            }
        }
        s
    }
}

impl Results {
    /// Read a results file.
    ///
    /// # Errors
    /// Unreadable file, malformed JSON (with line and column), or another document version.
    pub fn read(path: &std::path::Path) -> Result<Results, crate::load::InputError> {
        let text = crate::load::read_text(path)?;
        const WHAT: &str = "`report` and `diff` read the JSON results document that `check --output FILE` or `run --results FILE` write";
        match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => {
                return Err(crate::load::InputError::at(
                    path,
                    Some(e.line() as u64),
                    format!("not a results document: the file is not JSON ({e}); {WHAT}"),
                ));
            }
            Ok(v) if v.get("scenarios").is_none() || v.get("kind").is_none() => {
                return Err(crate::load::InputError::at(
                    path,
                    None,
                    format!("not a results document: it has no `kind` and `scenarios`; {WHAT}"),
                ));
            }
            Ok(_) => {}
        }
        let r: Results = serde_json::from_str(&text).map_err(|e| {
            crate::load::InputError::At(crate::load::Located {
                path: path.to_path_buf(),
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                message: e.to_string(),
            })
        })?;
        if r.version != RESULTS_VERSION {
            return Err(crate::load::InputError::at(
                path,
                None,
                format!(
                    "version: results document version {} is not supported (this harness reads {RESULTS_VERSION})",
                    r.version
                ),
            ));
        }
        Ok(r)
    }
}

/// The current time as RFC 3339 UTC (`2026-11-27T18:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_time_has_the_expected_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
