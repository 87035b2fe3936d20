//! Reading YAML input files with errors that name the file, the line and the field.
//!
//! Every file the harness reads (policies, manifests, scenarios, queries, Helm values) goes through here, so
//! that a bad input always produces the same kind of message: `path:line:column: what is wrong`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A problem with an input file. The CLI maps it to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is wrong at a known place.
    #[error("{}", .0)]
    At(Located),
    /// Something about the set of inputs as a whole is wrong (for example a scenario naming a workload
    /// that no manifest defines).
    #[error("{0}")]
    Invalid(String),
}

/// A message tied to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl InputError {
    /// An error at a known line of a file.
    pub fn at(path: &Path, line: Option<u64>, message: impl Into<String>) -> Self {
        InputError::At(Located {
            path: path.to_path_buf(),
            line,
            column: None,
            message: message.into(),
        })
    }
}

/// Turn a serde-saphyr error into a located message without its source snippet.
fn located(path: &Path, err: &serde_saphyr::Error) -> Located {
    let loc = err.location();
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Strip the "line N column M: " prefix: the location is printed in `path:line:col` form instead.
    let message = match first.find(": ") {
        Some(idx) if first.starts_with("line ") => &first[idx + 2..],
        _ => first,
    };
    Located {
        path: path.to_path_buf(),
        line: loc.as_ref().map(|l| l.line()).filter(|l| *l > 0),
        column: loc.as_ref().map(|l| l.column()).filter(|c| *c > 0),
        message: message.to_string(),
    }
}

/// Read a whole file as text.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse one YAML document of type `T` from `text`, attributing errors to `path`.
pub fn parse_one<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InputError> {
    serde_saphyr::from_str(text).map_err(|e| InputError::At(located(path, &e)))
}

/// Read and parse one YAML document of type `T`.
pub fn read_one<T: DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = read_text(path)?;
    parse_one(path, &text)
}

/// A YAML document of a multi-document file, with the line it starts on.
pub struct Document<'a> {
    pub text: &'a str,
    /// 1-based line of the document's first line in the file.
    pub first_line: u64,
}

/// Split a multi-document YAML text on `---` separator lines. Empty documents (only comments or blank
/// lines) are dropped.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u64;
    let mut offset = 0usize;
    for (line_no, line) in (1u64..).zip(text.split_inclusive('\n')) {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(Document {
                text: &text[start..offset],
                first_line: start_line,
            });
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line: start_line,
    });
    docs.retain(|d| {
        d.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Parse one document of a multi-document file; line numbers in errors refer to the whole file.
pub fn parse_document<T: DeserializeOwned>(
    path: &Path,
    doc: &Document<'_>,
) -> Result<T, InputError> {
    serde_saphyr::from_str(doc.text).map_err(|e| {
        let mut l = located(path, &e);
        l.line = l
            .line
            .map(|n| n + doc.first_line - 1)
            .or(Some(doc.first_line));
        InputError::At(l)
    })
}

/// The YAML files of a directory (`*.yaml`, `*.yml`), sorted by name; a file path is returned as is.
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        let is_yaml = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if is_yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Small {
        #[allow(dead_code)]
        a: u32,
    }

    #[test]
    fn unknown_field_error_names_file_line_and_field() {
        let err = parse_one::<Small>(Path::new("x.yaml"), "a: 1\nbogus: 2\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.yaml:2:1: "), "{text}");
        assert!(text.contains("bogus"), "{text}");
    }

    #[test]
    fn document_errors_carry_line_numbers_of_the_whole_file() {
        let text = "# head\na: 1\n---\na: 2\n---\n\na: x\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[2].first_line, 6);
        let err = parse_document::<Small>(Path::new("m.yaml"), &docs[2]).unwrap_err();
        assert!(err.to_string().starts_with("m.yaml:7:"), "{err}");
    }

    #[test]
    fn comment_only_documents_are_dropped() {
        let docs = split_documents("# only a comment\n---\na: 1\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 3);
    }
}
