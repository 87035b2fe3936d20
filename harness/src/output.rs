//! Terminal output of `harness check`.

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::model::{Decision, Direction, Layer, PolicyStatus, Verdict};
use crate::results::{Results, Status};

/// Colour when stdout is a terminal and `NO_COLOR` is not set.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(s: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// `deny l7 ingress` etc.
pub fn verdict_short(v: &Verdict) -> String {
    match v.decision {
        Decision::Allow => {
            if v.proxied {
                "allow (proxied)".into()
            } else {
                "allow".into()
            }
        }
        Decision::Deny => {
            let mut s = String::from("deny");
            match v.layer {
                Some(Layer::L4) => s.push_str(" l4"),
                Some(Layer::L7) => s.push_str(" l7"),
                None => {}
            }
            match v.direction {
                Some(Direction::Ingress) => s.push_str(" ingress"),
                Some(Direction::Egress) => s.push_str(" egress"),
                None => {}
            }
            s
        }
    }
}

/// The check table: one line per scenario, then every gap with its explanation.
pub fn check_table(r: &Results, colour: bool) -> String {
    let mut out = String::new();
    let rejected: Vec<_> = r
        .policies
        .iter()
        .filter_map(|p| match &p.status {
            PolicyStatus::Rejected { reason } => Some((p, reason)),
            PolicyStatus::InForce => None,
        })
        .collect();
    let _ = writeln!(
        out,
        "Cilium {} · posture {} · {} policies ({} in force)",
        r.environment.cilium,
        r.environment.posture,
        r.policies.len(),
        r.policies.len() - rejected.len()
    );
    for (p, reason) in &rejected {
        let _ = writeln!(
            out,
            "  {} {} ({}:{}): {reason}",
            paint("rejected", "33", colour),
            p.name,
            p.file,
            p.line
        );
    }
    for p in &r.policies {
        for w in &p.warnings {
            let _ = writeln!(out, "  {} {}: {w}", paint("warning", "33", colour), p.name);
        }
    }
    let _ = writeln!(out);
    let idw = r
        .scenarios
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let phw = r
        .scenarios
        .iter()
        .map(|s| s.phase.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "{:phw$}  {:idw$}  {:20}  {:22}  STATUS",
        "PHASE", "SCENARIO", "INTENT", "MODEL"
    );
    for s in &r.scenarios {
        let status = match s.status {
            Status::Met | Status::Pass => paint(s.status.as_str(), "32", colour),
            Status::Gap | Status::Fail => paint(s.status.as_str(), "31;1", colour),
            _ => paint(s.status.as_str(), "33", colour),
        };
        let _ = writeln!(
            out,
            "{:phw$}  {:idw$}  {:20}  {:22}  {status}",
            s.phase,
            s.id,
            s.intent.to_string(),
            verdict_short(&s.model)
        );
    }
    let gaps: Vec<_> = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Gap || s.status == Status::NotApplicable)
        .collect();
    if !gaps.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", paint("Gaps and their causes:", "1", colour));
        for s in gaps {
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                paint(&s.id, "1", colour),
                s.description,
                s.reason
            );
            let _ = writeln!(out, "    {}", s.model.explanation);
            for n in &s.model.notes {
                let _ = writeln!(out, "    note: {n}");
            }
        }
    }
    let sm = &r.summary;
    let _ = writeln!(out);
    let _ = write!(
        out,
        "{} scenarios: {} met, {} gaps{}",
        sm.total,
        sm.met,
        sm.gaps,
        if sm.not_applicable > 0 {
            format!(", {} not applicable", sm.not_applicable)
        } else {
            String::new()
        }
    );
    out
}
