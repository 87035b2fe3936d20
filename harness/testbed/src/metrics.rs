//! The Hubble metrics each Cilium agent exposes.
//!
//! Hubble's metric families appear in a scrape only after their first sample (a `dns` family needs DNS
//! traffic through Cilium's DNS proxy), so "exposed" is decided from two facts: the metric is enabled in
//! the agents' configuration (`cilium-config`, key `hubble-metrics`), and the agent's metrics endpoint
//! (port 9965, through the API server's pod proxy) answers with Hubble metrics.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Client;
use kube::api::{Api, ListParams};

use crate::client::api_message;

/// One agent's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentMetrics {
    /// The node the agent runs on.
    pub node: String,
    /// Metric names enabled for it (`drop`, `tcp`, `dns`, ...); empty when its endpoint did not answer.
    pub enabled: Vec<String>,
    /// Why the endpoint is not counted, when it is not.
    pub problem: Option<String>,
}

/// The enabled metric names of a `hubble-metrics` value (`dns:query;ignoreAAAA drop tcp` → dns, drop, tcp).
pub fn parse_enabled(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .map(|m| m.split(':').next().unwrap_or(m).to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Whether a scrape shows Hubble's metrics server (any `hubble_` sample or HELP line).
pub fn scrape_has_hubble(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("hubble_") || l.starts_with("# HELP hubble_"))
}

/// Asks every Cilium agent pod of `namespace` (label `k8s-app=cilium`).
///
/// # Errors
/// The configuration or the agent list cannot be read.
pub async fn hubble_metrics(client: &Client, namespace: &str) -> Result<Vec<AgentMetrics>, String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = cms
        .get("cilium-config")
        .await
        .map_err(|e| format!("cannot read {namespace}/cilium-config: {}", api_message(&e)))?;
    let enabled = cm
        .data
        .as_ref()
        .and_then(|d| d.get("hubble-metrics"))
        .map(|v| parse_enabled(v))
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels("k8s-app=cilium"))
        .await
        .map_err(|e| format!("cannot list the Cilium agents: {}", api_message(&e)))?;
    let mut out = Vec::new();
    for p in &list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| name.clone());
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}:9965/proxy/metrics");
        let scrape = match http::Request::get(&path).body(Vec::new()) {
            Ok(req) => client.request_text(req).await.map_err(|e| api_message(&e)),
            Err(e) => Err(e.to_string()),
        };
        let (enabled, problem) = match scrape {
            Ok(text) if scrape_has_hubble(&text) => (enabled.clone(), None),
            Ok(_) => (
                Vec::new(),
                Some(format!(
                    "agent {name}: the metrics endpoint answered without Hubble metrics"
                )),
            ),
            Err(e) => (
                Vec::new(),
                Some(format!(
                    "agent {name}: metrics endpoint :9965 did not answer: {e}"
                )),
            ),
        };
        out.push(AgentMetrics {
            node,
            enabled,
            problem,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_metrics_drop_their_options() {
        assert_eq!(
            parse_enabled("dns:query;ignoreAAAA drop tcp flow"),
            vec!["dns", "drop", "tcp", "flow"]
        );
        assert!(parse_enabled("").is_empty());
    }

    #[test]
    fn scrape_is_recognised_by_hubble_families() {
        assert!(scrape_has_hubble(
            "# HELP hubble_flows_processed_total x\nhubble_flows_processed_total 3\n"
        ));
        assert!(!scrape_has_hubble(
            "# HELP go_goroutines x\ngo_goroutines 12\n"
        ));
    }
}
