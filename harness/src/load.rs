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
    #[error("{}: cannot read: {source}", display_path(.path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", display_path(.path))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Several problems, each at a known place (for example every CRD schema violation of a posture).
    #[error("{}", .0.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Located>),
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

/// A path as people should read it: relative to the working directory when it lies below it (or near it:
/// `../policies/x.yaml`), with `.` and `..` components resolved (`harness/../policies` is `policies`).
pub fn display_path(path: &Path) -> String {
    use std::path::Component;
    fn normal(p: &Path) -> Vec<Component<'_>> {
        let mut out: Vec<Component<'_>> = Vec::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => match out.last() {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                    _ => out.push(c),
                },
                other => out.push(other),
            }
        }
        out
    }
    let target = normal(path);
    let as_string = |cs: &[Component<'_>]| -> String {
        let p: PathBuf = cs.iter().collect();
        if p.as_os_str().is_empty() {
            ".".into()
        } else {
            p.display().to_string()
        }
    };
    if !path.is_absolute() {
        return as_string(&target);
    }
    let Ok(cwd) = std::env::current_dir() else {
        return as_string(&target);
    };
    let base = normal(&cwd);
    let common = base
        .iter()
        .zip(target.iter())
        .take_while(|(a, b)| a == b)
        .count();
    // Only the root in common, or more than two levels up: the absolute path reads better.
    if common <= 1 || base.len() - common > 2 {
        return as_string(&target);
    }
    let mut rel: Vec<Component<'_>> = vec![Component::ParentDir; base.len() - common];
    rel.extend_from_slice(&target[common..]);
    as_string(&rel)
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", display_path(&self.path))?;
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
    if let serde_saphyr::Error::DuplicateMappingKey { key, .. } = err.without_snippet() {
        let key = key.clone().unwrap_or_else(|| "?".into());
        let line = loc.as_ref().map(|l| l.line()).filter(|l| *l > 0);
        return Located {
            path: path.to_path_buf(),
            line,
            column: loc.as_ref().map(|l| l.column()).filter(|c| *c > 0),
            message: format!("key `{key}` appears twice in the same mapping; keep one"),
        };
    }
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

/// Edit distance between two strings (Levenshtein, on characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidates closest to `name` (at most a third of its length away, at least 2), nearest first.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().map(|(_, c)| c).collect()
}

/// Read a whole file as text.
///
/// # Errors
/// The file cannot be read, or is not UTF-8 (the message names the line and byte offset of the first
/// invalid byte).
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        InputError::at(
            path,
            Some(line),
            format!(
                "not UTF-8 text: byte 0x{:02x} at byte offset {at} is not valid UTF-8; save the file as UTF-8",
                bytes[at]
            ),
        )
    })
}

/// Write an output file; a failure says "cannot write FILE".
///
/// # Errors
/// The file cannot be created or written.
pub fn write_text(path: &Path, text: &str) -> Result<(), InputError> {
    std::fs::write(path, text).map_err(|source| InputError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse one YAML document of type `T` from `text`, attributing errors to `path`.
pub fn parse_one<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InputError> {
    serde_saphyr::from_str(text)
        .map_err(|e| InputError::At(with_first_key_line(located(path, &e), text, 1)))
}

/// For a duplicate key, name both lines: `key `name` appears twice (lines A and B)`.
fn with_first_key_line(mut l: Located, text: &str, first_line: u64) -> Located {
    let Some(key) = l
        .message
        .strip_prefix("key `")
        .and_then(|r| r.split_once("` appears twice"))
        .map(|(k, _)| k.to_string())
    else {
        return l;
    };
    let Some(second) = l.line else { return l };
    let lines: Vec<&str> = text.lines().collect();
    let local = (second + 1).saturating_sub(first_line) as usize; // 1-based line within `text`
    let key_col = |line: &str| -> Option<(usize, String)> {
        let body = line.trim_end();
        let mut col = body.len() - body.trim_start().len();
        let mut rest = body.trim_start();
        while let Some(r) = rest.strip_prefix("- ") {
            col += 2 + (r.len() - r.trim_start().len());
            rest = r.trim_start();
        }
        let (k, _) = rest.split_once(':')?;
        Some((
            col,
            k.trim().trim_matches(|c| c == '"' || c == '\'').to_string(),
        ))
    };
    let Some((col, _)) = lines.get(local.wrapping_sub(1)).and_then(|l| key_col(l)) else {
        return l;
    };
    for i in (0..local.saturating_sub(1)).rev() {
        let line = lines[i];
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match key_col(line) {
            Some((c, k)) if c == col && k == key => {
                let first = i as u64 + first_line;
                l.message = format!(
                    "key `{key}` appears twice in the same mapping (lines {first} and {second}); keep one"
                );
                return l;
            }
            Some((c, _)) if c < col => break,
            None if line.len() - t.len() < col => break,
            _ => {}
        }
    }
    l
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
        InputError::At(with_first_key_line(l, doc.text, doc.first_line))
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
