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
    /// Things the user should know about how the inputs were read (for example that another version's
    /// CRD schema validated the policies). Printed on stderr by the CLI.
    pub notes: Vec<String>,
}

/// Load inputs and build the model.
///
/// # Errors
/// The first bad input file, with path, line and field.
pub fn load(inputs: &Inputs) -> Result<Loaded, InputError> {
    let stack = Stack::load(&inputs.stack_file)?;
    let policies = policy::load_policies(&inputs.policies)?;
    let mut files = Vec::new();
    for p in &inputs.policies {
        files.extend(load::yaml_files(p)?);
    }
    let notes = crate::schema::validate_policy_files(&files, inputs.version)?;
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
        notes,
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
    if let Some(e) = &v.endpoint_policy_error {
        return (
            false,
            format!("{e}: the agent keeps the endpoint's previous policy, so no intent can be met"),
        );
    }
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
        endpoint_policy_error: None,
    })
}

/// The section of `docs/semantics.md` that explains a verdict whose explanation cites none.
pub fn citation(v: &Verdict, l7: Option<&crate::model::L7Request>) -> &'static str {
    use crate::model::{DropReason, L7Request, Layer};
    match v.decision {
        Decision::Allow
            if v.explanation.contains("not enforced") && !v.explanation.contains("admits") =>
        {
            "docs/semantics.md#default-enforcement"
        }
        Decision::Allow => "docs/semantics.md#allow-rules-are-a-union",
        Decision::Deny if v.drop_reason == Some(DropReason::PolicyDeny) => {
            "docs/semantics.md#deny-rules"
        }
        Decision::Deny if v.layer == Some(Layer::L7) => match l7 {
            Some(L7Request::Http(_)) => "docs/semantics.md#http-rules",
            Some(L7Request::Kafka(_)) => "docs/semantics.md#kafka-rules",
            _ => "docs/semantics.md#what-the-client-sees",
        },
        Decision::Deny => "docs/semantics.md#default-enforcement",
    }
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
                        endpoint_policy_error: None,
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
            if !v.explanation.contains("docs/semantics.md#") {
                v.explanation = format!("{} ({})", v.explanation, citation(&v, flow.l7.as_ref()));
            }
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
    let mut policies = loaded.model.policies.clone();
    let extra = selector_warnings(&loaded.policies, &loaded.stack);
    for info in &mut policies {
        for (file, line, w) in &extra {
            if info.file == file.display().to_string() && info.line == *line {
                info.warnings.push(w.clone());
            }
        }
    }
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
        setup_error: None,
        policies,
        scenarios: out,
        summary,
    }
}

/// Keep only the scenarios whose id (or `phase::id`) matches `filter`.
///
/// # Errors
/// `filter` is not a regular expression, or it matches no scenario (a typo must not pass as "0 scenarios,
/// all met").
pub fn apply_filter(results: &mut Results, filter: &str) -> Result<(), InputError> {
    let re = regex::Regex::new(filter).map_err(|e| {
        InputError::Invalid(format!(
            "--filter `{filter}`: not a regular expression: {}",
            policy::regex_error_text(&e)
        ))
    })?;
    let total = results.scenarios.len();
    let mut ids: Vec<String> = results.scenarios.iter().map(|s| s.id.clone()).collect();
    results
        .scenarios
        .retain(|s| re.is_match(&s.id) || re.is_match(&format!("{}::{}", s.phase, s.id)));
    if results.scenarios.is_empty() {
        let close = load::nearest(filter, ids.iter().map(String::as_str))
            .first()
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        ids.truncate(5);
        return Err(InputError::Invalid(format!(
            "--filter `{filter}` matches none of the {total} scenarios{close}; ids look like {}",
            ids.iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    results.summary = Summary::of(&results.scenarios);
    Ok(())
}

/// Warnings for selectors that select no workload of the stack, with the nearest names: a namespace that
/// does not exist, a label value no pod carries, a selector limited to the policy's namespace that would
/// match elsewhere. Returns `(file, line, warning)` per policy.
pub fn selector_warnings(policies: &[Policy], stack: &Stack) -> Vec<(PathBuf, u64, String)> {
    use crate::model::labels::{CompiledSelector, LabelSet, show_selector};
    let pods: Vec<(String, LabelSet)> = stack
        .workloads
        .iter()
        .map(|w| {
            (
                w.id(),
                LabelSet::for_pod(
                    &w.namespace,
                    &w.labels,
                    &stack.namespace_labels(&w.namespace),
                    &w.service_account,
                    crate::model::CLUSTER_NAME,
                ),
            )
        })
        .collect();
    let mut namespaces: Vec<&str> = stack.namespaces.keys().map(String::as_str).collect();
    namespaces.extend(stack.workloads.iter().map(|w| w.namespace.as_str()));
    namespaces.sort();
    namespaces.dedup();
    let unknown_ns = |ns: &str| -> Option<String> {
        if namespaces.contains(&ns) {
            return None;
        }
        let hint = match load::nearest(ns, namespaces.iter().copied()).first() {
            Some(n) => format!("did you mean `{n}`? "),
            None => String::new(),
        };
        Some(format!(
            "namespace `{ns}` does not exist in the stack; {hint}known: {}",
            namespaces.join(", ")
        ))
    };
    // A label value no pod carries, with the nearest value of that key.
    let label_hint = |sel: &crate::policy::Selector| -> Option<String> {
        for (k, v) in sel.match_labels.iter().flatten() {
            let (_, key) = crate::model::labels::split_key(k);
            if key == crate::model::labels::NAMESPACE_KEY {
                continue;
            }
            let values: Vec<&str> = stack
                .workloads
                .iter()
                .filter_map(|w| w.labels.get(key).map(String::as_str))
                .collect();
            if values.contains(&v.as_str()) {
                continue;
            }
            return Some(match load::nearest(v, values.iter().copied()).first() {
                Some(n) => format!("no workload has `{key}: {v}`; did you mean `{key}: {n}`?"),
                None if values.is_empty() => format!("no workload has a label `{key}`"),
                None => {
                    let mut vals = values.clone();
                    vals.sort();
                    vals.dedup();
                    format!(
                        "no workload has `{key}: {v}`; values of `{key}`: {}",
                        vals.join(", ")
                    )
                }
            });
        }
        None
    };
    let mut out = Vec::new();
    for p in policies {
        let mut warn = |w: String| {
            let item = (p.file.clone(), p.line, w);
            if !out.contains(&item) {
                out.push(item);
            }
        };
        if let Some(ns) = &p.namespace
            && let Some(w) = unknown_ns(ns)
        {
            warn(format!("metadata.namespace: {w}"));
            continue;
        }
        let ns = p.namespace.as_deref();
        for (ri, r) in p.rules.iter().enumerate() {
            let at = if p.rules.len() > 1 {
                format!("specs[{ri}].")
            } else {
                String::new()
            };
            if let Some(sel) = &r.endpoint_selector {
                let (c, _) = CompiledSelector::subject(sel, ns);
                if !c.has_reserved_key() && !pods.iter().any(|(_, l)| c.matches(l)) {
                    let mut w = format!(
                        "{at}endpointSelector {} selects no workload of the stack",
                        show_selector(sel)
                    );
                    if let Some(h) = label_hint(sel) {
                        w.push_str(&format!(": {h}"));
                    }
                    warn(w);
                }
            }
            let peers = r
                .ingress
                .iter()
                .flatten()
                .enumerate()
                .flat_map(|(i, e)| {
                    e.from_endpoints
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(move |(j, s)| (format!("ingress[{i}].fromEndpoints[{j}]"), s))
                })
                .chain(
                    r.ingress_deny
                        .iter()
                        .flatten()
                        .enumerate()
                        .flat_map(|(i, e)| {
                            e.from_endpoints
                                .iter()
                                .flatten()
                                .enumerate()
                                .map(move |(j, s)| {
                                    (format!("ingressDeny[{i}].fromEndpoints[{j}]"), s)
                                })
                        }),
                )
                .chain(r.egress.iter().flatten().enumerate().flat_map(|(i, e)| {
                    e.to_endpoints
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(move |(j, s)| (format!("egress[{i}].toEndpoints[{j}]"), s))
                }))
                .chain(
                    r.egress_deny
                        .iter()
                        .flatten()
                        .enumerate()
                        .flat_map(|(i, e)| {
                            e.to_endpoints
                                .iter()
                                .flatten()
                                .enumerate()
                                .map(move |(j, s)| (format!("egressDeny[{i}].toEndpoints[{j}]"), s))
                        }),
                );
            for (field, sel) in peers {
                let (c, added) = CompiledSelector::peer(sel, ns);
                if c.has_reserved_key() || pods.iter().any(|(_, l)| c.matches(l)) {
                    continue;
                }
                let mut w = format!(
                    "{at}{field} {} selects no workload of the stack",
                    show_selector(sel)
                );
                // A namespace named in the selector that does not exist.
                let named_ns = sel.match_labels.iter().flatten().find_map(|(k, v)| {
                    (crate::model::labels::split_key(k).1 == crate::model::labels::NAMESPACE_KEY)
                        .then_some(v.as_str())
                });
                if let Some(h) = named_ns.and_then(&unknown_ns) {
                    w.push_str(&format!(": {h}"));
                } else if added
                    && let unscoped = CompiledSelector::from_selector(sel)
                    && let Some((id, _)) = pods.iter().find(|(_, l)| unscoped.matches(l))
                {
                    let peer_ns = id.split('/').next().unwrap_or_default();
                    w.push_str(&format!(
                        ": it would match {id}, but a selector without a namespace matches only the policy's namespace `{}`; add `k8s:io.kubernetes.pod.namespace: {peer_ns}` (docs/semantics.md#selector-namespaces)",
                        ns.unwrap_or_default()
                    ));
                } else if let Some(h) = label_hint(sel) {
                    w.push_str(&format!(": {h}"));
                }
                warn(w);
            }
        }
    }
    out
}
