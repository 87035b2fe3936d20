//! Applying a posture: the CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy objects of one posture,
//! server-side applied with strict field validation, the other postures' policies removed, then a wait
//! until every Cilium agent enforces the result.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{
    api_message, cilium_clusterwide_network_policy, cilium_network_policy, connect, is_not_found,
};
use crate::cluster::{CILIUM_AGENT_CONTAINER, cilium_agents};
use crate::exec::exec_in_pod;
use crate::lock::{DEFAULT_LEASE_DURATION, LockGuard};
use crate::manifests::{Manifest, dynamic_api, load_file};
use crate::progress::{Progress, step};
use crate::state::State;
use crate::wait::{Backoff, Check, poll_until};
use crate::{FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// The label naming the posture a policy belongs to.
pub const LABEL_POSTURE: &str = "harness/posture";
const CNP: &str = "CiliumNetworkPolicy";
const CCNP: &str = "CiliumClusterwideNetworkPolicy";
const CILIUM_API_VERSION: &str = "cilium.io/v2";

/// Options of [`apply_posture`].
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// How long every agent may take to enforce the posture.
    pub enforce_timeout: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            enforce_timeout: Duration::from_secs(120),
        }
    }
}

/// A policy object's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl PolicyRef {
    fn of(m: &Manifest) -> Self {
        Self {
            kind: m.kind().to_string(),
            namespace: m.namespace().map(str::to_string),
            name: m.name().to_string(),
        }
    }
}

/// What applying did to one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Its spec changed (the object's generation moved).
    Updated,
    Unchanged,
}

#[derive(Clone, Debug)]
pub struct AppliedPolicy {
    pub policy: PolicyRef,
    pub change: Change,
    pub uid: String,
}

/// A policy the API server refused, with its message.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub policy: PolicyRef,
    /// `file#document`.
    pub source: String,
    pub message: String,
}

/// How one Cilium agent caught up.
#[derive(Clone, Debug)]
pub struct AgentEnforcement {
    pub pod: String,
    pub node: String,
    pub revision_before: i64,
    pub revision_enforced: i64,
    /// Whether the agent's rule list was checked for the applied and removed policies (it is when the
    /// agent's `policy get` output lists rules with their labels).
    pub rules_checked: bool,
}

#[derive(Clone, Debug)]
pub struct PostureReport {
    pub posture: String,
    pub applied: Vec<AppliedPolicy>,
    pub deleted: Vec<PolicyRef>,
    pub agents: Vec<AgentEnforcement>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error("posture {posture}: {} problem(s) reading the policy files; nothing was applied:\n{}", problems.len(), bullet(problems))]
    Parse {
        posture: String,
        problems: Vec<String>,
    },
    #[error("posture {posture}: the API server rejected {} policy object(s); {}:\n{}",
        rejections.len(),
        if *applied_any { "the others were applied, nothing was removed" } else { "nothing was applied" },
        bullet(&rejections.iter().map(|r| format!("{} ({}): {}", r.policy, r.source, r.message)).collect::<Vec<_>>()))]
    Rejected {
        posture: String,
        rejections: Vec<Rejection>,
        applied_any: bool,
    },
    #[error("posture {posture}: Cilium agent {pod} (node {node}) did not enforce it: {message}")]
    NotEnforced {
        posture: String,
        pod: String,
        node: String,
        message: String,
    },
    #[error("posture {posture}: {message}")]
    Cluster { posture: String, message: String },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

fn bullet(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("  - {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the posture's files: every document must be a `cilium.io/v2` CiliumNetworkPolicy (with a
/// namespace) or CiliumClusterwideNetworkPolicy, each object once. Labels each with the posture and the
/// harness's managed-by label. All problems are collected; any problem means nothing is applied.
pub fn load_posture(posture: &str, files: &[PathBuf]) -> Result<Vec<Manifest>, PostureError> {
    let mut problems = Vec::new();
    let mut out: Vec<Manifest> = Vec::new();
    for f in files {
        match load_file(f) {
            Err(e) => problems.push(e.to_string()),
            Ok(docs) => {
                for mut m in docs {
                    let at = format!("{}#{}", m.source.display(), m.index + 1);
                    if m.api_version() != CILIUM_API_VERSION
                        || (m.kind() != CNP && m.kind() != CCNP)
                    {
                        problems.push(format!(
                            "{at}: {} {} is not a {CILIUM_API_VERSION} {CNP} or {CCNP}",
                            m.api_version(),
                            m.kind()
                        ));
                        continue;
                    }
                    if m.kind() == CNP && m.namespace().is_none() {
                        problems.push(format!(
                            "{at}: {CNP} {} has no metadata.namespace",
                            m.name()
                        ));
                        continue;
                    }
                    if m.kind() == CCNP && m.namespace().is_some() {
                        problems.push(format!(
                            "{at}: {CCNP} {} is cluster-scoped but has a namespace",
                            m.name()
                        ));
                        continue;
                    }
                    if out.iter().any(|o| PolicyRef::of(o) == PolicyRef::of(&m)) {
                        problems.push(format!(
                            "{at}: {} appears twice in the posture",
                            PolicyRef::of(&m)
                        ));
                        continue;
                    }
                    label(&mut m, posture);
                    out.push(m);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PostureError::Parse {
            posture: posture.into(),
            problems,
        })
    }
}

fn label(m: &mut Manifest, posture: &str) {
    let metadata = &mut m.value["metadata"];
    if !metadata.get("labels").is_some_and(Value::is_object) {
        metadata["labels"] = Value::Object(Default::default());
    }
    metadata["labels"][LABEL_POSTURE] = Value::String(posture.into());
    metadata["labels"][LABEL_MANAGED_BY] = Value::String(MANAGED_BY_VALUE.into());
}

/// What one agent reports about its policy repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentPolicy {
    pub revision: i64,
    /// The `io.cilium.k8s.policy.uid` label of every rule, when the output lists rules.
    pub rule_uids: Option<BTreeSet<String>>,
}

/// The command reading an agent's policy repository.
pub fn policy_get_command() -> Vec<String> {
    ["cilium-dbg", "policy", "get", "-o", "json"]
        .map(String::from)
        .to_vec()
}

/// The command waiting until every endpoint of an agent runs policy revision `revision` or later.
pub fn policy_wait_command(revision: i64, max_wait: Duration) -> Vec<String> {
    vec![
        "cilium-dbg".into(),
        "policy".into(),
        "wait".into(),
        revision.to_string(),
        "--max-wait-time".into(),
        max_wait.as_secs().max(1).to_string(),
    ]
}

/// Parses `cilium-dbg policy get -o json`: `{"revision": N, "policy": "<JSON list of rules>"}`; each rule's
/// `labels` are `{key, value, source}` objects (or `source:key=value` strings).
pub fn parse_policy_get(stdout: &[u8]) -> Result<AgentPolicy, String> {
    let v: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("unreadable `policy get` output: {e}"))?;
    let revision = v
        .get("revision")
        .and_then(Value::as_i64)
        .ok_or("`policy get` output has no revision")?;
    let rules = match v.get("policy") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(other @ Value::Array(_)) => Some(other.clone()),
        _ => None,
    };
    let rule_uids = rules.and_then(|r| r.as_array().cloned()).map(|rules| {
        rules
            .iter()
            .flat_map(|r| {
                r.get("labels")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|l| match l {
                Value::Object(o)
                    if o.get("key").and_then(Value::as_str) == Some("io.cilium.k8s.policy.uid") =>
                {
                    o.get("value").and_then(Value::as_str).map(str::to_string)
                }
                Value::String(s) => s
                    .split_once("io.cilium.k8s.policy.uid=")
                    .map(|(_, uid)| uid.to_string()),
                _ => None,
            })
            .collect()
    });
    Ok(AgentPolicy {
        revision,
        rule_uids,
    })
}

/// Whether an agent has caught up with the apply: its revision moved past `before` if anything changed,
/// and (when it lists rules) it has a rule of every applied policy and none of the removed ones.
pub fn agent_caught_up(
    before: i64,
    changed: bool,
    now: &AgentPolicy,
    present: &BTreeSet<String>,
    absent: &BTreeSet<String>,
) -> Result<(), String> {
    if changed && now.revision <= before {
        return Err(format!(
            "policy revision still {} (was {before} before the apply)",
            now.revision
        ));
    }
    if let Some(uids) = &now.rule_uids {
        let missing = present.difference(uids).count();
        let stale = absent.intersection(uids).count();
        if missing > 0 || stale > 0 {
            return Err(format!(
                "revision {}: {missing} applied polic(ies) not yet imported, {stale} removed polic(ies) still present",
                now.revision
            ));
        }
    }
    Ok(())
}

/// Applies posture `posture` from `files` on the test bed of `state`.
///
/// Steps: read the files (all or nothing); take the test bed's lock; validate every object with a
/// server-side dry run (strict field validation) and stop, applying nothing, if any is rejected; read each
/// Cilium agent's policy revision; apply for real; delete the harness-managed policies not in this
/// posture; wait until every agent has imported the change and all its endpoints run the new revision
/// (`cilium-dbg policy wait`).
///
/// # Caveats
/// A policy whose spec changed in place (same uid) is covered only by the revision moving past its
/// pre-apply value, as in `cilium connectivity test`; created and removed policies are also checked by uid
/// in the agent's rule list.
pub async fn apply_posture(
    state: &State,
    posture: &str,
    files: &[PathBuf],
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<PostureReport, PostureError> {
    let cluster = |message: String| PostureError::Cluster {
        posture: posture.into(),
        message,
    };
    let manifests = step(progress, &format!("Read posture {posture}"), async {
        load_posture(posture, files).map(|m| (m, None))
    })
    .await?;
    let (client, _) = connect(Some(&state.kube_context))
        .await
        .map_err(|e| cluster(e.to_string()))?;
    apply_posture_with(&client, state, posture, manifests, options, progress).await
}

/// [`apply_posture`] with a client and the posture's objects already read (see [`load_posture`]).
pub async fn apply_posture_with(
    client: &Client,
    state: &State,
    posture: &str,
    manifests: Vec<Manifest>,
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<PostureReport, PostureError> {
    let client = client.clone();
    let cluster = |message: String| PostureError::Cluster {
        posture: posture.into(),
        message,
    };
    let guard = LockGuard::acquire(&client, &state.lock_holder, DEFAULT_LEASE_DURATION).await?;
    let deadline = Instant::now() + options.enforce_timeout;

    step(
        progress,
        "Validate with the API server (dry run, strict fields)",
        async {
            let rejections = server_side_apply(&client, &manifests, true)
                .await
                .err()
                .unwrap_or_default();
            if rejections.is_empty() {
                Ok(((), None))
            } else {
                Err(PostureError::Rejected {
                    posture: posture.into(),
                    rejections,
                    applied_any: false,
                })
            }
        },
    )
    .await?;

    let agents = cilium_agents(&client, &state.cilium_namespace)
        .await
        .map_err(|e| cluster(e.to_string()))?;
    if agents.is_empty() {
        return Err(cluster(format!(
            "no Cilium agent pods (k8s-app=cilium) in namespace {}",
            state.cilium_namespace
        )));
    }
    let mut before = Vec::new();
    for a in &agents {
        let name = a.metadata.name.clone().unwrap_or_default();
        let policy = agent_policy(&client, &state.cilium_namespace, &name, deadline)
            .await
            .map_err(|m| {
                cluster(format!(
                    "reading the policy revision of Cilium agent {name}: {m}"
                ))
            })?;
        before.push(policy.revision);
    }

    let applied = step(
        progress,
        &format!("Apply {} policy object(s)", manifests.len()),
        async {
            match server_side_apply(&client, &manifests, false).await {
                Ok(applied) => Ok((applied, None)),
                Err(rejections) => Err(PostureError::Rejected {
                    posture: posture.into(),
                    rejections,
                    applied_any: true,
                }),
            }
        },
    )
    .await?;

    let keep: BTreeSet<PolicyRef> = applied.iter().map(|a| a.policy.clone()).collect();
    let removed = step(progress, "Remove policies of other postures", async {
        let removed = remove_others(&client, &keep).await.map_err(cluster)?;
        let note = removed.is_empty().then(|| "none to remove".to_string());
        Ok::<_, PostureError>((removed, note))
    })
    .await?;

    let changed = applied.iter().any(|a| a.change != Change::Unchanged) || !removed.is_empty();
    let present: BTreeSet<String> = applied.iter().map(|a| a.uid.clone()).collect();
    let absent: BTreeSet<String> = removed.iter().map(|(_, uid)| uid.clone()).collect();
    let enforced = step(
        progress,
        &format!(
            "Wait until {} Cilium agent(s) enforce the posture",
            agents.len()
        ),
        async {
            let mut out = Vec::new();
            for (agent, rev_before) in agents.iter().zip(&before) {
                let pod = agent.metadata.name.clone().unwrap_or_default();
                let node = agent
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                let not_enforced = |message: String| PostureError::NotEnforced {
                    posture: posture.into(),
                    pod: pod.clone(),
                    node: node.clone(),
                    message,
                };
                let what = format!("Cilium agent {pod} to import the posture");
                let now = poll_until(&what, deadline, Backoff::default(), || async {
                    match agent_policy(&client, &state.cilium_namespace, &pod, deadline).await {
                        Err(e) => Check::NotYet(e),
                        Ok(p) => match agent_caught_up(*rev_before, changed, &p, &present, &absent)
                        {
                            Ok(()) => Check::Ready(p),
                            Err(why) => Check::NotYet(why),
                        },
                    }
                })
                .await
                .map_err(|e| not_enforced(e.to_string()))?;
                let remaining = deadline.saturating_duration_since(Instant::now());
                let wait = policy_wait_command(now.revision, remaining);
                let out_wait = tokio::time::timeout_at(
                    deadline + Duration::from_secs(5),
                    exec_in_pod(
                        &client,
                        &state.cilium_namespace,
                        &pod,
                        CILIUM_AGENT_CONTAINER,
                        &wait,
                    ),
                )
                .await
                .map_err(|_| not_enforced(format!("`{}` did not return in time", wait.join(" "))))?
                .map_err(|e| not_enforced(e.to_string()))?;
                if out_wait.exit_code != 0 {
                    let text = String::from_utf8_lossy(&out_wait.stderr).trim().to_string()
                        + String::from_utf8_lossy(&out_wait.stdout).trim();
                    return Err(not_enforced(format!(
                        "`{}` exited with {}: {text}",
                        wait.join(" "),
                        out_wait.exit_code
                    )));
                }
                out.push(AgentEnforcement {
                    pod,
                    node,
                    revision_before: *rev_before,
                    revision_enforced: now.revision,
                    rules_checked: now.rule_uids.is_some(),
                });
            }
            Ok::<_, PostureError>((out, None))
        },
    )
    .await?;
    guard.check()?;
    Ok(PostureReport {
        posture: posture.into(),
        applied,
        deleted: removed.into_iter().map(|(p, _)| p).collect(),
        agents: enforced,
    })
}

async fn agent_policy(
    client: &Client,
    namespace: &str,
    pod: &str,
    deadline: Instant,
) -> Result<AgentPolicy, String> {
    let out = tokio::time::timeout_at(
        deadline,
        exec_in_pod(
            client,
            namespace,
            pod,
            CILIUM_AGENT_CONTAINER,
            &policy_get_command(),
        ),
    )
    .await
    .map_err(|_| "`cilium-dbg policy get` did not return in time".to_string())?
    .map_err(|e| e.to_string())?;
    if out.exit_code != 0 {
        return Err(format!(
            "`cilium-dbg policy get` exited with {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_policy_get(&out.stdout)
}

/// Applies every manifest (or dry-runs it); returns each one's change, or every rejection.
async fn server_side_apply(
    client: &Client,
    manifests: &[Manifest],
    dry_run: bool,
) -> Result<Vec<AppliedPolicy>, Vec<Rejection>> {
    let mut params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    if dry_run {
        params = params.dry_run();
    }
    let mut applied = Vec::new();
    let mut rejections = Vec::new();
    for m in manifests {
        let policy = PolicyRef::of(m);
        let source = format!("{}#{}", m.source.display(), m.index + 1);
        let reject = |message: String| Rejection {
            policy: policy.clone(),
            source: source.clone(),
            message,
        };
        let api = match dynamic_api(client, m) {
            Ok(api) => api,
            Err(e) => {
                rejections.push(reject(e.to_string()));
                continue;
            }
        };
        let before = match api.get_opt(m.name()).await {
            Ok(b) => b,
            Err(e) => {
                rejections.push(reject(api_message(&e)));
                continue;
            }
        };
        match api.patch(m.name(), &params, &Patch::Apply(&m.value)).await {
            Err(e) => rejections.push(reject(api_message(&e))),
            Ok(after) => applied.push(AppliedPolicy {
                policy: policy.clone(),
                change: change_of(before.as_ref(), &after),
                uid: after.metadata.uid.clone().unwrap_or_default(),
            }),
        }
    }
    if rejections.is_empty() {
        Ok(applied)
    } else {
        Err(rejections)
    }
}

fn change_of(before: Option<&DynamicObject>, after: &DynamicObject) -> Change {
    match before {
        None => Change::Created,
        Some(b) if b.metadata.generation != after.metadata.generation => Change::Updated,
        Some(_) => Change::Unchanged,
    }
}

/// Deletes every harness-managed CNP/CCNP not in `keep`; returns what was deleted with its uid.
async fn remove_others(
    client: &Client,
    keep: &BTreeSet<PolicyRef>,
) -> Result<Vec<(PolicyRef, String)>, String> {
    let selector = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"));
    let mut removed = Vec::new();
    for (ar, kind) in [
        (cilium_network_policy(), CNP),
        (cilium_clusterwide_network_policy(), CCNP),
    ] {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = all
            .list(&selector)
            .await
            .map_err(|e| format!("listing {kind}s: {}", api_message(&e)))?;
        for obj in list.items {
            let policy = PolicyRef {
                kind: kind.to_string(),
                namespace: obj.metadata.namespace.clone(),
                name: obj.metadata.name.clone().unwrap_or_default(),
            };
            if keep.contains(&policy) {
                continue;
            }
            let api: Api<DynamicObject> = match &policy.namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                None => Api::all_with(client.clone(), &ar),
            };
            match api.delete(&policy.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(format!("deleting {policy}: {}", api_message(&e))),
            }
            removed.push((policy, obj.metadata.uid.clone().unwrap_or_default()));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const CNP_DOC: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: api-ingress\n  namespace: backend\n  labels: {team: x}\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn posture_policies_are_labelled_with_posture_and_manager() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "a.yaml",
            &format!(
                "{CNP_DOC}---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: dns}}\nspec: {{}}\n"
            ),
        );
        let ms = load_posture("tutorial", &[f]).unwrap();
        assert_eq!(ms.len(), 2);
        let labels = &ms[0].value["metadata"]["labels"];
        assert_eq!(labels[LABEL_POSTURE], "tutorial");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY_VALUE);
        assert_eq!(labels["team"], "x");
        assert_eq!(ms[1].value["metadata"]["labels"][LABEL_POSTURE], "tutorial");
    }

    #[test]
    fn any_unreadable_document_fails_the_whole_posture_listing_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.yaml", CNP_DOC);
        let broken = write(dir.path(), "broken.yaml", "kind: [unclosed\n");
        let wrong = write(
            dir.path(),
            "wrong.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\n",
        );
        let nons = write(
            dir.path(),
            "nons.yaml",
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n",
        );
        let err = load_posture("p", &[good.clone(), broken, wrong, nons, good]).unwrap_err();
        let PostureError::Parse { problems, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let text = err.to_string();
        assert!(
            text.contains("broken.yaml")
                && text.contains("ConfigMap")
                && text.contains("no metadata.namespace"),
            "{text}"
        );
        assert!(
            text.contains("appears twice") && text.contains("nothing was applied"),
            "{text}"
        );
    }

    #[test]
    fn policy_get_output_gives_revision_and_rule_uids() {
        let rules = serde_json::json!([{
            "endpointSelector": {},
            "labels": [
                {"key": "io.cilium.k8s.policy.name", "value": "api-ingress", "source": "k8s"},
                {"key": "io.cilium.k8s.policy.uid", "value": "u-1", "source": "k8s"}
            ]
        }, {"labels": ["k8s:io.cilium.k8s.policy.uid=u-2"]}]);
        let out = serde_json::json!({"policy": rules.to_string(), "revision": 12});
        let p = parse_policy_get(out.to_string().as_bytes()).unwrap();
        assert_eq!(p.revision, 12);
        assert_eq!(
            p.rule_uids,
            Some(BTreeSet::from(["u-1".to_string(), "u-2".to_string()]))
        );
        let bare = parse_policy_get(br#"{"revision": 3}"#).unwrap();
        assert_eq!(
            bare,
            AgentPolicy {
                revision: 3,
                rule_uids: None
            }
        );
        assert!(parse_policy_get(b"Revision: 3").is_err());
    }

    #[test]
    fn agent_has_caught_up_only_when_revision_moved_and_rules_match() {
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let at = |rev, uids: &[&str]| AgentPolicy {
            revision: rev,
            rule_uids: Some(set(uids)),
        };
        let (present, absent) = (set(&["new"]), set(&["old"]));
        assert!(
            agent_caught_up(5, true, &at(5, &["new"]), &present, &absent)
                .unwrap_err()
                .contains("still 5")
        );
        assert!(
            agent_caught_up(5, true, &at(6, &["old"]), &present, &absent)
                .unwrap_err()
                .contains("1 applied")
        );
        assert!(
            agent_caught_up(5, true, &at(6, &["new", "old"]), &present, &absent)
                .unwrap_err()
                .contains("1 removed")
        );
        assert!(agent_caught_up(5, true, &at(7, &["new", "other"]), &present, &absent).is_ok());
        assert!(agent_caught_up(5, false, &at(5, &["new"]), &present, &absent).is_ok());
        let no_rules = AgentPolicy {
            revision: 6,
            rule_uids: None,
        };
        assert!(agent_caught_up(5, true, &no_rules, &present, &absent).is_ok());
    }

    #[test]
    fn policy_commands_use_cilium_dbg() {
        assert_eq!(
            policy_get_command(),
            ["cilium-dbg", "policy", "get", "-o", "json"]
        );
        assert_eq!(
            policy_wait_command(14, Duration::from_millis(300)),
            ["cilium-dbg", "policy", "wait", "14", "--max-wait-time", "1"]
        );
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::fake_api::{self, not_found};
    use crate::progress::NoProgress;

    #[tokio::test]
    async fn a_rejected_policy_is_reported_with_the_server_message_and_nothing_is_applied() {
        let (client, log) = fake_api::client(|r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", _) => not_found(),
            ("POST", p) if p.ends_with("/leases") => (201, r.body.clone()),
            ("PATCH", p) if p.ends_with("/api-ingress") => fake_api::status(
                422,
                "Invalid",
                ".spec.ingress[0].notAField: field not declared in schema",
            ),
            ("PATCH", _) => (200, r.body.clone()),
            _ => fake_api::status(500, "InternalError", "unexpected"),
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api-ingress, namespace: backend}\nspec: {}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: dns}\nspec: {}\n",
        )
        .unwrap();
        let manifests = load_posture("p", &[file]).unwrap();
        let state = crate::state::tests::sample();
        let err = apply_posture_with(
            &client,
            &state,
            "p",
            manifests,
            &ApplyOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap_err();
        let PostureError::Rejected {
            rejections,
            applied_any,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert!(!applied_any);
        assert_eq!(rejections.len(), 1);
        assert_eq!(
            rejections[0].policy.to_string(),
            "CiliumNetworkPolicy backend/api-ingress"
        );
        assert!(
            rejections[0].message.contains("notAField"),
            "{}",
            rejections[0].message
        );
        let patches: Vec<_> = fake_api::requests(&log)
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect();
        assert_eq!(patches.len(), 2, "both objects are dry-run");
        assert!(
            patches
                .iter()
                .all(|p| p.query.contains("dryRun=All")
                    && p.query.contains("fieldValidation=Strict"))
        );
        assert_eq!(
            patches[1].path,
            "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies/dns"
        );
        assert_eq!(patches[0].body["metadata"]["labels"][LABEL_POSTURE], "p");
    }
}
