//! `harness diff`: verdict changes between two results documents.

use crate::results::Results;

/// The changes between two results documents.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Diff {
    pub widening: Vec<String>,
}

impl Diff {
    /// Whether anything that was denied became allowed.
    pub fn has_widening(&self) -> bool {
        !self.widening.is_empty()
    }
}

/// Compare two results documents.
pub fn diff(_before: &Results, _after: &Results) -> Diff {
    Diff::default()
}

/// Render a diff for a terminal (or Markdown).
pub fn render(d: &Diff, _markdown: bool) -> String {
    format!("{} widening change(s)", d.widening.len())
}
