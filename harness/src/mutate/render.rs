//! `harness mutate` output: a table for terminals, Markdown, and proposed scenarios as YAML.

use std::fmt::Write as _;

use super::operators::{flow, scalar};
use super::{MutantResult, Report, Status};
use crate::model::{Decision, Direction, Layer};
use crate::scenario::Scenario;

/// A scenario as an entry of a `fixtures/scenarios` file (a `- id: ...` list item).
pub fn scenario_yaml(s: &Scenario) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "- id: {}", scalar(&s.id));
    let _ = writeln!(y, "  description: {}", scalar(&s.description));
    if let Some(f) = &s.from {
        let _ = writeln!(y, "  from: {}", scalar(f));
    }
    if let Some(t) = &s.to {
        let _ = writeln!(y, "  to: {}", scalar(t));
    }
    if let Some(p) = s.port {
        let _ = writeln!(y, "  port: {p}");
    }
    if let Some(p) = s.protocol {
        let _ = writeln!(y, "  protocol: {p}");
    }
    if let Some(r) = &s.request {
        let v = serde_json::to_value(r).unwrap_or_default();
        let _ = writeln!(y, "  request: {}", flow(&v));
    }
    let _ = writeln!(
        y,
        "  intent: {}",
        match s.intent {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    );
    if let Some(l) = s.layer {
        let _ = writeln!(
            y,
            "  layer: {}",
            match l {
                Layer::L4 => "l4",
                Layer::L7 => "l7",
            }
        );
    }
    if let Some(d) = s.direction {
        let _ = writeln!(
            y,
            "  direction: {}",
            match d {
                Direction::Ingress => "ingress",
                Direction::Egress => "egress",
            }
        );
    }
    if let Some(n) = &s.note {
        let _ = writeln!(y, "  note: {}", scalar(n));
    }
    y
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Killed => "killed",
        Status::Survived => "SURVIVED",
        Status::Equivalent => "equivalent",
    }
}

fn effect(m: &MutantResult) -> String {
    m.effect
        .map(|e| {
            serde_json::to_string(&e)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default()
}

fn survivor_text(m: &MutantResult, out: &mut String, markdown: bool) {
    let head = format!(
        "mutant {} ({}) {} {}: {} -> {}",
        m.id, m.operator, m.file, m.rule_path, m.before, m.after
    );
    if markdown {
        let _ = writeln!(
            out,
            "#### Survivor {}: `{}` in `{}`\n",
            m.id, m.operator, m.file
        );
        let _ = writeln!(out, "- where: `{}` of `{}`", m.rule_path, m.policy);
        let _ = writeln!(out, "- change: `{}` → `{}`", m.before, m.after);
        let _ = writeln!(out, "- effect: {}", effect(m));
        if let (Some(c), Some(d)) = (m.flows_compared, m.flows_differing) {
            let _ = writeln!(out, "- flows: {d} of {c} get another verdict");
        }
        if let Some(e) = &m.example {
            let _ = writeln!(out, "- for example: {e}");
        }
        if let Some(n) = &m.note {
            let _ = writeln!(out, "- note: {n}");
        }
        if let Some(p) = &m.proposal {
            let _ = writeln!(
                out,
                "\nA scenario that kills it:\n\n```yaml\n{}```\n",
                p.yaml
            );
        }
    } else {
        let _ = writeln!(out, "{head}");
        let _ = writeln!(out, "  policy: {}", m.policy);
        let _ = writeln!(out, "  effect: {}", effect(m));
        if let (Some(c), Some(d)) = (m.flows_compared, m.flows_differing) {
            let _ = writeln!(out, "  flows: {d} of {c} get another verdict");
        }
        if let Some(e) = &m.example {
            let _ = writeln!(out, "  for example: {e}");
        }
        if let Some(n) = &m.note {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(p) = &m.proposal {
            let _ = writeln!(out, "  a scenario that kills it:");
            for line in p.yaml.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}

/// The table for a terminal: one line per mutant, then every survivor in detail, then the summary line.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "harness mutate: posture {}, Cilium {}, {} operators",
        r.posture,
        r.cilium,
        r.operators.len()
    );
    let _ = writeln!(
        out,
        "{:>4}  {:<10}  {:<17}  {:<30}  change",
        "#", "status", "operator", "where"
    );
    for m in &r.mutants {
        let by = m
            .killed_by
            .first()
            .map(|s| {
                if m.killed_by.len() > 1 {
                    format!("  [by {s} +{}]", m.killed_by.len() - 1)
                } else {
                    format!("  [by {s}]")
                }
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>4}  {:<10}  {:<17}  {:<30}  {}: {} -> {}{by}",
            m.id,
            status(m.status),
            m.operator.name(),
            m.policy,
            m.rule_path,
            m.before,
            m.after
        );
    }
    let survivors: Vec<&MutantResult> = r
        .mutants
        .iter()
        .filter(|m| m.status == Status::Survived)
        .collect();
    if !survivors.is_empty() {
        let _ = writeln!(out, "\nSurvivors:");
        for m in survivors {
            survivor_text(m, &mut out, false);
        }
    }
    for p in &r.skipped_policies {
        let _ = writeln!(out, "not mutated: {p}");
    }
    let _ = writeln!(
        out,
        "equivalence decided over {} flows (source x destination x port class x protocol x request class)",
        r.universe_flows
    );
    let _ = write!(out, "{}", r.summary.line());
    out
}

/// Markdown, for `$GITHUB_STEP_SUMMARY`.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Mutation analysis: posture `{}` on Cilium {}\n",
        r.posture, r.cilium
    );
    let _ = writeln!(out, "**{}**\n", r.summary.line());
    let _ = writeln!(
        out,
        "| # | status | operator | policy | where | change | killed by |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let cell = |s: &str| s.replace('|', "\\|");
    for m in &r.mutants {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | `{}` | `{}` → `{}` | {} |",
            m.id,
            status(m.status),
            m.operator,
            m.policy,
            cell(&m.rule_path),
            cell(&m.before),
            cell(&m.after),
            cell(&m.killed_by.join(", "))
        );
    }
    let survivors: Vec<&MutantResult> = r
        .mutants
        .iter()
        .filter(|m| m.status == Status::Survived)
        .collect();
    if !survivors.is_empty() {
        let _ = writeln!(out, "\n### Survivors\n");
        for m in survivors {
            survivor_text(m, &mut out, true);
        }
    }
    out
}
