//! Connecting to the cluster and addressing the object kinds the test bed handles.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Errors connecting to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error(
        "the kubeconfig has no current context: pass a context or run `kubectl config use-context`"
    )]
    NoCurrentContext,
    #[error("the lab's API server: {0}")]
    Lab(String),
    #[error("cannot build a client for kube context {context}: {source}")]
    Client {
        context: String,
        #[source]
        source: kube::Error,
    },
}

/// Makes rustls use `ring` as the process-wide crypto provider.
///
/// kube builds its TLS config with `ClientConfig::builder()`, which panics when more than one provider is
/// compiled into the process (e.g. reqwest 0.13 brings aws-lc-rs) and none was installed. Installing one is
/// harmless when another part of the program already did: the first install wins.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The current context's name in the kubeconfig (`$KUBECONFIG` or `~/.kube/config`).
pub fn current_context() -> Result<String, ConnectError> {
    let config = Kubeconfig::read().map_err(ConnectError::Kubeconfig)?;
    config.current_context.ok_or(ConnectError::NoCurrentContext)
}

/// A client for a test bed's state: its own kubeconfig file when it has one (the lab), else its context.
pub async fn connect_state(state: &crate::State) -> Result<(Client, String), ConnectError> {
    match &state.kubeconfig {
        Some(path) => {
            let client = crate::lab::client_for(path)
                .await
                .map_err(ConnectError::Lab)?;
            Ok((client, state.kube_context.clone()))
        }
        None => connect(Some(&state.kube_context)).await,
    }
}

/// A client for `context` (the current context when `None`), with that context's name.
pub async fn connect(context: Option<&str>) -> Result<(Client, String), ConnectError> {
    install_crypto_provider();
    let context = match context {
        Some(c) => c.to_string(),
        None => current_context()?,
    };
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let config =
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ConnectError::Client {
                context: context.clone(),
                source: kube::Error::InferKubeconfig(e),
            })?;
    let client = Client::try_from(config).map_err(|source| ConnectError::Client {
        context: context.clone(),
        source,
    })?;
    Ok((client, context))
}

/// The API resource for an object's `apiVersion` and `kind`, and whether it is namespaced.
///
/// Only the kinds the stack and the postures use are known; anything else is `None` (the caller reports
/// it). A fixed table instead of API discovery: no round trips, and it works before Cilium's CRDs exist.
pub fn resource_for(api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
    let erase = |ar: ApiResource, namespaced: bool| Some((ar, namespaced));
    match (api_version, kind) {
        ("v1", "Namespace") => erase(ApiResource::erase::<Namespace>(&()), false),
        ("v1", "Service") => erase(ApiResource::erase::<Service>(&()), true),
        ("v1", "ServiceAccount") => erase(ApiResource::erase::<ServiceAccount>(&()), true),
        ("v1", "ConfigMap") => erase(ApiResource::erase::<ConfigMap>(&()), true),
        ("v1", "Secret") => erase(ApiResource::erase::<Secret>(&()), true),
        ("apps/v1", "Deployment") => erase(ApiResource::erase::<Deployment>(&()), true),
        ("apps/v1", "DaemonSet") => erase(ApiResource::erase::<DaemonSet>(&()), true),
        ("apps/v1", "StatefulSet") => erase(ApiResource::erase::<StatefulSet>(&()), true),
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            erase(ApiResource::erase::<NetworkPolicy>(&()), true)
        }
        ("cilium.io/v2", "CiliumNetworkPolicy") => erase(cilium_network_policy(), true),
        ("cilium.io/v2", "CiliumClusterwideNetworkPolicy") => {
            erase(cilium_clusterwide_network_policy(), false)
        }
        _ => None,
    }
}

pub fn cilium_network_policy() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumNetworkPolicy"),
        "ciliumnetworkpolicies",
    )
}

pub fn cilium_clusterwide_network_policy() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumClusterwideNetworkPolicy"),
        "ciliumclusterwidenetworkpolicies",
    )
}

/// The API server's message for a failed call (the text a user needs), or the error's own text.
pub fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.is_not_found())
}

pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_resolve_with_their_scope() {
        let (ar, namespaced) =
            resource_for("cilium.io/v2", "CiliumClusterwideNetworkPolicy").unwrap();
        assert_eq!(ar.plural, "ciliumclusterwidenetworkpolicies");
        assert!(!namespaced);
        let (ar, namespaced) = resource_for("apps/v1", "Deployment").unwrap();
        assert_eq!(
            (ar.group.as_str(), ar.plural.as_str(), namespaced),
            ("apps", "deployments", true)
        );
        assert!(resource_for("v1", "Pod").is_none());
    }
}
