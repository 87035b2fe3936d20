//! The stack's manifests (`workloads/manifests/*.yaml`): parsing, typed views, and server-side apply.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::client::{api_message, resource_for};
use crate::state::Created;
use crate::{FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// The label that names a workload; pods are found by it (`harness/workload=<name>`).
pub const LABEL_WORKLOAD: &str = "harness/workload";

/// Errors reading or applying manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{at}: {problem}")]
    Shape { at: String, problem: String },
    #[error("{at}: the API server rejected it: {message}")]
    Rejected { at: String, message: String },
    #[error(
        "namespace {name} already exists and is not labelled {LABEL_MANAGED_BY}={MANAGED_BY_VALUE}: refusing to deploy into a namespace the harness does not own"
    )]
    ForeignNamespace { name: String },
    #[error("cannot read namespace {name}: {message}")]
    Lookup { name: String, message: String },
}

/// One YAML document of a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub source: PathBuf,
    /// 0-based position in its file.
    pub index: usize,
    pub value: Value,
}

impl Manifest {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }
    /// `file#index kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        let id = match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        };
        format!(
            "{}#{} {} {id}",
            self.source.display(),
            self.index + 1,
            self.kind()
        )
    }
}

/// Parses a multi-document YAML text (documents separated by `---`; empty documents are skipped).
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

/// Reads one file into its documents; each must be a mapping with `apiVersion`, `kind` and `metadata.name`.
pub fn load_file(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let docs = parse_documents(&text).map_err(|message| ManifestError::Yaml {
        path: path.to_path_buf(),
        message,
    })?;
    docs.into_iter()
        .enumerate()
        .map(|(index, value)| {
            let m = Manifest {
                source: path.to_path_buf(),
                index,
                value,
            };
            check_shape(&m)?;
            Ok(m)
        })
        .collect()
}

fn check_shape(m: &Manifest) -> Result<(), ManifestError> {
    let at = || format!("{}#{}", m.source.display(), m.index + 1);
    if !m.value.is_object() {
        return Err(ManifestError::Shape {
            at: at(),
            problem: "document is not a mapping".into(),
        });
    }
    for (field, value) in [
        ("apiVersion", m.api_version()),
        ("kind", m.kind()),
        ("metadata.name", m.name()),
    ] {
        if value.is_empty() {
            return Err(ManifestError::Shape {
                at: at(),
                problem: format!("missing {field}"),
            });
        }
    }
    Ok(())
}

/// Every `*.yaml`/`*.yml` file of `dir`, in file-name order (the stack's files are numbered).
pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        all.extend(load_file(&f)?);
    }
    Ok(all)
}

/// A manifest as its k8s-openapi type.
#[derive(Clone, Debug)]
pub enum StackObject {
    Namespace(Box<Namespace>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    /// A kind the test bed applies but does not inspect.
    Other {
        api_version: String,
        kind: String,
    },
}

/// Converts a manifest into its typed form; a field the type does not know is not an error here (the API
/// server's strict validation is the judge), a field of the wrong type is.
pub fn typed(m: &Manifest) -> Result<StackObject, ManifestError> {
    let shape = |e: serde_json::Error| ManifestError::Shape {
        at: m.describe(),
        problem: e.to_string(),
    };
    Ok(match (m.api_version(), m.kind()) {
        ("v1", "Namespace") => StackObject::Namespace(Box::new(
            serde_json::from_value(m.value.clone()).map_err(shape)?,
        )),
        ("apps/v1", "Deployment") => StackObject::Deployment(Box::new(
            serde_json::from_value(m.value.clone()).map_err(shape)?,
        )),
        ("v1", "Service") => StackObject::Service(Box::new(
            serde_json::from_value(m.value.clone()).map_err(shape)?,
        )),
        (api_version, kind) => StackObject::Other {
            api_version: api_version.into(),
            kind: kind.into(),
        },
    })
}

/// The stack's Deployments, typed.
pub fn deployments(manifests: &[Manifest]) -> Result<Vec<Deployment>, ManifestError> {
    let mut out = Vec::new();
    for m in manifests {
        if let StackObject::Deployment(d) = typed(m)? {
            out.push(*d);
        }
    }
    Ok(out)
}

/// The names of the stack's Namespaces.
pub fn namespaces(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .filter(|m| m.kind() == "Namespace")
        .map(|m| m.name().to_string())
        .collect()
}

/// Replaces the container image `from` with `to` in a workload's pod template (and makes the kubelet pull
/// it if absent); returns whether anything changed. Used on clusters where the image cannot be side-loaded.
pub fn use_agent_image(m: &mut Manifest, from: &str, to: &str) -> bool {
    let mut changed = false;
    for list in ["containers", "initContainers"] {
        let Some(containers) = m
            .value
            .pointer_mut(&format!("/spec/template/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            if c.get("image").and_then(Value::as_str) == Some(from) {
                c["image"] = Value::String(to.to_string());
                c["imagePullPolicy"] = Value::String("IfNotPresent".into());
                changed = true;
            }
        }
    }
    changed
}

/// Server-side applies `manifests` in order (field manager `cnp-harness`, strict field validation) and
/// returns the objects that did not exist before.
///
/// # Errors
/// Stops at the first rejection, naming the document and quoting the server.
pub async fn apply_all(
    client: &Client,
    manifests: &[Manifest],
) -> Result<Vec<Created>, ManifestError> {
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    let mut created = Vec::new();
    for m in manifests {
        let api = dynamic_api(client, m)?;
        let existed = api
            .get_opt(m.name())
            .await
            .map_err(|e| ManifestError::Rejected {
                at: m.describe(),
                message: api_message(&e),
            })?
            .is_some();
        api.patch(m.name(), &params, &Patch::Apply(&m.value))
            .await
            .map_err(|e| ManifestError::Rejected {
                at: m.describe(),
                message: api_message(&e),
            })?;
        if !existed {
            created.push(Created::Object {
                api_version: m.api_version().to_string(),
                kind: m.kind().to_string(),
                namespace: m.namespace().map(str::to_string),
                name: m.name().to_string(),
            });
        }
    }
    Ok(created)
}

/// The dynamic API for a manifest's kind (namespaced into its namespace).
pub(crate) fn dynamic_api(
    client: &Client,
    m: &Manifest,
) -> Result<Api<DynamicObject>, ManifestError> {
    let (ar, namespaced) =
        resource_for(m.api_version(), m.kind()).ok_or_else(|| ManifestError::Shape {
            at: m.describe(),
            problem: format!(
                "kind {} {} is not one the test bed applies",
                m.api_version(),
                m.kind()
            ),
        })?;
    if namespaced {
        let ns = m.namespace().ok_or_else(|| ManifestError::Shape {
            at: m.describe(),
            problem: "namespaced object without metadata.namespace".into(),
        })?;
        Ok(Api::namespaced_with(client.clone(), ns, &ar))
    } else {
        Ok(Api::all_with(client.clone(), &ar))
    }
}

/// Refuses namespaces that exist without the harness's label (an existing cluster's own namespaces).
pub async fn check_namespaces_are_ours(
    client: &Client,
    names: &[String],
) -> Result<(), ManifestError> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in names {
        let found = api.get_opt(name).await.map_err(|e| ManifestError::Lookup {
            name: name.clone(),
            message: api_message(&e),
        })?;
        if let Some(ns) = found {
            let ours = ns
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_MANAGED_BY))
                .map(String::as_str)
                == Some(MANAGED_BY_VALUE);
            if !ours {
                return Err(ManifestError::ForeignNamespace { name: name.clone() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_with_anchors_parses_into_documents() {
        let docs =
            parse_documents("a: &x {k: 1}\nb: *x\n---\n# only a comment\n---\nkind: Service\n")
                .unwrap();
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[0]["b"]["k"], 1);
        assert_eq!(docs[1]["kind"], "Service");
    }

    #[test]
    fn documents_without_kind_or_name_are_shape_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Service\n").unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("x.yaml#2") && err.contains("metadata.name"),
            "{err}"
        );
    }

    #[test]
    fn agent_image_is_replaced_only_where_it_is_used() {
        let mut m = Manifest {
            source: "d.yaml".into(),
            index: 0,
            value: serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pg"},
              "spec": {"template": {"spec": {"containers": [
                 {"name": "postgres", "image": "postgres:16"},
                 {"name": "agent", "image": "harness-agent:dev", "imagePullPolicy": "Never"}]}}}}),
        };
        assert!(use_agent_image(
            &mut m,
            "harness-agent:dev",
            "registry.example/agent:1"
        ));
        let cs = &m.value["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "postgres:16");
        assert_eq!(cs[1]["image"], "registry.example/agent:1");
        assert_eq!(cs[1]["imagePullPolicy"], "IfNotPresent");
        assert!(!use_agent_image(&mut m, "harness-agent:dev", "x"));
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::fake_api::{self, not_found};

    fn manifest(value: Value) -> Manifest {
        Manifest {
            source: "stack.yaml".into(),
            index: 0,
            value,
        }
    }

    #[tokio::test]
    async fn apply_uses_strict_server_side_apply_and_records_only_new_objects() {
        let (client, log) = fake_api::client(|r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/namespaces/frontend") => not_found(),
            ("GET", _) => (
                200,
                serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "backend"}}),
            ),
            (_, _) => (200, r.body.clone()),
        });
        let stack = vec![
            manifest(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "frontend"}}),
            ),
            manifest(
                serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "backend"}}),
            ),
        ];
        let created = apply_all(&client, &stack).await.unwrap();
        assert_eq!(
            created,
            vec![Created::Object {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "frontend".into()
            }]
        );
        let patches: Vec<_> = fake_api::requests(&log)
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect();
        assert_eq!(patches.len(), 2);
        assert_eq!(patches[1].path, "/api/v1/namespaces/backend/services/api");
        for p in &patches {
            for param in [
                "fieldManager=cnp-harness",
                "fieldValidation=Strict",
                "force=true",
            ] {
                assert!(p.query.contains(param), "{param} missing in {}", p.query);
            }
            assert_eq!(
                p.content_type.as_deref(),
                Some("application/apply-patch+yaml")
            );
        }
    }

    #[tokio::test]
    async fn rejection_names_the_document_and_quotes_the_server() {
        let (client, _) = fake_api::client(|r| match r.method.as_str() {
            "GET" => not_found(),
            _ => fake_api::status(
                422,
                "Invalid",
                "Service \"api\" is invalid: spec.ports[0].port: Invalid value: 0",
            ),
        });
        let stack = vec![manifest(
            serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "backend"}}),
        )];
        let err = apply_all(&client, &stack).await.unwrap_err().to_string();
        assert!(
            err.contains("stack.yaml#1 Service backend/api") && err.contains("spec.ports[0].port"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_namespace_without_the_harness_label_is_refused() {
        let (client, _) = fake_api::client(|_| {
            (
                200,
                serde_json::json!({"metadata": {"name": "kafka", "labels": {"team": "data"}}}),
            )
        });
        let err = check_namespaces_are_ours(&client, &["kafka".to_string()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, ManifestError::ForeignNamespace { .. }),
            "{err}"
        );
    }
}
