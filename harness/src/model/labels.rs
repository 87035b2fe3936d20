//! Security-identity labels and Cilium's label selectors.
//!
//! Cilium keys carry a source: `k8s:role` is the Kubernetes label `role`, `reserved:world` a reserved
//! identity. A selector key without a source (`role`) matches the key from any source
//! (cilium-semantics.md §1, `EndpointSelector.Sanitize`).

use std::collections::BTreeMap;

use crate::policy::{Operator, Selector};

/// The namespace label every pod identity carries.
pub const NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";
/// Prefix of the namespace-label keys every pod identity carries.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The service-account label.
pub const SERVICE_ACCOUNT_KEY: &str = "io.cilium.k8s.policy.serviceaccount";
/// The cluster label.
pub const CLUSTER_KEY: &str = "io.cilium.k8s.policy.cluster";

/// One identity label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

/// The labels of one security identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet(pub Vec<Label>);

impl LabelSet {
    pub fn add(&mut self, source: &str, key: &str, value: &str) {
        self.0.push(Label {
            source: source.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        });
    }

    /// The labels of a pod: its own labels, its namespace, the namespace's labels, service account and
    /// cluster, all with source `k8s`.
    pub fn for_pod(
        namespace: &str,
        pod_labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
        service_account: &str,
        cluster: &str,
    ) -> LabelSet {
        let mut s = LabelSet::default();
        for (k, v) in pod_labels {
            s.add("k8s", k, v);
        }
        s.add("k8s", NAMESPACE_KEY, namespace);
        for (k, v) in namespace_labels {
            s.add("k8s", &format!("{NAMESPACE_LABELS_PREFIX}{k}"), v);
        }
        s.add("k8s", SERVICE_ACCOUNT_KEY, service_account);
        s.add("k8s", CLUSTER_KEY, cluster);
        s
    }

    /// Values of `key` among labels of `source` (any source when `None`).
    fn values<'a>(
        &'a self,
        source: Option<&'a str>,
        key: &'a str,
    ) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |l| l.key == key && source.is_none_or(|s| s == l.source))
            .map(|l| l.value.as_str())
    }

    /// `source:key=value` strings, for display.
    pub fn display(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|l| {
                if l.value.is_empty() {
                    format!("{}:{}", l.source, l.key)
                } else {
                    format!("{}:{}={}", l.source, l.key, l.value)
                }
            })
            .collect()
    }
}

/// A selector key split into its source and name: `k8s:role` → (Some("k8s"), "role"); `role` → (None,
/// "role"). Only the first colon separates the source.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once(':') {
        Some((src, rest)) if !src.is_empty() && src != "any" => (Some(src), rest),
        Some(("any", rest)) => (None, rest),
        _ => (None, key),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReqOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// One requirement of a compiled selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub source: Option<String>,
    pub key: String,
    pub op: ReqOp,
}

impl Req {
    fn matches(&self, labels: &LabelSet) -> bool {
        let src = self.source.as_deref();
        match &self.op {
            ReqOp::In(vals) => labels
                .values(src, &self.key)
                .any(|v| vals.iter().any(|x| x == v)),
            ReqOp::NotIn(vals) => labels
                .values(src, &self.key)
                .all(|v| !vals.iter().any(|x| x == v)),
            ReqOp::Exists => labels.values(src, &self.key).next().is_some(),
            ReqOp::DoesNotExist => labels.values(src, &self.key).next().is_none(),
        }
    }
}

/// A selector after Cilium's rewriting, ready to match identities. All requirements are ANDed; an empty
/// selector matches every identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledSelector {
    pub reqs: Vec<Req>,
}

impl CompiledSelector {
    /// Compile a selector as written, without any namespace rewriting.
    pub fn from_selector(sel: &Selector) -> CompiledSelector {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            let (source, key) = split_key(k);
            reqs.push(Req {
                source: source.map(str::to_string),
                key: key.to_string(),
                op: ReqOp::In(vec![v.clone()]),
            });
        }
        for r in sel.match_expressions.iter().flatten() {
            let (source, key) = split_key(&r.key);
            let values = r.values.clone().unwrap_or_default();
            let op = match r.operator {
                Operator::In => ReqOp::In(values),
                Operator::NotIn => ReqOp::NotIn(values),
                Operator::Exists => ReqOp::Exists,
                Operator::DoesNotExist => ReqOp::DoesNotExist,
            };
            reqs.push(Req {
                source: source.map(str::to_string),
                key: key.to_string(),
                op,
            });
        }
        CompiledSelector { reqs }
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Whether any requirement uses a `reserved:` key.
    pub fn has_reserved_key(&self) -> bool {
        self.reqs
            .iter()
            .any(|r| r.source.as_deref() == Some("reserved"))
    }

    fn is_namespace_req(r: &Req) -> bool {
        r.key == NAMESPACE_KEY && matches!(r.source.as_deref(), None | Some("k8s"))
    }

    /// Whether the selector names a namespace (`io.kubernetes.pod.namespace`, from `k8s` or any source).
    pub fn names_namespace(&self) -> bool {
        self.reqs.iter().any(Self::is_namespace_req)
    }

    /// Whether the selector uses namespace labels (`io.cilium.k8s.namespace.labels.*`).
    pub fn uses_namespace_labels(&self) -> bool {
        self.reqs.iter().any(|r| {
            r.key.starts_with(NAMESPACE_LABELS_PREFIX)
                && matches!(r.source.as_deref(), None | Some("k8s"))
        })
    }

    /// A peer selector (`fromEndpoints`/`toEndpoints`) as Cilium rewrites it (cilium-semantics.md §1,
    /// `getEndpointSelector`): in a CiliumNetworkPolicy a selector that names no namespace is limited to the
    /// policy's namespace, unless it uses a reserved key or namespace labels; in a clusterwide policy it is
    /// limited to pods (namespace label exists). Returns the selector and whether a namespace was added.
    pub fn peer(sel: &Selector, policy_namespace: Option<&str>) -> (CompiledSelector, bool) {
        let mut c = CompiledSelector::from_selector(sel);
        if c.has_reserved_key() || c.names_namespace() {
            return (c, false);
        }
        match policy_namespace {
            Some(ns) => {
                if c.uses_namespace_labels() {
                    return (c, false);
                }
                c.reqs.push(Req {
                    source: Some("k8s".into()),
                    key: NAMESPACE_KEY.into(),
                    op: ReqOp::In(vec![ns.to_string()]),
                });
                (c, true)
            }
            None => {
                c.reqs.push(Req {
                    source: Some("k8s".into()),
                    key: NAMESPACE_KEY.into(),
                    op: ReqOp::Exists,
                });
                (c, false)
            }
        }
    }

    /// The subject selector (`endpointSelector`) of a CiliumNetworkPolicy: always restricted to the policy's
    /// namespace; a namespace given in `matchLabels` is overwritten (cilium-semantics.md §1,
    /// `ParseToCiliumRule`). Clusterwide policies select as written. Returns the selector and whether a
    /// namespace the author wrote was overwritten.
    pub fn subject(sel: &Selector, policy_namespace: Option<&str>) -> (CompiledSelector, bool) {
        let Some(ns) = policy_namespace else {
            return (CompiledSelector::from_selector(sel), false);
        };
        let mut overwritten = false;
        let mut c = CompiledSelector::default();
        for (k, v) in sel.match_labels.iter().flatten() {
            let (source, key) = split_key(k);
            if key == NAMESPACE_KEY && matches!(source, None | Some("k8s")) {
                overwritten |= v != ns;
                continue;
            }
            c.reqs.push(Req {
                source: source.map(str::to_string),
                key: key.to_string(),
                op: ReqOp::In(vec![v.clone()]),
            });
        }
        let exprs = Selector {
            match_labels: None,
            match_expressions: sel.match_expressions.clone(),
        };
        c.reqs.extend(CompiledSelector::from_selector(&exprs).reqs);
        c.reqs.push(Req {
            source: Some("k8s".into()),
            key: NAMESPACE_KEY.into(),
            op: ReqOp::In(vec![ns.to_string()]),
        });
        (c, overwritten)
    }
}

/// A short human form of a selector as written: `{role: frontend}`.
pub fn show_selector(sel: &Selector) -> String {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}: {v}"));
    }
    for r in sel.match_expressions.iter().flatten() {
        let vals = r.values.clone().unwrap_or_default().join(",");
        parts.push(format!("{} {:?} [{vals}]", r.key, r.operator));
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Requirement;

    fn sel(labels: &[(&str, &str)]) -> Selector {
        Selector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: None,
        }
    }

    fn pod(ns: &str, labels: &[(&str, &str)]) -> LabelSet {
        let l = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let nsl = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]);
        LabelSet::for_pod(ns, &l, &nsl, "default", "default")
    }

    // cilium-semantics.md §1: a fromEndpoints selector without a namespace key is limited to the policy's
    // namespace in a CiliumNetworkPolicy.
    #[test]
    fn peer_selector_without_namespace_is_limited_to_policy_namespace() {
        let (c, added) = CompiledSelector::peer(&sel(&[("role", "frontend")]), Some("backend"));
        assert!(added);
        assert!(c.matches(&pod("backend", &[("role", "frontend")])));
        assert!(!c.matches(&pod("frontend", &[("role", "frontend")])));
    }

    // §1: `{}` in a CNP means "every pod of this namespace", not everything.
    #[test]
    fn empty_peer_selector_means_this_namespace() {
        let (c, _) = CompiledSelector::peer(&Selector::default(), Some("kafka"));
        assert!(c.matches(&pod("kafka", &[])));
        assert!(!c.matches(&pod("analytics", &[])));
    }

    // §1: a clusterwide policy's peer selector gets `namespace Exists`: any pod, whatever its namespace.
    #[test]
    fn clusterwide_peer_selector_matches_pods_of_every_namespace() {
        let (c, added) = CompiledSelector::peer(&sel(&[("role", "frontend")]), None);
        assert!(!added);
        assert!(c.matches(&pod("frontend", &[("role", "frontend")])));
        let mut world = LabelSet::default();
        world.add("reserved", "world", "");
        assert!(
            !CompiledSelector::peer(&Selector::default(), None)
                .0
                .matches(&world)
        );
    }

    // §1: naming the namespace (with or without the k8s: source) selects across namespaces.
    #[test]
    fn explicit_namespace_key_selects_another_namespace() {
        for key in [
            "k8s:io.kubernetes.pod.namespace",
            "io.kubernetes.pod.namespace",
        ] {
            let (c, added) = CompiledSelector::peer(
                &sel(&[(key, "frontend"), ("role", "frontend")]),
                Some("backend"),
            );
            assert!(!added);
            assert!(c.matches(&pod("frontend", &[("role", "frontend")])));
            assert!(!c.matches(&pod("backend", &[("role", "frontend")])));
        }
    }

    // §1: namespace-label selectors (v1.16+) are not restricted to the policy namespace.
    #[test]
    fn namespace_label_selector_is_not_restricted() {
        let s = sel(&[(
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
            "frontend",
        )]);
        let (c, added) = CompiledSelector::peer(&s, Some("backend"));
        assert!(!added);
        assert!(c.matches(&pod("frontend", &[])));
    }

    // §1: the endpointSelector of a CNP is always forced to the policy namespace, overwriting matchLabels.
    #[test]
    fn subject_selector_namespace_is_overwritten() {
        let s = sel(&[("k8s:io.kubernetes.pod.namespace", "other"), ("app", "x")]);
        let (c, overwritten) = CompiledSelector::subject(&s, Some("mine"));
        assert!(overwritten);
        assert!(c.matches(&pod("mine", &[("app", "x")])));
        assert!(!c.matches(&pod("other", &[("app", "x")])));
    }

    #[test]
    fn source_prefix_restricts_matching_source() {
        let mut l = LabelSet::default();
        l.add("k8s", "role", "x");
        let any = CompiledSelector::from_selector(&sel(&[("role", "x")]));
        let k8s = CompiledSelector::from_selector(&sel(&[("k8s:role", "x")]));
        let other = CompiledSelector::from_selector(&sel(&[("container:role", "x")]));
        assert!(any.matches(&l) && k8s.matches(&l));
        assert!(!other.matches(&l));
    }

    #[test]
    fn match_expressions_follow_kubernetes_operators() {
        let s = Selector {
            match_labels: None,
            match_expressions: Some(vec![
                Requirement {
                    key: "a".into(),
                    operator: Operator::In,
                    values: Some(vec!["1".into(), "2".into()]),
                },
                Requirement {
                    key: "b".into(),
                    operator: Operator::NotIn,
                    values: Some(vec!["x".into()]),
                },
                Requirement {
                    key: "c".into(),
                    operator: Operator::DoesNotExist,
                    values: None,
                },
            ]),
        };
        let c = CompiledSelector::from_selector(&s);
        let mut l = LabelSet::default();
        l.add("k8s", "a", "2");
        assert!(c.matches(&l));
        l.add("k8s", "b", "x");
        assert!(!c.matches(&l));
        let mut l2 = LabelSet::default();
        l2.add("k8s", "a", "2");
        l2.add("k8s", "c", "");
        assert!(!c.matches(&l2));
    }
}
