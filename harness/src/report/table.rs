//! The terminal table: one line per scenario grouped by phase, then everything that needs attention
//! explained, then the counts.

use std::fmt::Write as _;

use super::evidence::{self, CellState};
use crate::model::PolicyStatus;
use crate::results::{Results, ResultsKind, ScenarioResult, Status};

struct Paint {
    on: bool,
    /// Explanations are wrapped at this width.
    width: usize,
}

impl Paint {
    fn code(&self, s: &str, code: &str) -> String {
        if self.on && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.code(s, "1")
    }
    fn dim(&self, s: &str) -> String {
        self.code(s, "2")
    }
    fn status(&self, st: Status, padded: &str) -> String {
        match st {
            Status::Met | Status::Pass => self.code(padded, "32"),
            Status::Gap | Status::Fail => self.code(padded, "31;1"),
            Status::Inconclusive => self.code(padded, "33"),
            Status::NotApplicable => self.dim(padded),
        }
    }
    fn cell(&self, state: CellState, padded: &str) -> String {
        match state {
            CellState::Contradicts => self.code(padded, "31"),
            CellState::Unclear => self.code(padded, "33"),
            CellState::Agrees | CellState::Empty => padded.to_string(),
        }
    }
}

/// A cell's marker: `✗` contradicts the intent, `?` says nothing certain.
fn marker(state: CellState) -> &'static str {
    match state {
        CellState::Contradicts => "✗ ",
        CellState::Unclear => "? ",
        CellState::Agrees | CellState::Empty => "  ",
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

pub(super) fn render(r: &Results, colour: bool, width: usize) -> String {
    let p = Paint { on: colour, width };
    let mut out = String::new();
    let run = r.kind == ResultsKind::Run;

    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "Cilium policy conformance · {}",
            super::headline(r)
        ))
    );
    let _ = writeln!(out, "{}", p.dim(&super::environment_details(r)));
    write_policies(&mut out, r, &p);

    let all: Vec<&ScenarioResult> = r.scenarios.iter().collect();
    let width = |f: &dyn Fn(&ScenarioResult) -> String, min: usize| {
        all.iter()
            .map(|s| f(s).chars().count())
            .max()
            .unwrap_or(min)
            .max(min)
    };
    let idw = width(&|s| s.id.clone(), 8);
    let inw = width(&|s| s.intent.to_string(), 6);
    let mow = width(&evidence::model_short, 5) + 2;
    let clw = width(&evidence::client_short, 6) + 2;
    let huw = width(&evidence::hubble_short, 6) + 2;

    for (phase, scenarios) in super::phases(r) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} {}",
            p.bold(phase),
            p.dim(&format!("· {}", super::counts_text(r.kind, &scenarios)))
        );
        let mut header = format!(
            "  {}  {}  {}",
            pad("SCENARIO", idw),
            pad("INTENT", inw),
            pad("  MODEL", mow)
        );
        if run {
            header.push_str(&format!(
                "  {}  {}",
                pad("  CLIENT", clw),
                pad("  HUBBLE", huw)
            ));
        }
        header.push_str("  STATUS");
        let _ = writeln!(out, "{}", p.dim(&header));
        for s in scenarios {
            let cells = evidence::cells(r.kind, s);
            let mut line = format!(
                "  {}  {}  {}",
                pad(&s.id, idw),
                pad(&s.intent.to_string(), inw),
                p.cell(
                    cells.model,
                    &pad(
                        &format!("{}{}", marker(cells.model), evidence::model_short(s)),
                        mow
                    )
                ),
            );
            if run {
                line.push_str(&format!(
                    "  {}  {}",
                    p.cell(
                        cells.client,
                        &pad(
                            &format!("{}{}", marker(cells.client), evidence::client_short(s)),
                            clw
                        )
                    ),
                    p.cell(
                        cells.hubble,
                        &pad(
                            &format!("{}{}", marker(cells.hubble), evidence::hubble_short(s)),
                            huw
                        )
                    ),
                ));
            }
            let mut status = s.status.as_str().to_string();
            if s.model_divergence {
                status.push_str(" *");
            }
            line.push_str(&format!("  {}", p.status(s.status, &status)));
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }

    let attention: Vec<&ScenarioResult> = r
        .scenarios
        .iter()
        .filter(|s| evidence::needs_explaining(s))
        .collect();
    if !attention.is_empty() {
        let groups = by_cause(&attention);
        let _ = writeln!(out);
        let causes = if groups.len() < attention.len() {
            format!(
                "; {} distinct cause{}",
                groups.len(),
                if groups.len() == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "{}",
            p.bold(&format!("Needs attention ({}{causes}):", attention.len()))
        );
        for group in groups {
            if let [s] = group.as_slice() {
                write_explanation(&mut out, r.kind, s, &p, false);
                continue;
            }
            write_shared_cause(&mut out, r.kind, &group, &p);
            for s in group {
                write_explanation(&mut out, r.kind, s, &p, true);
            }
        }
    }

    let _ = writeln!(out);
    let _ = write!(out, "{}", p.bold(&super::counts_text(r.kind, &all)));
    if run {
        let _ = write!(
            out,
            "\n{}",
            p.dim("✗ contradicts the intent · ? says nothing certain · * observed differs from the model's prediction")
        );
    }
    out
}

fn write_policies(out: &mut String, r: &Results, p: &Paint) {
    let _ = writeln!(out, "Policies: {}", super::policies_text(r));
    for pol in &r.policies {
        if let PolicyStatus::Rejected { reason } = &pol.status {
            let _ = writeln!(
                out,
                "  {} {} ({}:{})\n    {}",
                p.code("rejected", "33;1"),
                pol.name,
                super::terminal_file(&pol.file),
                pol.line,
                super::wrap(reason, p.width, 4)
            );
        }
    }
    for pol in &r.policies {
        for w in &pol.warnings {
            let head = format!("  warning {}: ", pol.name);
            let text = super::wrap_from(w, p.width, head.chars().count(), 4);
            let _ = writeln!(out, "  {} {}: {text}", p.code("warning", "33"), pol.name);
        }
    }
}

/// One labelled line of an explanation: `    model   deny l7 ingress: …`, wrapped under the text.
fn labelled(out: &mut String, label: &str, text: &str, p: &Paint) {
    const INDENT: usize = 12;
    let _ = writeln!(
        out,
        "    {}{}",
        p.dim(&pad(label, INDENT - 4)),
        super::wrap(text, p.width, INDENT)
    );
}

/// The scenarios that need attention, grouped by their model explanation (with its notes), groups in the
/// order of their first scenario.
fn by_cause<'a>(attention: &[&'a ScenarioResult]) -> Vec<Vec<&'a ScenarioResult>> {
    let mut groups: Vec<Vec<&ScenarioResult>> = Vec::new();
    for s in attention {
        let same = |g: &Vec<&ScenarioResult>| {
            g[0].model.explanation == s.model.explanation && g[0].model.notes == s.model.notes
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    groups
}

/// The head of a group of scenarios with one cause: the explanation and notes, once.
fn write_shared_cause(out: &mut String, kind: ResultsKind, group: &[&ScenarioResult], p: &Paint) {
    let first = group[0];
    let cells = evidence::cells(kind, first);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {}",
        p.bold(&format!("One cause, {} scenarios:", group.len()))
    );
    labelled(
        out,
        "model",
        &format!(
            "{}{}: {}",
            marker(cells.model),
            evidence::model_short(first),
            first.model.explanation
        ),
        p,
    );
    for n in &first.model.notes {
        labelled(out, "", &format!("note: {n}"), p);
    }
}

fn write_explanation(
    out: &mut String,
    kind: ResultsKind,
    s: &ScenarioResult,
    p: &Paint,
    cause_above: bool,
) {
    let cells = evidence::cells(kind, s);
    let mut status = s.status.as_str().to_string();
    if s.model_divergence {
        status.push_str(", model divergence");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {} · {} · {}",
        p.bold(&s.id),
        p.status(s.status, &status),
        s.description
    );
    if !s.reason.is_empty() {
        labelled(out, "why", &s.reason, p);
    }
    let route = evidence::route(s);
    let request = evidence::request_short(s);
    if !route.is_empty() || !request.is_empty() {
        labelled(
            out,
            "probe",
            &[route, request]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" · "),
            p,
        );
    }
    labelled(out, "intent", &s.intent.to_string(), p);
    if cause_above {
        labelled(
            out,
            "model",
            &format!(
                "{}{}: the cause above",
                marker(cells.model),
                evidence::model_short(s)
            ),
            p,
        );
    } else {
        labelled(
            out,
            "model",
            &format!(
                "{}{}: {}",
                marker(cells.model),
                evidence::model_short(s),
                s.model.explanation
            ),
            p,
        );
        for n in &s.model.notes {
            labelled(out, "", &format!("note: {n}"), p);
        }
    }
    if kind == ResultsKind::Run {
        match &s.client {
            Some(c) => labelled(
                out,
                "client",
                &format!("{}{}: {}", marker(cells.client), c.outcome, c.detail),
                p,
            ),
            None => labelled(out, "client", "not collected", p),
        }
        match &s.hubble {
            Some(h) => {
                labelled(
                    out,
                    "hubble",
                    &format!(
                        "{}{}: {}",
                        marker(cells.hubble),
                        evidence::hubble_short(s),
                        h.detail
                    ),
                    p,
                );
                for f in &h.flows {
                    labelled(out, "", &format!("flow {}", evidence::flow_line(f)), p);
                }
            }
            None => labelled(out, "hubble", "not collected", p),
        }
    }
    if let Some(n) = &s.note {
        labelled(out, "note", n, p);
    }
}
