//! `harness diff`: verdict changes between two results documents, scenario by scenario.
//!
//! Every scenario present in either document falls in one class:
//! - **widening**: denied before, allowed after, against the intent (deny): a regression, the dangerous
//!   one (exit 1);
//! - **narrowing**: allowed before, denied after, against the intent (allow);
//! - **fix**: a decision change towards the intent (denied → allowed where the intent is allow, allowed →
//!   denied where it is deny); reported, never a failure;
//! - **evidence only**: the same decision, but something else changed (the layer, direction or drop
//!   reason of a deny, the client's outcome, Hubble's verdict, the status), or one side has no
//!   conclusive observation, so no decision can be compared;
//! - **new** / **removed**: the scenario is in only one document;
//! - unchanged (counted, not listed).
//!
//! The decision compared is the one observed (client and Hubble) when both documents are live runs, and
//! the model's otherwise (an offline check has no observation). Observed, a flow that got through in
//! either column is an allow, even when the other column shows a drop (so a real widening is never
//! missed); a Hubble drop for a reason other than policy is no decision at all. Policies whose status changed (in force on
//! one Cilium version, rejected on another) are listed too, and named as the likely cause of the verdict
//! changes of the scenarios they decided.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Decision, PolicyStatus};
use crate::report::evidence;
use crate::results::{Results, ResultsKind, ScenarioResult, Status};

/// The class of a scenario's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeClass {
    /// Denied before, allowed after, and the intent is deny: a regression.
    Widening,
    /// Allowed before, denied after, and the intent is allow.
    Narrowing,
    /// The decision changed towards the intent.
    Fix,
    /// The same decision; other evidence changed.
    EvidenceOnly,
    /// Only in the second document.
    New,
    /// Only in the first document.
    Removed,
}

impl ChangeClass {
    pub const ALL: [ChangeClass; 6] = [
        ChangeClass::Widening,
        ChangeClass::Narrowing,
        ChangeClass::Fix,
        ChangeClass::EvidenceOnly,
        ChangeClass::New,
        ChangeClass::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::Widening => "widening",
            ChangeClass::Narrowing => "narrowing",
            ChangeClass::Fix => "fix",
            ChangeClass::EvidenceOnly => "evidence-only",
            ChangeClass::New => "new",
            ChangeClass::Removed => "removed",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            ChangeClass::Widening => {
                "Widening against the intent: denied before, allowed after, the intent is deny"
            }
            ChangeClass::Narrowing => {
                "Narrowing against the intent: allowed before, denied after, the intent is allow"
            }
            ChangeClass::Fix => "Fixes: the verdict moved towards the intent",
            ChangeClass::EvidenceOnly => {
                "Evidence-only changes: same decision, other evidence changed"
            }
            ChangeClass::New => "New scenarios",
            ChangeClass::Removed => "Removed scenarios",
        }
    }
}

/// Which decision is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Both documents are live runs: what the client and Hubble saw.
    Observed,
    /// At least one document is an offline check: the model's prediction.
    Model,
}

/// One side of a scenario's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// The decision compared (see [`Basis`]); `None` when a live run has no conclusive observation.
    pub decision: Option<Decision>,
    /// The verdict in words: the model's short verdict, or for an observed decision the client outcome
    /// and Hubble verdict.
    pub verdict: String,
    pub status: Status,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hubble: Option<String>,
}

/// The change of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioChange {
    pub id: String,
    pub phase: String,
    pub description: String,
    pub class: ChangeClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Side>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Side>,
    /// What changed, one entry per field: `status: met → gap`.
    pub changes: Vec<String>,
    /// Policy status changes that plausibly caused it (the policy decided the scenario on one side).
    pub causes: Vec<String>,
    /// The after side's explanation (the model's, with what was observed for a run).
    pub explanation: String,
}

/// A policy added, removed, or whose status changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<PolicyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<PolicyStatus>,
}

impl PolicyChange {
    /// `in force → rejected`.
    pub fn transition(&self) -> String {
        let word = |s: &Option<PolicyStatus>| match s {
            None => "absent",
            Some(PolicyStatus::InForce) => "in force",
            Some(PolicyStatus::Rejected { .. }) => "rejected",
        };
        format!("{} → {}", word(&self.before), word(&self.after))
    }

    /// `in force → rejected: <reason>`.
    pub fn describe(&self) -> String {
        let mut t = self.transition();
        if let Some(PolicyStatus::Rejected { reason }) = &self.after {
            t.push_str(&format!(": {reason}"));
        } else if let Some(PolicyStatus::Rejected { reason }) = &self.before
            && self.after.is_some()
        {
            t.push_str(&format!(" (was: {reason})"));
        }
        t
    }
}

/// One document, in a line.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentInfo {
    pub kind: ResultsKind,
    pub cilium: String,
    pub posture: String,
    pub time: String,
}

impl DocumentInfo {
    fn of(r: &Results) -> DocumentInfo {
        DocumentInfo {
            kind: r.kind,
            cilium: r.environment.cilium.clone(),
            posture: r.environment.posture.clone(),
            time: r.environment.time.clone(),
        }
    }

    fn line(&self) -> String {
        format!(
            "posture {} · Cilium {} · {} · {}",
            self.posture,
            self.cilium,
            crate::report::kind_words(self.kind),
            self.time
        )
    }
}

/// The changes between two results documents.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub before: DocumentInfo,
    pub after: DocumentInfo,
    pub basis: Basis,
    /// Changed, new and removed scenarios, in the after document's order (removed ones last).
    pub scenarios: Vec<ScenarioChange>,
    pub policies: Vec<PolicyChange>,
    /// Scenarios present in both documents with nothing compared changed.
    pub unchanged: usize,
}

impl Diff {
    /// Whether anything that was denied became allowed.
    pub fn has_widening(&self) -> bool {
        self.scenarios
            .iter()
            .any(|c| c.class == ChangeClass::Widening)
    }

    /// The changes of one class.
    pub fn of_class(&self, class: ChangeClass) -> impl Iterator<Item = &ScenarioChange> {
        self.scenarios.iter().filter(move |c| c.class == class)
    }

    /// The ids of the changes of one class.
    pub fn ids(&self, class: ChangeClass) -> Vec<&str> {
        self.of_class(class).map(|c| c.id.as_str()).collect()
    }

    /// Whether nothing changed at all.
    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty() && self.policies.is_empty()
    }
}

/// The policy drop reasons as Hubble names them; any other drop reason is no policy verdict.
const POLICY_DROP_REASONS: [&str; 2] = ["POLICY_DENIED", "POLICY_DENY"];

/// The Hubble column's reading for comparing runs, and why it is unclear when Hubble saw a drop for a
/// reason other than policy (unroutable, conntrack, ...): such a drop is never a deny. The runner records it
/// as `dropped-other`; an older document may record it as `dropped-l4` with the reason on its flows.
fn hubble_observed(s: &ScenarioResult) -> (evidence::Reading, Option<String>) {
    let Some(h) = &s.hubble else {
        return (evidence::Reading::Unclear, None);
    };
    let reason = evidence::drop_reason(&h.flows);
    let other = match h.verdict.as_str() {
        crate::runner::DROPPED_OTHER => true,
        "dropped-l4" => reason
            .as_deref()
            .is_some_and(|r| !POLICY_DROP_REASONS.contains(&r)),
        _ => false,
    };
    if other {
        let named = reason.map_or_else(|| h.detail.clone(), |r| r.to_string());
        (
            evidence::Reading::Unclear,
            Some(format!(
                "Hubble shows a drop for a reason other than policy ({named}), which is no policy verdict"
            )),
        )
    } else {
        (evidence::hubble_reading(s), None)
    }
}

/// The decision observed in a live run, with the evidence priority that keeps a widening from being
/// missed: when either column saw the flow get through (the client completed, or Hubble forwarded it),
/// the decision is allow, even if the other column shows a drop; otherwise a deny seen by either column
/// is a deny; otherwise there is no decision. A Hubble drop for a reason other than policy counts for
/// nothing (the second value says so).
fn observed_decision(s: &ScenarioResult) -> (Option<Decision>, Option<String>) {
    let (hubble, why) = hubble_observed(s);
    let readings = [evidence::client_reading(s), hubble];
    let decision = if readings.contains(&evidence::Reading::Allow) {
        Some(Decision::Allow)
    } else if readings
        .iter()
        .any(|r| matches!(r, evidence::Reading::Deny { .. }))
    {
        Some(Decision::Deny)
    } else {
        None
    };
    (decision, why)
}

/// Whether the client and Hubble reached different conclusive decisions in a run.
fn observations_disagree(s: &ScenarioResult) -> bool {
    match (
        evidence::client_reading(s).decision(),
        hubble_observed(s).0.decision(),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

fn side(s: &ScenarioResult, basis: Basis) -> Side {
    let model = crate::output::verdict_short(&s.model);
    let (client, hubble) = match (&s.client, &s.hubble) {
        (None, None) => (None, None),
        _ => (
            Some(evidence::client_short(s)),
            Some(evidence::hubble_short(s)),
        ),
    };
    let (decision, verdict) = match basis {
        Basis::Model => (Some(s.model.decision), model.clone()),
        Basis::Observed => {
            let (d, why) = observed_decision(s);
            let word = match (d, why) {
                (Some(Decision::Allow), _) => "allow".to_string(),
                (Some(Decision::Deny), _) => "deny".to_string(),
                (None, Some(why)) => format!("no conclusive observation: {why}"),
                (None, None) => "no conclusive observation".to_string(),
            };
            (
                d,
                format!(
                    "{word} (client {}, hubble {})",
                    evidence::client_short(s),
                    evidence::hubble_short(s)
                ),
            )
        }
    };
    Side {
        decision,
        verdict,
        status: s.status,
        model,
        client,
        hubble,
    }
}

/// What differs between two sides, besides the decision.
fn field_changes(b: &ScenarioResult, a: &ScenarioResult, sb: &Side, sa: &Side) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name}: {x} → {y}"));
        }
    };
    cmp("intent", b.intent.to_string(), a.intent.to_string());
    cmp("model", sb.model.clone(), sa.model.clone());
    // The drop reason and expected outcome follow from the short verdict when that changed.
    let model_changed = sb.model != sa.model;
    let reason = |s: &ScenarioResult| {
        s.model
            .drop_reason
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    };
    if !model_changed {
        cmp("model drop reason", reason(b), reason(a));
        cmp(
            "model expected outcome",
            b.model.expected_outcome.to_string(),
            a.model.expected_outcome.to_string(),
        );
    }
    if sb.client.is_some() || sa.client.is_some() {
        cmp(
            "client",
            sb.client.clone().unwrap_or_else(|| "-".into()),
            sa.client.clone().unwrap_or_else(|| "-".into()),
        );
        let (hb, ha) = (
            sb.hubble.clone().unwrap_or_else(|| "-".into()),
            sa.hubble.clone().unwrap_or_else(|| "-".into()),
        );
        let hubble_changed = hb != ha;
        cmp("hubble", hb, ha);
        let drop = |s: &ScenarioResult| {
            s.hubble
                .as_ref()
                .and_then(|h| evidence::drop_reason(&h.flows))
                .unwrap_or_else(|| "-".into())
        };
        if !hubble_changed {
            cmp("hubble drop reason", drop(b), drop(a));
        }
    }
    cmp(
        "status",
        b.status.as_str().to_string(),
        a.status.as_str().to_string(),
    );
    out
}

fn policy_changes(before: &Results, after: &Results) -> Vec<PolicyChange> {
    let mut out = Vec::new();
    for b in &before.policies {
        match after.policies.iter().find(|a| a.name == b.name) {
            Some(a) if a.status != b.status => out.push(PolicyChange {
                name: b.name.clone(),
                before: Some(b.status.clone()),
                after: Some(a.status.clone()),
            }),
            Some(_) => {}
            None => out.push(PolicyChange {
                name: b.name.clone(),
                before: Some(b.status.clone()),
                after: None,
            }),
        }
    }
    for a in &after.policies {
        if !before.policies.iter().any(|b| b.name == a.name) {
            out.push(PolicyChange {
                name: a.name.clone(),
                before: None,
                after: Some(a.status.clone()),
            });
        }
    }
    out
}

/// The policy changes that touch a scenario: the policy decided it on either side, or a model note
/// names it.
fn causes(
    policies: &[PolicyChange],
    b: Option<&ScenarioResult>,
    a: Option<&ScenarioResult>,
) -> Vec<String> {
    policies
        .iter()
        .filter(|p| {
            [b, a].into_iter().flatten().any(|s| {
                s.model.policies.contains(&p.name)
                    || s.model.notes.iter().any(|n| n.contains(&p.name))
            })
        })
        .map(|p| format!("policy {}: {}", p.name, p.transition()))
        .collect()
}

fn explanation(s: &ScenarioResult) -> String {
    let mut t = s.model.explanation.clone();
    if s.client.is_some() || s.hubble.is_some() {
        if let Some(c) = &s.client {
            t.push_str(&format!("; client: {} ({})", c.outcome, c.detail));
        }
        if let Some(h) = &s.hubble {
            t.push_str(&format!("; hubble: {} ({})", h.verdict, h.detail));
        }
    }
    t
}

/// Compare two results documents.
///
/// # Caveats
/// Scenarios are matched by id only; a scenario whose id changed shows as removed and new. Explanation
/// wording is not compared (it is prose); verdicts, outcomes and statuses are.
pub fn diff(before: &Results, after: &Results) -> Diff {
    let basis = if before.kind == ResultsKind::Run && after.kind == ResultsKind::Run {
        Basis::Observed
    } else {
        Basis::Model
    };
    let policies = policy_changes(before, after);
    let mut scenarios = Vec::new();
    let mut unchanged = 0;
    for a in &after.scenarios {
        let sa = side(a, basis);
        let Some(b) = before.scenarios.iter().find(|b| b.id == a.id) else {
            scenarios.push(ScenarioChange {
                id: a.id.clone(),
                phase: a.phase.clone(),
                description: a.description.clone(),
                class: ChangeClass::New,
                before: None,
                changes: vec![],
                causes: causes(&policies, None, Some(a)),
                explanation: explanation(a),
                after: Some(sa),
            });
            continue;
        };
        let sb = side(b, basis);
        let mut changes = Vec::new();
        let class = match (sb.decision, sa.decision) {
            (Some(Decision::Deny), Some(Decision::Allow))
                if a.intent.decision == Decision::Allow =>
            {
                Some(ChangeClass::Fix)
            }
            (Some(Decision::Allow), Some(Decision::Deny))
                if a.intent.decision == Decision::Deny =>
            {
                Some(ChangeClass::Fix)
            }
            (Some(Decision::Deny), Some(Decision::Allow)) => Some(ChangeClass::Widening),
            (Some(Decision::Allow), Some(Decision::Deny)) => Some(ChangeClass::Narrowing),
            (x, y) if x != y => {
                // One side has no conclusive observation: no decision to compare.
                let mut note = "no conclusive observation on one side: the evidence cannot tell whether it widened".to_string();
                if b.model.decision != a.model.decision {
                    note.push_str(&format!(" (the model: {} → {})", sb.model, sa.model));
                }
                changes.push(note);
                Some(ChangeClass::EvidenceOnly)
            }
            _ => None,
        };
        let fields = field_changes(b, a, &sb, &sa);
        // A decision change already shows the compared columns in its verdict line.
        let basis_fields: &[&str] = match basis {
            Basis::Model => &["model:", "model drop reason:", "model expected outcome:"],
            Basis::Observed => &["client:", "hubble:", "hubble drop reason:"],
        };
        let decided = matches!(
            class,
            Some(ChangeClass::Widening | ChangeClass::Narrowing | ChangeClass::Fix)
        );
        changes.extend(
            fields
                .into_iter()
                .filter(|f| !(decided && basis_fields.iter().any(|b| f.starts_with(b)))),
        );
        let class = match class {
            Some(c) => c,
            None if changes.is_empty() => {
                unchanged += 1;
                continue;
            }
            None => ChangeClass::EvidenceOnly,
        };
        if basis == Basis::Observed && (observations_disagree(b) || observations_disagree(a)) {
            changes.push("client and Hubble disagree on one side; the allow is taken".into());
        }
        scenarios.push(ScenarioChange {
            id: a.id.clone(),
            phase: a.phase.clone(),
            description: a.description.clone(),
            class,
            before: Some(sb),
            after: Some(sa),
            changes,
            causes: causes(&policies, Some(b), Some(a)),
            explanation: explanation(a),
        });
    }
    for b in &before.scenarios {
        if !after.scenarios.iter().any(|a| a.id == b.id) {
            scenarios.push(ScenarioChange {
                id: b.id.clone(),
                phase: b.phase.clone(),
                description: b.description.clone(),
                class: ChangeClass::Removed,
                before: Some(side(b, basis)),
                after: None,
                changes: vec![],
                causes: causes(&policies, Some(b), None),
                explanation: explanation(b),
            });
        }
    }
    Diff {
        before: DocumentInfo::of(before),
        after: DocumentInfo::of(after),
        basis,
        scenarios,
        policies,
        unchanged,
    }
}

fn counts(d: &Diff) -> String {
    let mut parts: Vec<String> = ChangeClass::ALL
        .iter()
        .map(|c| {
            let n = d.of_class(*c).count();
            match c {
                ChangeClass::Fix => format!("{n} fix{}", if n == 1 { "" } else { "es" }),
                _ => format!("{n} {}", c.as_str()),
            }
        })
        .collect();
    parts.push(format!("{} unchanged", d.unchanged));
    let mut t = parts.join(", ");
    if !d.policies.is_empty() {
        t.push_str(&format!(
            "; {} policy change{}",
            d.policies.len(),
            if d.policies.len() == 1 { "" } else { "s" }
        ));
    }
    t
}

fn basis_text(d: &Diff) -> &'static str {
    match d.basis {
        Basis::Observed => "observed verdicts (client and Hubble): both documents are live runs",
        Basis::Model => "the model's verdicts: at least one document is an offline check",
    }
}

/// Render a diff for a terminal (plain text) or as Markdown (for `$GITHUB_STEP_SUMMARY` or a PR comment).
pub fn render(d: &Diff, markdown: bool) -> String {
    if markdown {
        render_markdown(d)
    } else {
        render_text(d)
    }
}

fn render_text(d: &Diff) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "before: {}", d.before.line());
    let _ = writeln!(o, "after:  {}", d.after.line());
    let _ = writeln!(o, "compared: {}", basis_text(d));
    if !d.policies.is_empty() {
        let _ = writeln!(o, "\nPolicy changes ({}):", d.policies.len());
        for p in &d.policies {
            let _ = writeln!(
                o,
                "  {}: {}",
                p.name,
                crate::report::wrap(&p.describe(), 110, 6)
            );
        }
    }
    for class in ChangeClass::ALL {
        let list: Vec<&ScenarioChange> = d.of_class(class).collect();
        if list.is_empty() {
            continue;
        }
        let marker = if class == ChangeClass::Widening {
            "!! "
        } else {
            ""
        };
        let _ = writeln!(o, "\n{marker}{} ({}):", class.heading(), list.len());
        for (i, c) in list.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(o);
            }
            let _ = writeln!(o, "  {} · {}", c.id, c.description);
            let detail = |o: &mut String, label: &str, text: &str| {
                let _ = writeln!(o, "      {label:8}{}", crate::report::wrap(text, 110, 14));
            };
            if let Some(b) = &c.before {
                detail(
                    &mut o,
                    "before",
                    &format!("{} · {}", b.verdict, b.status.as_str()),
                );
            }
            if let Some(a) = &c.after {
                detail(
                    &mut o,
                    "after",
                    &format!("{} · {}", a.verdict, a.status.as_str()),
                );
            }
            // Status changes are on the before/after lines.
            for ch in c.changes.iter().filter(|c| !c.starts_with("status:")) {
                detail(&mut o, "changed", ch);
            }
            for cause in &c.causes {
                detail(&mut o, "cause", cause);
            }
            if matches!(
                class,
                ChangeClass::Widening | ChangeClass::Narrowing | ChangeClass::Fix
            ) {
                detail(&mut o, "now", &c.explanation);
            }
        }
    }
    let _ = writeln!(o);
    if d.is_empty() {
        let _ = write!(
            o,
            "No verdict changed ({} scenario{} compared).",
            d.unchanged,
            if d.unchanged == 1 { "" } else { "s" }
        );
    } else {
        let _ = write!(o, "{}", counts(d));
    }
    o
}

fn render_markdown(d: &Diff) -> String {
    use crate::report::markdown_text as t;
    let code = |s: &str| format!("`{}`", s.replace('`', "'").replace('|', "\\|"));
    let mut o = String::new();
    let icon = if d.has_widening() { "❌" } else { "✅" };
    let _ = writeln!(o, "## {icon} Verdict diff\n");
    let _ = writeln!(o, "- **before**: {}", t(&d.before.line()));
    let _ = writeln!(o, "- **after**: {}", t(&d.after.line()));
    let _ = writeln!(o, "- **compared**: {}\n", t(basis_text(d)));
    let _ = writeln!(o, "**{}**\n", t(&counts(d)));
    if !d.policies.is_empty() {
        let _ = writeln!(o, "### Policy changes\n");
        for p in &d.policies {
            let _ = writeln!(o, "- {}: {}", code(&p.name), t(&p.describe()));
        }
        let _ = writeln!(o);
    }
    for class in ChangeClass::ALL {
        let list: Vec<&ScenarioChange> = d.of_class(class).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(o, "### {} ({})\n", t(class.heading()), list.len());
        let _ = writeln!(o, "| Scenario | Before | After | Changed | Cause |");
        let _ = writeln!(o, "| --- | --- | --- | --- | --- |");
        for c in list {
            let b = c
                .before
                .as_ref()
                .map(|s| format!("{} ({})", s.verdict, s.status.as_str()))
                .unwrap_or_else(|| "—".into());
            let a = c
                .after
                .as_ref()
                .map(|s| format!("{} ({})", s.verdict, s.status.as_str()))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                code(&c.id),
                t(&b),
                t(&a),
                c.changes
                    .iter()
                    .filter(|x| !x.starts_with("status:"))
                    .map(|x| t(x))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                c.causes
                    .iter()
                    .map(|x| t(x))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        let _ = writeln!(o);
    }
    if d.is_empty() {
        let _ = writeln!(
            o,
            "No verdict changed ({} scenario{} compared).",
            d.unchanged,
            if d.unchanged == 1 { "" } else { "s" }
        );
    }
    o
}
/// Scenarios that widened in `observed` but not in `predicted` (for example the model's prediction of an
/// upgrade against what the live runs before and after it showed).
pub fn unexpected_widening(predicted: &Diff, observed: &Diff) -> Vec<String> {
    let expected: Vec<&str> = predicted
        .of_class(ChangeClass::Widening)
        .map(|c| c.id.as_str())
        .collect();
    observed
        .of_class(ChangeClass::Widening)
        .filter(|c| !expected.contains(&c.id.as_str()))
        .map(|c| c.id.clone())
        .collect()
}
