//! GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`: the counts, one table per phase (short cells
//! only), then everything that needs attention explained in lists.

use std::fmt::Write as _;

use super::evidence::{self, CellState};
use crate::model::PolicyStatus;
use crate::results::{Results, ResultsKind, ScenarioResult, Status};

/// Escape text for Markdown: characters that would start emphasis, links, HTML or table cells are
/// escaped; text between backticks stays a code span (only `|`, which would end a table cell, is escaped
/// there). An unmatched backtick is escaped.
pub fn text(s: &str) -> String {
    let ticks = s.matches('`').count();
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    let mut seen_ticks = 0;
    for (i, &ch) in chars.iter().enumerate() {
        // An underscore inside a word (`connect_timeout`) never starts emphasis in GFM.
        let inside_word = |i: usize| {
            i > 0
                && chars[i - 1].is_alphanumeric()
                && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
        };
        match ch {
            '\n' | '\r' => out.push(' '),
            '`' => {
                seen_ticks += 1;
                // The last backtick of an odd count has no partner: escape it.
                if ticks % 2 == 1 && seen_ticks == ticks {
                    out.push_str("\\`");
                } else {
                    in_code = !in_code;
                    out.push('`');
                }
            }
            '|' => out.push_str("\\|"),
            _ if in_code => out.push(ch),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '_' if inside_word(i) => out.push(ch),
            '#' if i > 0 => out.push(ch),
            '\\' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// A code span around any text (backticks inside are avoided by a longer fence).
fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

fn status_badge(st: Status) -> String {
    let icon = match st {
        Status::Met | Status::Pass => "✅",
        Status::Gap | Status::Fail => "❌",
        Status::Inconclusive => "⚠️",
        Status::NotApplicable => "➖",
    };
    format!("{icon} {}", st.as_str())
}

fn cell(state: CellState, value: &str) -> String {
    let v = text(value);
    match state {
        CellState::Contradicts => format!("**{v}** ✗"),
        CellState::Unclear => format!("{v} ?"),
        CellState::Agrees | CellState::Empty => v,
    }
}

pub(super) fn render(r: &Results) -> String {
    let run = r.kind == ResultsKind::Run;
    let mut out = String::new();
    let all: Vec<&ScenarioResult> = r.scenarios.iter().collect();
    let icon = if super::all_good(r) { "✅" } else { "❌" };
    let _ = writeln!(
        out,
        "## {icon} Cilium policy conformance: {}\n",
        text(&super::headline(r))
    );
    let _ = writeln!(out, "**{}**\n", text(&super::counts_text(r.kind, &all)));
    let _ = writeln!(out, "{}\n", text(&super::environment_details(r)));

    let _ = writeln!(out, "**Policies**: {}", text(&super::policies_text(r)));
    for p in &r.policies {
        if let PolicyStatus::Rejected { reason } = &p.status {
            let _ = writeln!(
                out,
                "- ⛔ rejected {} ({}): {}",
                code(&p.name),
                code(&format!("{}:{}", super::short_file(&p.file), p.line)),
                text(reason)
            );
        }
    }
    for p in &r.policies {
        for w in &p.warnings {
            let _ = writeln!(out, "- ⚠️ {}: {}", code(&p.name), text(w));
        }
    }
    let _ = writeln!(out);

    for (phase, scenarios) in super::phases(r) {
        let _ = writeln!(
            out,
            "### {} — {}\n",
            text(phase),
            text(&super::counts_text(r.kind, &scenarios))
        );
        if run {
            let _ = writeln!(
                out,
                "| Scenario | Intent | Model | Client | Hubble | Status |"
            );
            let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        } else {
            let _ = writeln!(out, "| Scenario | Intent | Model | Status |");
            let _ = writeln!(out, "| --- | --- | --- | --- |");
        }
        for s in scenarios {
            let cells = evidence::cells(r.kind, s);
            let mut row = format!(
                "| {} | {} | {} |",
                code(&s.id),
                text(&s.intent.to_string()),
                cell(cells.model, &evidence::model_short(s))
            );
            if run {
                row.push_str(&format!(
                    " {} | {} |",
                    cell(cells.client, &evidence::client_short(s)),
                    cell(cells.hubble, &evidence::hubble_short(s))
                ));
            }
            let mut status = status_badge(s.status);
            if s.model_divergence {
                status.push_str(" (model diverged)");
            }
            row.push_str(&format!(" {status} |"));
            let _ = writeln!(out, "{row}");
        }
        let _ = writeln!(out);
    }

    let attention: Vec<&ScenarioResult> = all
        .iter()
        .copied()
        .filter(|s| evidence::needs_explaining(s))
        .collect();
    if !attention.is_empty() {
        let _ = writeln!(out, "### Needs attention ({})\n", attention.len());
        for s in attention {
            explain(&mut out, r.kind, s);
        }
    }
    if run {
        let _ = writeln!(
            out,
            "✗ contradicts the intent · ? says nothing certain · model diverged: the observation differs from the model's prediction"
        );
    }
    out
}

fn explain(out: &mut String, kind: ResultsKind, s: &ScenarioResult) {
    let cells = evidence::cells(kind, s);
    let mut head = format!(
        "{} {}: {}",
        status_badge(s.status),
        code(&s.id),
        text(&s.description)
    );
    if s.model_divergence {
        head.push_str(" (model diverged)");
    }
    let _ = writeln!(out, "#### {head}\n");
    if !s.reason.is_empty() {
        let _ = writeln!(out, "- **why**: {}", text(&s.reason));
    }
    let probe: Vec<String> = [evidence::route(s), evidence::request_short(s)]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
    if !probe.is_empty() {
        let _ = writeln!(out, "- **probe**: {}", text(&probe.join(" · ")));
    }
    let _ = writeln!(out, "- **intent**: {}", text(&s.intent.to_string()));
    let _ = writeln!(
        out,
        "- **model** {}: {}",
        cell(cells.model, &evidence::model_short(s)),
        text(&s.model.explanation)
    );
    for n in &s.model.notes {
        let _ = writeln!(out, "  - note: {}", text(n));
    }
    if kind == ResultsKind::Run {
        match &s.client {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "- **client** {}: {}",
                    cell(cells.client, c.outcome.as_str()),
                    text(&c.detail)
                );
            }
            None => {
                let _ = writeln!(out, "- **client**: not collected");
            }
        }
        match &s.hubble {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "- **hubble** {}: {}",
                    cell(cells.hubble, &evidence::hubble_short(s)),
                    text(&h.detail)
                );
                for f in &h.flows {
                    let _ = writeln!(out, "  - {}", code(&evidence::flow_line(f)));
                }
            }
            None => {
                let _ = writeln!(out, "- **hubble**: not collected");
            }
        }
    }
    if let Some(n) = &s.note {
        let _ = writeln!(out, "- **note**: {}", text(n));
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_text_escapes_html_emphasis_and_cell_separators_but_keeps_code_spans() {
        assert_eq!(
            text("<script>a|b</script>"),
            "&lt;script&gt;a\\|b&lt;/script&gt;"
        );
        assert_eq!(
            text("a *b* _c_ connect_timeout"),
            "a \\*b\\* \\_c\\_ connect_timeout"
        );
        assert_eq!(text("# not a heading, §7 #2"), "\\# not a heading, §7 #2");
        assert_eq!(text("add `k8s:a_b: *` now"), "add `k8s:a_b: *` now");
        assert_eq!(text("odd ` tick"), "odd \\` tick");
        assert_eq!(text("two\nlines"), "two lines");
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a`b|c"), "`` a`b\\|c ``");
        assert_eq!(code("plain"), "`plain`");
    }
}
