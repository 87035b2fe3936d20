//! Reports people read, rendered from a results document: a terminal table, Markdown for CI job
//! summaries, and a self-contained HTML page.
//!
//! Every format shows the same things in the same order: the environment, the policies (rejected ones and
//! warnings first), then the scenarios grouped by phase, one row per scenario with its four columns
//! (intent, model, client, Hubble) and status, and an explanation for everything that needs attention
//! (failures, gaps, inconclusive and not-applicable scenarios, model divergences).
//!
//! # Caveats
//! The status of a scenario is taken from the document as written; a report never re-judges it. Which
//! cells of a row are marked as contradicting the intent is derived from the evidence ([`evidence`]).

pub mod evidence;
mod html;
mod markdown;
mod table;

pub use markdown::text as markdown_text;

use crate::model::PolicyStatus;
use crate::results::{Results, ResultsKind, ScenarioResult, Summary};

/// The formats of `harness report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Markdown,
    Html,
}

/// Render a results document. `colour` applies to the table only (ANSI escapes; pass `false` when the
/// output is not a terminal or `NO_COLOR` is set).
pub fn render(results: &Results, format: ReportFormat, colour: bool) -> String {
    match format {
        ReportFormat::Table => table::render(results, colour, terminal_width()),
        ReportFormat::Markdown => markdown::render(results),
        ReportFormat::Html => html::render(results),
    }
}

/// The width explanations are wrapped at when the output is not a terminal.
pub const FIXED_WIDTH: usize = 100;

/// The terminal table with explanations wrapped at `width` columns.
pub fn render_table(results: &Results, colour: bool, width: usize) -> String {
    table::render(results, colour, width)
}

/// The width of stdout's terminal (between 60 and 160 columns), or [`FIXED_WIDTH`] when stdout is not a
/// terminal, so that files and CI logs do not depend on who ran the command.
pub fn terminal_width() -> usize {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return FIXED_WIDTH;
    }
    terminal_size::terminal_size()
        .map(|(w, _)| usize::from(w.0).clamp(60, 160))
        .unwrap_or(FIXED_WIDTH)
}

/// The scenarios grouped by phase, phases in the order they first appear, scenarios in document order.
pub fn phases(results: &Results) -> Vec<(&str, Vec<&ScenarioResult>)> {
    let mut out: Vec<(&str, Vec<&ScenarioResult>)> = Vec::new();
    for s in &results.scenarios {
        match out.iter_mut().find(|(p, _)| *p == s.phase) {
            Some((_, list)) => list.push(s),
            None => out.push((s.phase.as_str(), vec![s])),
        }
    }
    out
}

/// Counts in words: `40 scenarios: 16 met, 24 gaps` (check) or
/// `44 scenarios: 36 pass, 4 fail, 2 inconclusive, 1 not applicable; 2 model divergences` (run).
/// Zero counts are left out, except the first two of each kind.
pub fn counts_text(kind: ResultsKind, scenarios: &[&ScenarioResult]) -> String {
    let owned: Vec<ScenarioResult> = scenarios.iter().map(|s| (*s).clone()).collect();
    let sm = Summary::of(&owned);
    let mut parts = Vec::new();
    let mut push = |n: usize, word: &str, always: bool| {
        if n > 0 || always {
            parts.push(format!("{n} {word}"));
        }
    };
    match kind {
        ResultsKind::Check => {
            push(sm.met, "met", true);
            push(sm.gaps, if sm.gaps == 1 { "gap" } else { "gaps" }, true);
            push(sm.pass, "pass", false);
            push(sm.fail, "fail", false);
            push(sm.inconclusive, "inconclusive", false);
        }
        ResultsKind::Run => {
            push(sm.pass, "pass", true);
            push(sm.fail, "fail", true);
            push(sm.inconclusive, "inconclusive", false);
            push(sm.met, "met", false);
            push(sm.gaps, if sm.gaps == 1 { "gap" } else { "gaps" }, false);
        }
    }
    push(sm.not_applicable, "not applicable", false);
    let mut text = format!(
        "{} scenario{}: {}",
        sm.total,
        if sm.total == 1 { "" } else { "s" },
        parts.join(", ")
    );
    if sm.model_divergences > 0 {
        text.push_str(&format!(
            "; {} model divergence{}",
            sm.model_divergences,
            if sm.model_divergences == 1 { "" } else { "s" }
        ));
    }
    text
}

/// Whether the document as a whole is good: every scenario met or passed (not-applicable ones aside).
pub fn all_good(results: &Results) -> bool {
    results.scenarios.iter().all(|s| {
        matches!(
            s.status,
            crate::results::Status::Met
                | crate::results::Status::Pass
                | crate::results::Status::NotApplicable
        )
    })
}

/// `posture hardened · Cilium 1.19 · live run`, then `· not run: <cause>` when the run's set-up failed
/// (the first line of [`Results::setup_error`]).
pub fn headline(results: &Results) -> String {
    let mut text = format!(
        "posture {} · Cilium {} · {}",
        results.environment.posture,
        results.environment.cilium,
        kind_words(results.kind)
    );
    if let Some(why) = &results.setup_error {
        text.push_str(" · not run: ");
        text.push_str(why.lines().next().unwrap_or_default());
    }
    text
}

/// `live run` / `offline check (model only)`.
pub fn kind_words(kind: ResultsKind) -> &'static str {
    match kind {
        ResultsKind::Run => "live run",
        ResultsKind::Check => "offline check (model only)",
    }
}

/// The remaining environment facts: `kind v0.29.0 · Kubernetes v1.33.1 · 2026-11-27T18:00:00Z · harness 0.1.0`.
pub fn environment_details(results: &Results) -> String {
    let e = &results.environment;
    let mut parts = Vec::new();
    if let Some(k) = &e.kind {
        parts.push(format!("kind {k}"));
    }
    if let Some(k) = &e.kubernetes {
        parts.push(format!("Kubernetes {k}"));
    }
    parts.push(e.time.clone());
    parts.push(format!("harness {}", e.harness));
    parts.join(" · ")
}

/// `10 policies, 9 in force`.
pub fn policies_text(results: &Results) -> String {
    let total = results.policies.len();
    let in_force = results
        .policies
        .iter()
        .filter(|p| p.status == PolicyStatus::InForce)
        .count();
    format!(
        "{total} polic{}, {in_force} in force",
        if total == 1 { "y" } else { "ies" }
    )
}

/// A policy's file relative to the repository when it lies inside one (`policies/seed/x.yaml`), so that
/// reports do not carry the absolute paths of the machine that wrote them.
pub fn short_file(file: &str) -> &str {
    if !std::path::Path::new(file).is_absolute() {
        return file;
    }
    match file.find("/policies/") {
        Some(i) => &file[i + 1..],
        None => file,
    }
}

/// A policy's file as a terminal shows it: relative to the working directory when it lies below or near
/// it (`../policies/seed/x.yaml` from `harness/`), otherwise as [`short_file`].
pub fn terminal_file(file: &str) -> String {
    let shown = crate::load::display_path(std::path::Path::new(file));
    if std::path::Path::new(&shown).is_absolute() {
        short_file(file).to_string()
    } else {
        shown
    }
}

/// Wrap `text` at `width` columns for a block that starts at column `indent` (the caller writes the first
/// line's indentation, e.g. a label); continuation lines start with `indent` spaces. Words longer than the
/// width are kept whole.
pub fn wrap(text: &str, width: usize, indent: usize) -> String {
    wrap_from(text, width, indent, indent)
}

/// Like [`wrap`], for a first line that starts at column `first` (after a longer label).
pub fn wrap_from(text: &str, width: usize, first: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = first;
    let mut at_start = true;
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if !at_start && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if !at_start {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        at_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_indents_continuation_lines() {
        assert_eq!(wrap("aaa bbb ccc", 9, 2), "aaa bbb\n  ccc");
        assert_eq!(wrap("a-very-long-word x", 5, 1), "a-very-long-word\n x");
        assert_eq!(wrap("", 10, 0), "");
        assert_eq!(wrap_from("aaa bbb", 8, 4, 1), "aaa\n bbb");
    }

    #[test]
    fn policy_files_are_shown_relative_to_the_repository() {
        assert_eq!(
            short_file("/work/main/policies/seed/a.yaml"),
            "policies/seed/a.yaml"
        );
        assert_eq!(short_file("elsewhere/a.yaml"), "elsewhere/a.yaml");
    }
}
