//! `harness check`: every scenario against the model, offline.

use std::path::{Path, PathBuf};

use probe_wire::Outcome;

use crate::load::{self, InputError};
use crate::model::{CiliumVersion, Decision, Flow, Model, Verdict};
use crate::policy::{self, Policy};
use crate::results::{
    Environment, Results, ResultsKind, ScenarioResult, Status, Summary, now_rfc3339,
};
use crate::scenario::{self, ConfigCheck, Scenario};
use crate::stack::Stack;

/// Where `check` reads its inputs.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Policy files or directories.
    pub policies: Vec<PathBuf>,
    /// A name for the posture in reports.
    pub posture: String,
    pub stack_file: PathBuf,
    pub scenarios: PathBuf,
    /// Cilium Helm values (for configuration checks); absent: those checks are not applicable.
    pub helm_values: Option<PathBuf>,
    pub version: CiliumVersion,
}

/// Everything loaded and compiled.
pub struct Loaded {
    pub stack: Stack,
    pub policies: Vec<Policy>,
    pub scenarios: Vec<Scenario>,
    pub model: Model,
    pub metrics: Option<Result<Vec<String>, String>>,
}

/// Load inputs and build the model.
///
/// # Errors
/// The first bad input file, with path, line and field.
pub fn load(inputs: &Inputs) -> Result<Loaded, InputError> {
    let stack = Stack::load(&inputs.stack_file)?;
    let policies = policy::load_policies(&inputs.policies)?;
    let scenarios = scenario::load_scenarios(&inputs.scenarios, &stack)?;
    let model = Model::build(&policies, Model::identities_of(&stack), inputs.version);
    let metrics = match &inputs.helm_values {
        Some(p) if p.exists() => Some(hubble_metrics(p)),
        _ => None,
    };
    Ok(Loaded {
        stack,
        policies,
        scenarios,
        model,
        metrics,
    })
}

/// The `hubble.metrics.enabled` list of a Helm values file (metric names without their options).
fn hubble_metrics(path: &Path) -> Result<Vec<String>, String> {
    let v: serde_json::Value = load::read_one(path).map_err(|e| e.to_string())?;
    if v.pointer("/hubble/enabled").and_then(|b| b.as_bool()) == Some(false) {
        return Ok(Vec::new());
    }
    let list = v
        .pointer("/hubble/metrics/enabled")
        .and_then(|l| l.as_array())
        .ok_or_else(|| format!("{}: hubble.metrics.enabled is not a list", path.display()))?;
    Ok(list
        .iter()
        .filter_map(|m| m.as_str())
        .map(|m| m.split(':').next().unwrap_or(m).to_string())
        .collect())
}

/// The model's flow for a scenario.
pub fn flow_of(model: &Model, s: &Scenario) -> Option<Flow> {
    let from = model.identity(s.from.as_deref()?)?;
    let to = model.identity(s.to.as_deref()?)?;
    Some(Flow {
        from,
        to,
        port: s.port?,
        protocol: s.flow_protocol(),
        l7: s.request.as_ref().and_then(|r| r.l7()),
    })
}

/// Judge a model verdict against a scenario's intent. Returns whether it is met and, when not, why.
pub fn judge(s: &Scenario, v: &Verdict) -> (bool, String) {
    match (s.intent, v.decision) {
        (Decision::Allow, Decision::Allow) => (true, String::new()),
        (Decision::Allow, Decision::Deny) => {
            (false, "the intent is allow, the model denies".into())
        }
        (Decision::Deny, Decision::Allow) => (false, "the intent is deny, the model allows".into()),
        (Decision::Deny, Decision::Deny) => {
            if let Some(l) = s.layer
                && v.layer != Some(l)
            {
                return (
                    false,
                    format!(
                        "right verdict, wrong reason: denied at {}, the intent names {}",
                        layer_name(v.layer),
                        layer_name(Some(l))
                    ),
                );
            }
            if let Some(d) = s.direction
                && v.direction != Some(d)
            {
                return (
                    false,
                    format!(
                        "right verdict, wrong reason: denied at the {}, the intent requires the {} to deny it",
                        match v.direction {
                            Some(crate::model::Direction::Ingress) => "destination's ingress",
                            Some(crate::model::Direction::Egress) => "source's egress",
                            None => "unknown direction",
                        },
                        match d {
                            crate::model::Direction::Ingress => "destination's ingress",
                            crate::model::Direction::Egress => "source's egress",
                        }
                    ),
                );
            }
            (true, String::new())
        }
    }
}

fn layer_name(l: Option<crate::model::Layer>) -> &'static str {
    match l {
        Some(crate::model::Layer::L4) => "l4",
        Some(crate::model::Layer::L7) => "l7",
        None => "no layer",
    }
}

/// A configuration check's verdict.
fn config_verdict(
    c: &ConfigCheck,
    metrics: &Option<Result<Vec<String>, String>>,
) -> Result<Verdict, String> {
    let enabled = match metrics {
        None => return Err("no Cilium Helm values file to check (kind/cilium-values.yaml)".into()),
        Some(Err(e)) => return Err(e.clone()),
        Some(Ok(m)) => m,
    };
    let missing: Vec<&String> = c
        .hubble_metrics
        .iter()
        .filter(|m| !enabled.contains(m))
        .collect();
    let decision = if missing.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny
    };
    let explanation = if missing.is_empty() {
        format!(
            "hubble.metrics.enabled lists {}",
            c.hubble_metrics.join(", ")
        )
    } else {
        format!(
            "hubble.metrics.enabled lacks {} (it lists: {})",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            enabled.join(", ")
        )
    };
    Ok(Verdict {
        decision,
        layer: None,
        direction: None,
        drop_reason: None,
        expected_outcome: Outcome::Completed,
        proxied: false,
        policies: Vec::new(),
        explanation,
        notes: Vec::new(),
        denied_kafka_key: None,
    })
}

/// Run the check.
///
/// # Errors
/// Bad input files.
pub fn run(inputs: &Inputs) -> Result<Results, InputError> {
    let loaded = load(inputs)?;
    Ok(check_loaded(inputs, &loaded))
}

/// Judge every scenario of already loaded inputs.
pub fn check_loaded(inputs: &Inputs, loaded: &Loaded) -> Results {
    let mut out = Vec::new();
    for s in &loaded.scenarios {
        let (model, status, reason, ok) = if let Some(c) = &s.check {
            match config_verdict(c, &loaded.metrics) {
                Ok(v) => {
                    let (ok, why) = judge(s, &v);
                    (v, if ok { Status::Met } else { Status::Gap }, why, ok)
                }
                Err(why) => (
                    Verdict {
                        decision: Decision::Deny,
                        layer: None,
                        direction: None,
                        drop_reason: None,
                        expected_outcome: Outcome::Completed,
                        proxied: false,
                        policies: Vec::new(),
                        explanation: why.clone(),
                        notes: Vec::new(),
                        denied_kafka_key: None,
                    },
                    Status::NotApplicable,
                    why,
                    false,
                ),
            }
        } else {
            // Scenarios were validated against the stack, so every name resolves.
            let Some(flow) = flow_of(&loaded.model, s) else {
                continue;
            };
            let mut v = loaded.model.explain(&flow);
            if v.decision == Decision::Allow
                && let Some(o) = s.expect_outcome
            {
                v.expected_outcome = o;
            }
            let (ok, why) = judge(s, &v);
            (v, if ok { Status::Met } else { Status::Gap }, why, ok)
        };
        out.push(ScenarioResult::unobserved(s, model, ok, status, reason));
    }
    let summary = Summary::of(&out);
    Results {
        version: crate::results::RESULTS_VERSION,
        kind: ResultsKind::Check,
        environment: Environment {
            cilium: inputs.version.to_string(),
            kubernetes: None,
            kind: None,
            posture: inputs.posture.clone(),
            time: now_rfc3339(),
            harness: env!("CARGO_PKG_VERSION").to_string(),
        },
        policies: loaded.model.policies.clone(),
        scenarios: out,
        summary,
    }
}
