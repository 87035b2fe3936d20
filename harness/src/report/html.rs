//! A self-contained HTML page: inline CSS, no external assets, no script. The scenario × evidence
//! matrix is grouped by phase; a cell that contradicts the intent (or says nothing certain) shows its
//! explanation in place — the model's explanation, the client's outcome, Hubble's decisive flows — and
//! every other cell keeps its explanation in a `<details>` element.

use std::fmt::Write as _;

use super::evidence::{self, CellState};
use crate::model::PolicyStatus;
use crate::results::{Results, ResultsKind, ScenarioResult, Status};

const CSS: &str = include_str!("report.css");

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Escape prose, and show `backticked` spans as code (the model writes field names and selectors that way).
/// An odd number of backticks leaves them all as they are.
pub fn prose(s: &str) -> String {
    let escaped = esc(s);
    if escaped.matches('`').count() % 2 == 1 {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + 16);
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// An anchor-safe id for a scenario row.
fn anchor(prefix: &str, s: &str) -> String {
    let body: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{body}")
}

/// A cell value: escaped, with a line-break opportunity after each `_` (`kafka_topic_authorization_failed`).
fn value(s: &str) -> String {
    format!("<span class=\"v\">{}</span>", esc(s).replace('_', "_<wbr>"))
}

fn badge(st: Status) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", st.as_str())
}

pub(super) fn render(r: &Results) -> String {
    let run = r.kind == ResultsKind::Run;
    let all: Vec<&ScenarioResult> = r.scenarios.iter().collect();
    let good = super::all_good(r);
    let mut o = String::new();
    let title = format!("Cilium policy conformance: {}", super::headline(r));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title),
        if good { "all good" } else { "needs attention" }
    );

    // Header: what was run, and the counts.
    let _ = writeln!(
        o,
        "<header>\n<h1>Cilium policy conformance<span class=\"verdict {}\">{}</span></h1>",
        if good { "good" } else { "bad" },
        if good {
            "every intent holds"
        } else {
            "needs attention"
        }
    );
    let e = &r.environment;
    let _ = writeln!(
        o,
        "<p class=\"env\">posture <b>{}</b> · Cilium <b>{}</b> · {} · {}</p>",
        esc(&e.posture),
        esc(&e.cilium),
        esc(super::kind_words(r.kind)),
        esc(&super::environment_details(r))
    );
    write_counts(&mut o, r);
    let _ = writeln!(o, "</header>");

    write_attention(&mut o, r, &all);
    write_policies(&mut o, r);

    let phases = super::phases(r);
    let _ = writeln!(o, "<nav class=\"phases\" aria-label=\"phases\">");
    for (phase, scenarios) in &phases {
        let bad = scenarios.iter().any(|s| evidence::needs_explaining(s));
        let _ = writeln!(
            o,
            "<a href=\"#{}\"{}>{} <span class=\"muted\">{}</span></a>",
            esc(&anchor("phase", phase)),
            if bad { " class=\"bad\"" } else { "" },
            esc(phase),
            scenarios.len()
        );
    }
    let _ = writeln!(o, "</nav>");

    for (phase, scenarios) in &phases {
        let _ = writeln!(
            o,
            "<section class=\"phase\" id=\"{}\" data-phase=\"{}\">\n<h2>{}<small>{}</small></h2>",
            esc(&anchor("phase", phase)),
            esc(phase),
            esc(phase),
            esc(&super::counts_text(r.kind, scenarios))
        );
        let _ = writeln!(o, "<table class=\"matrix\">");
        if run {
            let _ = writeln!(
                o,
                "<colgroup><col style=\"width:28%\"><col style=\"width:9%\"><col style=\"width:19%\">\
                 <col style=\"width:14%\"><col style=\"width:18%\"><col style=\"width:12%\"></colgroup>\n\
                 <thead><tr><th>Scenario</th><th>Intent</th><th>Model</th><th>Client</th><th>Hubble</th><th>Status</th></tr></thead>"
            );
        } else {
            let _ = writeln!(
                o,
                "<colgroup><col style=\"width:30%\"><col style=\"width:10%\"><col style=\"width:46%\"><col style=\"width:14%\"></colgroup>\n\
                 <thead><tr><th>Scenario</th><th>Intent</th><th>Model</th><th>Status</th></tr></thead>"
            );
        }
        let _ = writeln!(o, "<tbody>");
        for s in scenarios {
            write_row(&mut o, r.kind, s);
        }
        let _ = writeln!(o, "</tbody>\n</table>\n</section>");
    }

    let _ = writeln!(
        o,
        "<p class=\"legend\"><span class=\"contradicts\">red cell</span> contradicts the intent · \
         <span class=\"unclear\">amber cell</span> says nothing certain (evidence missing or unclear) · \
         <b>model diverged</b>: what was observed differs from the model's prediction · \
         other explanations open with a click on <i>why</i></p>"
    );
    let _ = writeln!(o, "</body>\n</html>");
    o
}

fn write_counts(o: &mut String, r: &Results) {
    let sm = crate::results::Summary::of(&r.scenarios);
    let mut cards: Vec<(&str, usize, &str)> = vec![("total", sm.total, "scenarios")];
    match r.kind {
        ResultsKind::Check => {
            cards.push(("pass", sm.met, "met"));
            cards.push(("fail", sm.gaps, if sm.gaps == 1 { "gap" } else { "gaps" }));
        }
        ResultsKind::Run => {
            cards.push(("pass", sm.pass, "pass"));
            cards.push(("fail", sm.fail, "fail"));
            cards.push(("inconclusive", sm.inconclusive, "inconclusive"));
        }
    }
    if sm.not_applicable > 0 {
        cards.push(("not-applicable", sm.not_applicable, "not applicable"));
    }
    if sm.model_divergences > 0 {
        cards.push((
            "divergence",
            sm.model_divergences,
            if sm.model_divergences == 1 {
                "model divergence"
            } else {
                "model divergences"
            },
        ));
    }
    let _ = writeln!(o, "<div class=\"counts\">");
    for (class, n, word) in cards {
        let _ = writeln!(
            o,
            "<div class=\"count {class}\"><span class=\"n\">{n}</span>{}</div>",
            esc(word)
        );
    }
    let _ = writeln!(o, "</div>");
}

fn write_attention(o: &mut String, r: &Results, all: &[&ScenarioResult]) {
    let attention: Vec<&&ScenarioResult> = all
        .iter()
        .filter(|s| evidence::needs_explaining(s))
        .collect();
    if attention.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<section class=\"card attention\">\n<h2>Needs attention <small>{}</small></h2>\n<ul class=\"plain\">",
        attention.len()
    );
    for s in attention {
        let mut reason = s.reason.clone();
        if reason.is_empty() && s.model_divergence {
            reason = "observed differs from the model's prediction".into();
        }
        let _ = writeln!(
            o,
            "<li>{} <a href=\"#{}\"><code>{}</code></a> <span class=\"muted\">({})</span>{}{}</li>",
            badge(s.status),
            esc(&anchor("s", &s.id)),
            esc(&s.id),
            esc(&s.phase),
            if s.model_divergence && r.kind == ResultsKind::Run {
                " <span class=\"badge divergence\">model diverged</span>"
            } else {
                ""
            },
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {}", prose(&reason))
            }
        );
    }
    let _ = writeln!(o, "</ul>\n</section>");
}

fn write_policies(o: &mut String, r: &Results) {
    let _ = writeln!(
        o,
        "<section class=\"card policies\">\n<h2>Policies <small>{}</small></h2>",
        esc(&super::policies_text(r))
    );
    if r.policies.is_empty() {
        let _ = writeln!(o, "<p class=\"muted\">No policies.</p>\n</section>");
        return;
    }
    let _ = writeln!(
        o,
        "<table class=\"policies\">\n<thead><tr><th>Policy</th><th>File</th><th>Status</th><th>Warnings</th></tr></thead>\n<tbody>"
    );
    // Rejected policies first: they are the ones that do not do what the file says.
    let mut ordered: Vec<_> = r.policies.iter().collect();
    ordered.sort_by_key(|p| (p.status == PolicyStatus::InForce, p.warnings.is_empty()));
    for p in ordered {
        let (class, status) = match &p.status {
            PolicyStatus::InForce => (
                "in-force",
                "<span class=\"badge pass\">in force</span>".to_string(),
            ),
            PolicyStatus::Rejected { reason } => (
                "rejected",
                format!(
                    "<span class=\"badge fail\">rejected</span><div class=\"why\">{}</div>",
                    prose(reason)
                ),
            ),
        };
        let warnings = if p.warnings.is_empty() {
            String::new()
        } else {
            format!(
                "<ul class=\"plain\">{}</ul>",
                p.warnings
                    .iter()
                    .map(|w| format!("<li>{}</li>", prose(w)))
                    .collect::<String>()
            )
        };
        let _ = writeln!(
            o,
            "<tr class=\"{class}\"><td><code>{}</code></td><td><code>{}:{}</code></td><td>{status}</td><td>{warnings}</td></tr>",
            esc(&p.name),
            esc(super::short_file(&p.file)),
            p.line
        );
    }
    let _ = writeln!(o, "</tbody>\n</table>\n</section>");
}

/// The explanation of a cell: shown in place when the cell needs attention, else behind `why`.
fn explained(open: bool, body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else if open {
        body.to_string()
    } else {
        format!("<details><summary>why</summary>{body}</details>")
    }
}

fn flows_list(flows: &[serde_json::Value]) -> String {
    if flows.is_empty() {
        return String::new();
    }
    let items: String = flows
        .iter()
        .map(|f| format!("<li><code>{}</code></li>", esc(&evidence::flow_line(f))))
        .collect();
    format!("<ul class=\"flows\">{items}</ul>")
}

fn write_row(o: &mut String, kind: ResultsKind, s: &ScenarioResult) {
    let cells = evidence::cells(kind, s);
    let _ = write!(
        o,
        "<tr class=\"scenario status-{0}\" id=\"{1}\" data-id=\"{2}\" data-status=\"{0}\">",
        s.status.as_str(),
        esc(&anchor("s", &s.id)),
        esc(&s.id)
    );

    // Scenario: id, description, what is probed.
    let probe: Vec<String> = [evidence::route(s), evidence::request_short(s)]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
    let note = s
        .note
        .as_ref()
        .map(|n| {
            format!(
                "<details><summary>note</summary><div class=\"why\">{}</div></details>",
                prose(n)
            )
        })
        .unwrap_or_default();
    let _ = write!(
        o,
        "<td class=\"scenario\"><code class=\"id\">{}</code><div class=\"desc\">{}</div><div class=\"route\">{}</div>{note}</td>",
        esc(&s.id),
        esc(&s.description),
        esc(&probe.join(" · "))
    );

    let _ = write!(
        o,
        "<td class=\"cell intent\">{}</td>",
        value(&s.intent.to_string())
    );

    // Model.
    let mut body = format!("<div class=\"why\">{}</div>", prose(&s.model.explanation));
    for n in &s.model.notes {
        let _ = write!(body, "<div class=\"why muted\">note: {}</div>", prose(n));
    }
    if !s.model.policies.is_empty() {
        let _ = write!(
            body,
            "<div class=\"why muted\">policies: {}</div>",
            esc(&s.model.policies.join(", "))
        );
    }
    let model_open = cells.model != CellState::Agrees || s.model_divergence;
    let diverges = if s.model_divergence { " diverges" } else { "" };
    let _ = write!(
        o,
        "<td class=\"cell model {}{diverges}\">{}{}</td>",
        cells.model.as_str(),
        value(&evidence::model_short(s)),
        explained(model_open, &body)
    );

    if kind == ResultsKind::Run {
        // Client. A missing column is "not collected" unless nothing was expected there (Empty).
        let missing = |state: CellState| {
            if state == CellState::Empty {
                String::new()
            } else {
                "<div class=\"why\">not collected</div>".to_string()
            }
        };
        let (text, body) = match &s.client {
            Some(c) => (
                c.outcome.as_str().to_string(),
                format!("<div class=\"why\">{}</div>", prose(&c.detail)),
            ),
            None => ("—".to_string(), missing(cells.client)),
        };
        let open = matches!(cells.client, CellState::Contradicts | CellState::Unclear);
        let _ = write!(
            o,
            "<td class=\"cell client {}\">{}{}</td>",
            cells.client.as_str(),
            value(&text),
            explained(open, &body)
        );
        // Hubble, with the flows that decided.
        let (text, body) = match &s.hubble {
            Some(h) => (
                evidence::hubble_short(s),
                format!(
                    "<div class=\"why\">{}</div>{}",
                    prose(&h.detail),
                    flows_list(&h.flows)
                ),
            ),
            None => ("—".to_string(), missing(cells.hubble)),
        };
        let open = matches!(cells.hubble, CellState::Contradicts | CellState::Unclear);
        let _ = write!(
            o,
            "<td class=\"cell hubble {}\">{}{}</td>",
            cells.hubble.as_str(),
            value(&text),
            explained(open, &body)
        );
    }

    // Status, with the reason when it is not a pass.
    let mut status = badge(s.status);
    if let Some(ms) = s.timings.total_ms {
        let _ = write!(
            status,
            "<span class=\"timing\">{}</span>",
            esc(&duration(ms))
        );
    }
    if s.model_divergence {
        status.push_str("<div><span class=\"badge divergence\">model diverged</span></div>");
    }
    // A pass that diverged from the model needs no reason here: the model cell explains itself.
    if !s.reason.is_empty() && !matches!(s.status, Status::Met | Status::Pass) {
        let _ = write!(status, "<div class=\"why\">{}</div>", prose(&s.reason));
    }
    let _ = writeln!(o, "<td class=\"cell status\">{status}</td></tr>");
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn backticked_spans_become_code_and_stay_escaped() {
        assert_eq!(
            prose("add `a: <b>` now"),
            "add <code>a: &lt;b&gt;</code> now"
        );
        assert_eq!(prose("odd ` tick <i>"), "odd ` tick &lt;i&gt;");
    }

    #[test]
    fn anchors_keep_only_safe_characters() {
        assert_eq!(anchor("s", "a b/<c>"), "s-a-b--c-");
    }
}
