//! Validation of policies against the OpenAPI schema of Cilium's own CRDs.
//!
//! The API server validates every CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy against the
//! `openAPIV3Schema` of the installed CRD and refuses what violates it (an unquoted `port: 8080`, which the
//! CRD types as a string; a port pattern; a missing section). The harness applies the same schema, taken
//! verbatim from Cilium's CRDs and kept in `schemas/cilium/<version>/`, so that `check` never reports
//! "met" for a policy that `apply` would refuse. Violations are mapped back to the file, line and column
//! of the offending value.
//!
//! # Caveats
//! Only the CRD schemas of the versions in [`SCHEMA_VERSIONS`] are in the repository. For another covered
//! version, [`validate_policy_files`] uses the nearest one and says so in its notes. The API server's
//! checks outside the schema are not all imitated: `metadata.name` and `metadata.namespace` are checked by
//! the typed parser ([`crate::policy`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::load::{self, InputError, Located};
use crate::model::CiliumVersion;

/// The Cilium versions whose CRD schemas are in the repository.
pub const SCHEMA_VERSIONS: &[CiliumVersion] = &[CiliumVersion::new(1, 19)];

const CNP_1_19: &str = include_str!("../../schemas/cilium/1.19/ciliumnetworkpolicies.yaml");
const CCNP_1_19: &str =
    include_str!("../../schemas/cilium/1.19/ciliumclusterwidenetworkpolicies.yaml");

/// A YAML value with the place it was written.
#[derive(Debug, Clone)]
pub struct Node {
    pub line: u64,
    pub column: u64,
    pub value: NodeValue,
}

/// The value of a [`Node`]; scalars keep their YAML type (an unquoted `8080` is a number).
#[derive(Debug, Clone)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl From<Spanned<NodeValue>> for Node {
    fn from(s: Spanned<NodeValue>) -> Self {
        Node {
            line: s.referenced.line(),
            column: s.referenced.column(),
            value: s.value,
        }
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
                Ok(NodeValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
                Ok(NodeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
                Ok(NodeValue::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
                Ok(NodeValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
                Ok(NodeValue::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
                Ok(NodeValue::Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
                Ok(NodeValue::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
                Ok(NodeValue::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<NodeValue, D2::Error> {
                NodeValue::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<NodeValue>>()? {
                    items.push(Node::from(item));
                }
                Ok(NodeValue::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<NodeValue>()? {
                    let key = match key {
                        NodeValue::Str(s) => s,
                        NodeValue::Int(n) => n.to_string(),
                        NodeValue::UInt(n) => n.to_string(),
                        NodeValue::Bool(b) => b.to_string(),
                        NodeValue::Float(f) => f.to_string(),
                        NodeValue::Null => "null".into(),
                        NodeValue::Seq(_) | NodeValue::Map(_) => {
                            return Err(de::Error::custom("a mapping key must be a scalar"));
                        }
                    };
                    let value = map.next_value::<Spanned<NodeValue>>()?;
                    entries.push((key, Node::from(value)));
                }
                Ok(NodeValue::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl Node {
    /// Parse one YAML document of a file into nodes; lines refer to the whole file.
    ///
    /// # Errors
    /// The document is not YAML.
    pub fn parse(path: &Path, doc: &load::Document<'_>) -> Result<Node, InputError> {
        let root: Spanned<NodeValue> = load::parse_document(path, doc)?;
        let mut node = Node::from(root);
        node.shift(doc.first_line - 1);
        Ok(node)
    }

    fn shift(&mut self, by: u64) {
        if self.line > 0 {
            self.line += by;
        }
        match &mut self.value {
            NodeValue::Seq(items) => items.iter_mut().for_each(|n| n.shift(by)),
            NodeValue::Map(entries) => entries.iter_mut().for_each(|(_, n)| n.shift(by)),
            _ => {}
        }
    }

    /// The value as JSON. Mapping entries whose value is null are left out, as the API server prunes them
    /// before validating (no field of Cilium's CRDs is nullable).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(n) => Value::from(*n),
            NodeValue::UInt(n) => Value::from(*n),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .filter(|(_, n)| !matches!(n.value, NodeValue::Null))
                    .map(|(k, n)| (k.clone(), n.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node at a JSON pointer's segments, or the deepest node on the way.
    pub fn find<'a>(&'a self, segments: &[String]) -> &'a Node {
        let Some((first, rest)) = segments.split_first() else {
            return self;
        };
        let next = match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k == first).map(|(_, n)| n),
            NodeValue::Seq(items) => first.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => n.find(rest),
            None => self,
        }
    }

    /// The keys of a mapping (empty for other values).
    pub fn keys(&self) -> Vec<&str> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// `spec.ingress[0].toPorts[0].ports[0].port` for the segments of a JSON pointer.
fn field_path(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if s.parse::<usize>().is_ok() {
            out.push_str(&format!("[{s}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
    }
    out
}

/// The schema of a CRD file: `spec.versions[name=v2].schema.openAPIV3Schema`.
fn crd_schema(text: &str) -> Result<serde_json::Value, String> {
    let crd: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let versions = crd
        .pointer("/spec/versions")
        .and_then(|v| v.as_array())
        .ok_or("the CRD has no spec.versions")?;
    versions
        .iter()
        .find(|v| v.get("name").and_then(|n| n.as_str()) == Some("v2"))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .cloned()
        .ok_or_else(|| "the CRD has no v2 openAPIV3Schema".to_string())
}

fn build_validator(text: &str) -> Result<jsonschema::Validator, String> {
    let schema = crd_schema(text)?;
    // OpenAPI v3.0 schemas are a dialect of JSON Schema draft 4; `x-kubernetes-*` keywords are ignored.
    // Formats (cidr, date-time) are not checked here: the typed parser checks CIDRs itself.
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// The CRD kinds with a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Namespaced,
    Clusterwide,
}

fn validator(version: CiliumVersion, kind: Kind) -> Result<&'static jsonschema::Validator, String> {
    static CNP: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    static CCNP: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    // Only 1.19's schemas are kept; `schema_version_for` picks them for every covered version.
    let _ = version;
    let cell = match kind {
        Kind::Namespaced => CNP.get_or_init(|| build_validator(CNP_1_19)),
        Kind::Clusterwide => CCNP.get_or_init(|| build_validator(CCNP_1_19)),
    };
    cell.as_ref().map_err(|e| {
        format!("the CRD schema of Cilium {version} in the harness cannot be used: {e}")
    })
}

/// The version whose CRD schema validates policies for `version`: itself when the repository holds it,
/// otherwise the nearest one held.
pub fn schema_version_for(version: CiliumVersion) -> CiliumVersion {
    let key = |v: &CiliumVersion| (v.major, v.minor);
    SCHEMA_VERSIONS
        .iter()
        .copied()
        .min_by_key(|v| {
            let (a, b) = (key(v), key(&version));
            (a.0.abs_diff(b.0), a.1.abs_diff(b.1))
        })
        .unwrap_or(crate::model::version::DEFAULT_VERSION)
}

/// Validate every policy document of the files against the CRD schema for `version`.
///
/// Returns notes for the user (for example that another version's schema was used).
///
/// # Errors
/// Every violation, each with its file, line, column and field ([`InputError::Many`]); files that cannot
/// be read or parsed.
pub fn validate_policy_files(
    files: &[PathBuf],
    version: CiliumVersion,
) -> Result<Vec<String>, InputError> {
    let used = schema_version_for(version);
    let mut notes = Vec::new();
    if (used.major, used.minor) != (version.major, version.minor) {
        notes.push(format!(
            "the repository holds no CRD schema of Cilium {}.{} (only {}); policies were validated against {}.{}'s CRD schema, and the model applies the differences of {}.{} (docs/semantics.md#crd-schema-validation)",
            version.major,
            version.minor,
            SCHEMA_VERSIONS
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            used.major,
            used.minor,
            version.major,
            version.minor
        ));
    }
    let mut problems = Vec::new();
    for file in files {
        let text = load::read_text(file)?;
        for doc in load::split_documents(&text) {
            let node = Node::parse(file, &doc)?;
            let kind = match node.find(&["kind".to_string()]).value {
                NodeValue::Str(ref k) if k == "CiliumNetworkPolicy" => Kind::Namespaced,
                NodeValue::Str(ref k) if k == "CiliumClusterwideNetworkPolicy" => Kind::Clusterwide,
                // The typed parser reports a wrong kind.
                _ => continue,
            };
            let v = validator(used, kind).map_err(InputError::Invalid)?;
            problems.extend(violations(file, &node, v, used));
        }
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        Err(InputError::Many(problems))
    }
}

/// The schema violations of one document, each located.
fn violations(
    file: &Path,
    node: &Node,
    validator: &jsonschema::Validator,
    version: CiliumVersion,
) -> Vec<Located> {
    let json = node.to_json();
    let mut seen = BTreeMap::new();
    for err in validator.iter_errors(&json) {
        let segments: Vec<String> = err.instance_path().iter().map(|s| s.to_string()).collect();
        let at = node.find(&segments);
        let field = field_path(&segments);
        let message = describe(&err, at, &field, version);
        seen.entry((at.line, at.column, field)).or_insert(message);
    }
    seen.into_iter()
        .map(|((line, column, _), message)| Located {
            path: file.to_path_buf(),
            line: Some(line).filter(|l| *l > 0),
            column: Some(column).filter(|c| *c > 0),
            message,
        })
        .collect()
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn describe(
    err: &jsonschema::ValidationError<'_>,
    at: &Node,
    field: &str,
    version: CiliumVersion,
) -> String {
    let crd = format!("the Cilium {version} CRD");
    let value = err.instance();
    let shown = match value.as_ref() {
        serde_json::Value::String(s) => format!("`{s}`"),
        other => format!("`{}`", short(&other.to_string(), 60)),
    };
    let field = if field.is_empty() {
        "(document)"
    } else {
        field
    };
    let what = match err.kind() {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let mut m = format!(
                "{shown} is a {}, {crd} requires a {expected}",
                json_type(value)
            );
            if expected == "string"
                && matches!(
                    at.value,
                    NodeValue::Int(_)
                        | NodeValue::UInt(_)
                        | NodeValue::Float(_)
                        | NodeValue::Bool(_)
                )
            {
                m.push_str(&format!(
                    "; quote it: `\"{}\"`",
                    value.as_ref().to_string().trim_matches('"')
                ));
            }
            m
        }
        ValidationErrorKind::Pattern { pattern } => {
            let last = field.rsplit('.').next().unwrap_or(field);
            if last == "port" || last.starts_with("port[") {
                format!(
                    "{shown} is neither a port number 0-65535 nor a port name (letters, digits and single dashes, with at least one letter), as {crd} requires"
                )
            } else {
                format!(
                    "{shown} does not match the pattern {crd} requires: `{}`",
                    short(pattern, 80)
                )
            }
        }
        ValidationErrorKind::Enum { options } => {
            let opts = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            o.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| o.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| options.to_string());
            format!("{shown} is not one of the values {crd} allows: {opts}")
        }
        ValidationErrorKind::AnyOf { .. } if field == "spec" || field.starts_with("specs[") => {
            format!(
                "{crd} requires at least one of `ingress`, `ingressDeny`, `egress` or `egressDeny` (this rule has {})",
                match at.keys() {
                    k if k.is_empty() => "none of them".to_string(),
                    k => format!("only {}", k.join(", ")),
                }
            )
        }
        ValidationErrorKind::Required { property } => {
            format!(
                "{crd} requires the field `{}` here",
                property.as_str().unwrap_or("?")
            )
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{shown} is more than {limit}, the largest value {crd} allows")
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{shown} is less than {limit}, the smallest value {crd} allows")
        }
        _ => format!("{} ({crd})", short(&err.to_string(), 200)),
    };
    format!("{field}: {what}; the API server would refuse this policy")
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_f64() => "number",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Vec<String>, InputError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, text).expect("write");
        validate_policy_files(&[f], CiliumVersion::new(1, 19))
    }

    const HEAD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn unquoted_port_is_refused_with_line_field_and_the_fix() {
        let err = check(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: 8080\n"
        ))
        .expect_err("an integer port violates the CRD")
        .to_string();
        assert!(err.contains("p.yaml:11:15:"), "{err}");
        assert!(
            err.contains("spec.ingress[0].toPorts[0].ports[0].port"),
            "{err}"
        );
        assert!(err.contains("requires a string"), "{err}");
        assert!(err.contains("quote it: `\"8080\"`"), "{err}");
    }

    #[test]
    fn quoted_port_and_the_postures_pass_the_schema() {
        check(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: \"8080\"\n"
        ))
        .expect("a quoted port is valid");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for posture in ["seed", "hardened"] {
            let files = load::yaml_files(&repo.join("policies").join(posture)).expect("posture");
            validate_policy_files(&files, CiliumVersion::new(1, 19))
                .unwrap_or_else(|e| panic!("{posture}: {e}"));
        }
    }

    #[test]
    fn rule_without_any_section_is_refused_by_the_schema() {
        let err = check(HEAD).expect_err("no section").to_string();
        assert!(err.contains("p.yaml:7:"), "{err}");
        assert!(err.contains("at least one of `ingress`"), "{err}");
    }

    #[test]
    fn port_pattern_and_protocol_enum_violations_are_explained() {
        let err = check(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: \"http_\"\n        protocol: TCPP\n"
        ))
        .expect_err("bad port and protocol")
        .to_string();
        assert!(err.contains("neither a port number"), "{err}");
        assert!(err.contains("`TCPP` is not one of the values"), "{err}");
    }

    #[test]
    fn versions_without_a_schema_use_the_nearest_and_say_so() {
        assert_eq!(
            schema_version_for(CiliumVersion::new(1, 20)),
            CiliumVersion::new(1, 19)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let notes = validate_policy_files(&[], CiliumVersion::new(1, 20)).expect("no files");
        drop(dir);
        assert!(
            notes[0].contains("no CRD schema of Cilium 1.20"),
            "{notes:?}"
        );
    }
}
