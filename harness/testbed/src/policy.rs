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
    api_message, cilium_clusterwide_network_policy, cilium_network_policy, is_not_found,
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
    /// Policies (`namespace/name`, or `name` when cluster-wide) that the API server accepts but Cilium's
    /// agent refuses to import, with the reason (from the model). The wait does not expect them in the
    /// agent's repository (they never arrive there); the report lists them.
    pub agent_refuses: std::collections::BTreeMap<String, String>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            enforce_timeout: Duration::from_secs(120),
            agent_refuses: std::collections::BTreeMap::new(),
        }
    }
}

/// The bound of one `cilium-dbg` call on an agent. Each call has its own, so that a wait's last message is
/// the agent's answer, not a call cut short by the wait's own deadline.
const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// `namespace/name` (or `name`) of a policy, as the model names it.
fn model_name(p: &PolicyRef) -> String {
    match &p.namespace {
        Some(ns) => format!("{ns}/{}", p.name),
        None => p.name.clone(),
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

/// The value of [`LABEL_POSTURE`] for a posture given as a name (`hardened`) or a directory
/// (`fixtures/lab-facts/policies`): a valid Kubernetes label value (at most 63 characters of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends), built from the path's components, the others replaced by `-`.
pub fn posture_label_value(posture: &str) -> String {
    let mapped: String = posture
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let tail = mapped.len().saturating_sub(63);
    mapped[tail..]
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn label(m: &mut Manifest, posture: &str) {
    let metadata = &mut m.value["metadata"];
    if !metadata.get("labels").is_some_and(Value::is_object) {
        metadata["labels"] = Value::Object(Default::default());
    }
    metadata["labels"][LABEL_POSTURE] = Value::String(posture_label_value(posture));
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

/// The command listing an agent's endpoints with their identity, state and realized policy revision.
pub fn endpoint_list_command() -> Vec<String> {
    ["cilium-dbg", "endpoint", "list", "-o", "json"]
        .map(String::from)
        .to_vec()
}

/// The label every rule derived from a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy carries, with
/// the object's uid as its value.
const POLICY_UID_LABEL: &str = "io.cilium.k8s.policy.uid";

/// Parses `cilium-dbg policy get -o json`: `{"revision": N, "policy": "<JSON list of rules>"}`.
///
/// The rule list has two shapes:
/// - up to Cilium 1.18, `api.Rule` values whose labels are under `labels`;
/// - from 1.19, `types.PolicyEntry` values (one per ingress/egress section), whose labels field has no JSON
///   tag and is written `Labels`.
///
/// In both, a label is a `{key, value, source}` object (a `source:key=value` string is accepted too).
/// `rule_uids` is `None` when no rule carries labels in either shape (an empty repository, or a shape this
/// parser does not know): the caller then relies on the revision alone.
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
    let rules = rules
        .as_ref()
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let labelled: Vec<&Vec<Value>> = rules
        .iter()
        .filter_map(|r| {
            r.get("labels")
                .and_then(Value::as_array)
                .or_else(|| r.get("Labels").and_then(Value::as_array))
        })
        .collect();
    let rule_uids = (!labelled.is_empty()).then(|| {
        labelled
            .into_iter()
            .flatten()
            .filter_map(policy_uid_of_label)
            .collect()
    });
    Ok(AgentPolicy {
        revision,
        rule_uids,
    })
}

fn policy_uid_of_label(label: &Value) -> Option<String> {
    match label {
        Value::Object(o) if o.get("key").and_then(Value::as_str) == Some(POLICY_UID_LABEL) => {
            o.get("value").and_then(Value::as_str).map(str::to_string)
        }
        Value::String(s) => s
            .split_once(&format!("{POLICY_UID_LABEL}="))
            .map(|(_, uid)| uid.to_string()),
        _ => None,
    }
}

/// One endpoint of an agent, as far as enforcement is concerned (`cilium-dbg endpoint list -o json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRevision {
    pub id: i64,
    /// `namespace/pod` for a pod, else its reserved identity labels (e.g. `reserved:host`), else
    /// `endpoint ID`.
    pub name: String,
    /// The numeric security identity; `None` while the endpoint waits for one.
    pub identity: Option<i64>,
    /// `status.state`, e.g. `ready`, `regenerating`, `not-ready`.
    pub state: Option<String>,
    /// `status.policy.realized.policy-revision`; `None` when nothing is realized yet.
    pub realized_revision: Option<i64>,
    /// The security identity's labels (`k8s:io.kubernetes.pod.namespace=backend`, ...).
    pub identity_labels: Vec<String>,
}

impl fmt::Display for EndpointRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (endpoint {}, ", self.name, self.id)?;
        match self.realized_revision {
            Some(r) => write!(f, "realized revision {r}")?,
            None => write!(f, "no realized policy")?,
        }
        write!(f, ", state {})", self.state.as_deref().unwrap_or("unknown"))
    }
}

/// Parses `cilium-dbg endpoint list -o json`: a list of the API's `Endpoint` models, of which `id`,
/// `status.identity.id`, `status.identity.labels`, `status.state`, `status.policy.realized.policy-revision`
/// and `status.external-identifiers.{k8s-namespace,k8s-pod-name}` are read (field names of Cilium 1.19's
/// `api/v1/models`).
pub fn parse_endpoint_list(stdout: &[u8]) -> Result<Vec<EndpointRevision>, String> {
    let v: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("unreadable `endpoint list` output: {e}"))?;
    let list = match &v {
        Value::Array(list) => list.as_slice(),
        Value::Null => &[],
        other => {
            return Err(format!(
                "`endpoint list` output is not a list of endpoints but {}",
                json_kind(other)
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, ep)| {
            let id = ep
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("`endpoint list` entry {i} has no numeric id"))?;
            let status = ep.get("status");
            let at = |path: &[&str]| {
                path.iter()
                    .try_fold(status?, |v, k| v.get(*k))
                    .filter(|v| !v.is_null())
            };
            let pod = match (
                at(&["external-identifiers", "k8s-namespace"]).and_then(Value::as_str),
                at(&["external-identifiers", "k8s-pod-name"]).and_then(Value::as_str),
            ) {
                (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => {
                    Some(format!("{ns}/{pod}"))
                }
                _ => None,
            };
            let reserved = at(&["identity", "labels"])
                .and_then(Value::as_array)
                .map(|ls| {
                    ls.iter()
                        .filter_map(Value::as_str)
                        .filter(|l| l.starts_with("reserved:"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty());
            Ok(EndpointRevision {
                id,
                name: pod.or(reserved).unwrap_or_else(|| format!("endpoint {id}")),
                identity: at(&["identity", "id"]).and_then(Value::as_i64),
                state: at(&["state"]).and_then(Value::as_str).map(str::to_string),
                realized_revision: at(&["policy", "realized", "policy-revision"])
                    .and_then(Value::as_i64),
                identity_labels: at(&["identity", "labels"])
                    .and_then(Value::as_array)
                    .map(|ls| {
                        ls.iter()
                            .filter_map(|l| l.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The endpoints that have not yet realized policy revision `target`: every endpoint with a security
/// identity counts, except those being removed (`disconnecting`, `disconnected`). Unlike
/// `cilium-dbg policy wait`, the endpoints need not all be `ready` at the same moment.
pub fn endpoints_lagging(endpoints: &[EndpointRevision], target: i64) -> Vec<&EndpointRevision> {
    endpoints
        .iter()
        .filter(|e| e.identity.is_some_and(|id| id > 0))
        .filter(|e| !matches!(e.state.as_deref(), Some("disconnecting" | "disconnected")))
        .filter(|e| e.realized_revision.is_none_or(|r| r < target))
        .collect()
}

/// A wait's observation: how many endpoints lag behind `target`, naming at most `limit` of them.
pub fn describe_lagging(lagging: &[&EndpointRevision], target: i64, limit: usize) -> String {
    let named: Vec<String> = lagging.iter().take(limit).map(|e| e.to_string()).collect();
    let more = match lagging.len().saturating_sub(limit) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{} endpoint(s) have not realized policy revision {target}: {}{more}",
        lagging.len(),
        named.join(", ")
    )
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
/// posture; wait until every agent has imported the change and every endpoint with an identity has
/// realized the new revision (`cilium-dbg endpoint list`, see [`endpoints_lagging`]).
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
    let (client, _) = crate::client::connect_state(state)
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

    let agents = match &state.lab {
        // The lab's one agent is a host process, not a pod: it stands as one pod-shaped entry.
        Some(_) => vec![lab_agent()],
        None => cilium_agents(&client, &state.cilium_namespace)
            .await
            .map_err(|e| cluster(e.to_string()))?,
    };
    if agents.is_empty() {
        return Err(cluster(format!(
            "no Cilium agent pods (k8s-app=cilium) in namespace {}",
            state.cilium_namespace
        )));
    }
    let mut before = Vec::new();
    for a in &agents {
        let name = a.metadata.name.clone().unwrap_or_default();
        let policy = agent_policy(&client, state, &name).await.map_err(|m| {
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
    // A policy the agent refuses never reaches its repository: waiting for it would only time out.
    let present: BTreeSet<String> = applied
        .iter()
        .filter(|a| !options.agent_refuses.contains_key(&model_name(&a.policy)))
        .map(|a| a.uid.clone())
        .collect();
    for a in &applied {
        if let Some(why) = options.agent_refuses.get(&model_name(&a.policy)) {
            progress.detail(&format!(
                "{}: accepted by the API server, refused by Cilium's agent ({why}); not waited for",
                a.policy
            ));
        }
    }
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
                    match agent_policy(&client, state, &pod).await {
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
                let target = now.revision;
                let what = format!(
                    "every endpoint managed by Cilium agent {pod} to realize policy revision {target}"
                );
                poll_until(&what, deadline, Backoff::default(), || async {
                    match agent_endpoints(&client, state, &pod).await {
                        Err(e) => Check::NotYet(e),
                        Ok(endpoints) => {
                            let lagging = endpoints_lagging(&endpoints, target);
                            if lagging.is_empty() {
                                Check::Ready(())
                            } else {
                                Check::NotYet(describe_lagging(&lagging, target, 10))
                            }
                        }
                    }
                })
                .await
                .map_err(|e| not_enforced(e.to_string()))?;
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

/// The lab's agent, as the one entry of the agent list (see [`crate::lab`]).
fn lab_agent() -> k8s_openapi::api::core::v1::Pod {
    k8s_openapi::api::core::v1::Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("cilium-agent".into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some(crate::lab::NODE_NAME.into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Runs a `cilium-dbg` command line on an agent: in its pod, or (the lab) the host's `cilium-dbg`, which
/// talks to the agent's API socket.
async fn agent_exec(
    client: &Client,
    state: &State,
    pod: &str,
    argv: &[String],
) -> Result<crate::ExecOutput, crate::ExecError> {
    match &state.lab {
        Some(lab) => {
            let out = tokio::process::Command::new(&lab.cilium_dbg)
                .args(argv.iter().skip(1))
                .output()
                .await
                .map_err(|e| crate::ExecError::Failed {
                    target: lab.cilium_dbg.display().to_string(),
                    message: e.to_string(),
                })?;
            Ok(crate::ExecOutput {
                stdout: out.stdout,
                stderr: out.stderr,
                exit_code: out.status.code().unwrap_or(-1),
            })
        }
        None => {
            exec_in_pod(
                client,
                &state.cilium_namespace,
                pod,
                CILIUM_AGENT_CONTAINER,
                argv,
            )
            .await
        }
    }
}

async fn agent_policy(client: &Client, state: &State, pod: &str) -> Result<AgentPolicy, String> {
    let out = tokio::time::timeout_at(
        Instant::now() + AGENT_CALL_TIMEOUT,
        agent_exec(client, state, pod, &policy_get_command()),
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

async fn agent_endpoints(
    client: &Client,
    state: &State,
    pod: &str,
) -> Result<Vec<EndpointRevision>, String> {
    let out = tokio::time::timeout_at(
        Instant::now() + AGENT_CALL_TIMEOUT,
        agent_exec(client, state, pod, &endpoint_list_command()),
    )
    .await
    .map_err(|_| "`cilium-dbg endpoint list` did not return in time".to_string())?
    .map_err(|e| e.to_string())?;
    if out.exit_code != 0 {
        return Err(format!(
            "`cilium-dbg endpoint list` exited with {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_endpoint_list(&out.stdout)
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
    use std::path::Path;

    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const CNP_DOC: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: api-ingress\n  namespace: backend\n  labels: {team: x}\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn posture_given_as_a_directory_becomes_a_valid_label_value() {
        assert_eq!(posture_label_value("hardened"), "hardened");
        assert_eq!(
            posture_label_value("fixtures/lab-facts/policies/"),
            "fixtures-lab-facts-policies"
        );
        assert_eq!(posture_label_value("/tmp/my posture"), "tmp-my-posture");
        let long = format!("/{}/x", "a".repeat(80));
        let value = posture_label_value(&long);
        assert!(value.len() <= 63 && value.ends_with("a-x"), "{value}");
        assert!(value.starts_with('a'), "{value}");
    }

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
            endpoint_list_command(),
            ["cilium-dbg", "endpoint", "list", "-o", "json"]
        );
    }

    /// The case directories under `testdata/<kind>/`, each with `output.json` and maybe `expected.json`.
    fn cases(kind: &str) -> Vec<(String, Vec<u8>, Option<Value>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(kind);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let case = entry.unwrap().path();
            if !case.is_dir() {
                continue;
            }
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let output = std::fs::read(case.join("output.json"))
                .unwrap_or_else(|e| panic!("{}/output.json: {e}", case.display()));
            let expected = std::fs::read(case.join("expected.json")).ok().map(|b| {
                serde_json::from_slice(&b)
                    .unwrap_or_else(|e| panic!("{}/expected.json: {e}", case.display()))
            });
            out.push((name, output, expected));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn policy_get_of_cilium_1_18_and_1_19_yields_the_policy_uids_of_the_rules() {
        let cases = cases("policy-get");
        for shape in ["cilium-1.18-rules", "cilium-1.19-policy-entries"] {
            assert!(
                cases.iter().any(|c| c.0 == shape),
                "test case {shape} missing"
            );
        }
        for (name, output, expected) in cases {
            let got = parse_policy_get(&output).unwrap_or_else(|e| panic!("{name}: {e}"));
            match expected {
                Some(exp) => {
                    assert_eq!(Some(got.revision), exp["revision"].as_i64(), "{name}");
                    let uids = exp["rule_uids"].as_array().map(|a| {
                        a.iter()
                            .map(|u| u.as_str().unwrap_or_default().to_string())
                            .collect::<BTreeSet<_>>()
                    });
                    assert_eq!(got.rule_uids, uids, "{name}");
                }
                None => assert!(
                    got.rule_uids.as_ref().is_some_and(|u| !u.is_empty()),
                    "{name}: no policy uid found in {got:?}"
                ),
            }
        }
    }

    #[test]
    fn policy_get_of_cilium_1_19_lets_an_apply_finish() {
        // On the old parser every applied policy stayed "not yet imported" on 1.19.
        let output = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/policy-get/cilium-1.19-policy-entries/output.json"),
        )
        .unwrap();
        let now = parse_policy_get(&output).unwrap();
        let present = now.rule_uids.clone().unwrap();
        assert_eq!(present.len(), 3);
        assert!(agent_caught_up(8, true, &now, &present, &BTreeSet::new()).is_ok());
    }

    #[test]
    fn policy_get_without_labelled_rules_falls_back_to_the_revision_check() {
        for rules in [
            serde_json::json!([]),
            serde_json::json!(null),
            serde_json::json!([{"Subject": {}, "Verdict": 0}, {"endpointSelector": {}}]),
        ] {
            let out = serde_json::json!({"policy": rules.to_string(), "revision": 5});
            let p = parse_policy_get(out.to_string().as_bytes()).unwrap();
            assert_eq!(p.rule_uids, None, "{rules}");
            let present = BTreeSet::from(["u".to_string()]);
            assert!(agent_caught_up(4, true, &p, &present, &BTreeSet::new()).is_ok());
            assert!(agent_caught_up(5, true, &p, &present, &BTreeSet::new()).is_err());
        }
    }

    #[test]
    fn endpoint_list_names_every_endpoint_behind_the_target_revision() {
        let cases = cases("endpoint-list");
        assert!(!cases.is_empty());
        for (name, output, expected) in cases {
            let eps = parse_endpoint_list(&output).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!eps.is_empty(), "{name}");
            let Some(exp) = expected else { continue };
            let target = exp["target_revision"].as_i64().unwrap();
            let lagging: Vec<&str> = endpoints_lagging(&eps, target)
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            let want: Vec<&str> = exp["lagging"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(lagging, want, "{name}");
        }
    }

    #[test]
    fn endpoints_without_identity_or_being_removed_are_not_waited_for() {
        let output = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/endpoint-list/cilium-1.19-one-lagging/output.json"),
        )
        .unwrap();
        let eps = parse_endpoint_list(&output).unwrap();
        assert_eq!(eps.len(), 6);
        let host = eps.iter().find(|e| e.id == 312).unwrap();
        assert_eq!(host.name, "reserved:host");
        assert_eq!((host.identity, host.realized_revision), (Some(1), Some(9)));
        // An endpoint that is not ready but has realized the revision does not hold the wait up, as it
        // would with `cilium-dbg policy wait`.
        assert!(endpoints_lagging(&eps, 8).is_empty());
        let lagging = endpoints_lagging(&eps, 10);
        assert_eq!(lagging.len(), 4, "{lagging:?}");
        let text = describe_lagging(&lagging, 10, 2);
        assert!(
            text.starts_with("4 endpoint(s) have not realized policy revision 10: reserved:host (endpoint 312, realized revision 9, state ready)")
                && text.ends_with(" and 2 more"),
            "{text}"
        );
        assert!(
            !text.contains("kafka-0") && !text.contains("attacker/"),
            "{text}"
        );
    }

    #[test]
    fn endpoint_list_that_is_not_a_list_is_an_error() {
        assert!(
            parse_endpoint_list(b"{}")
                .unwrap_err()
                .contains("not a list")
        );
        assert!(
            parse_endpoint_list(b"[{\"status\": {}}]")
                .unwrap_err()
                .contains("entry 0")
        );
        assert_eq!(parse_endpoint_list(b"null").unwrap(), Vec::new());
        let no_status = parse_endpoint_list(br#"[{"id": 7}]"#).unwrap();
        assert_eq!(no_status[0].name, "endpoint 7");
        assert_eq!(
            endpoints_lagging(&no_status, 1),
            Vec::<&EndpointRevision>::new()
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
