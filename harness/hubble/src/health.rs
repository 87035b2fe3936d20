//! Health before evidence: is Relay reachable, is every node connected, are
//! flows flowing? Run before a run; a failure here is an infrastructure
//! problem, never a policy result.

use std::fmt;

use crate::client::{ClientError, HubbleClient, NodeInfo, ServerStatus};
use crate::model::NodeState;

/// What a healthy Relay must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Nodes that must be connected, by full Hubble name
    /// (`kind-kind/kind-worker`) or by bare node name (`kind-worker`).
    /// Empty: only Relay's own count of unavailable nodes is checked.
    pub expected_nodes: Vec<String>,
    /// Require `num_flows > 0`.
    pub require_flows: bool,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            expected_nodes: Vec::new(),
            require_flows: true,
        }
    }
}

/// What a healthy Relay showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// `ServerStatus`.
    pub status: ServerStatus,
    /// `GetNodes` (`None` when the server does not implement it).
    pub nodes: Option<Vec<NodeInfo>>,
}

/// One thing wrong with Relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthProblem {
    /// A node is known but not connected.
    NodeNotConnected {
        /// Node name.
        node: String,
        /// Its state.
        state: NodeState,
    },
    /// Relay counts unavailable nodes without naming them all.
    UnavailableNodes {
        /// How many.
        count: u32,
    },
    /// An expected node is not known to Relay.
    NodeMissing {
        /// The expected name.
        node: String,
        /// The nodes Relay knows.
        known: Vec<String>,
    },
    /// Relay has no connected node.
    NoConnectedNodes,
    /// No flows in the ring buffers.
    NoFlows,
}

fn bare(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl fmt::Display for HealthProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthProblem::NodeNotConnected { node, state } => write!(
                f,
                "node {node} is {state}: check its cilium agent \
                 (`kubectl -n kube-system get pods -l k8s-app=cilium -o wide --field-selector spec.nodeName={}`), \
                 that Hubble is enabled on it and that TCP 4244 is reachable between nodes",
                bare(node)
            ),
            HealthProblem::UnavailableNodes { count } => write!(
                f,
                "Relay reports {count} unavailable node(s): check the cilium agents \
                 (`kubectl -n kube-system get pods -l k8s-app=cilium -o wide`) and hubble-relay's log"
            ),
            HealthProblem::NodeMissing { node, known } => write!(
                f,
                "node {node} is not known to Relay (it knows: {}): check that cilium runs on it and \
                 that hubble-relay's peer service lists it",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            HealthProblem::NoConnectedNodes => f.write_str(
                "Relay has no connected node: check hubble-relay's log and the cilium agents",
            ),
            HealthProblem::NoFlows => f.write_str(
                "Relay is up but has no flows: check that Hubble is enabled on the agents \
                 (`cilium status`, hubble.enabled=true) and that bpf.monitorAggregation is not hiding traffic",
            ),
        }
    }
}

/// Why Relay is not fit to give evidence.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Relay could not be reached or refused `ServerStatus`.
    #[error(
        "Hubble Relay is not reachable ({0}): check that the port-forward to hubble-relay is running \
         (`cilium hubble port-forward`, or `kubectl -n kube-system port-forward service/hubble-relay 4245:80`) \
         and that the hubble-relay pod is Ready (`kubectl -n kube-system get pods -l k8s-app=hubble-relay`)"
    )]
    Unreachable(#[source] ClientError),
    /// Relay answered, but something is wrong.
    #[error("Hubble Relay at {endpoint} is not healthy: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unhealthy {
        /// The address.
        endpoint: String,
        /// What is wrong (all of it).
        problems: Vec<HealthProblem>,
        /// What Relay reported.
        report: Box<HealthReport>,
    },
}

impl HubbleClient {
    /// Checks Relay before a run: `ServerStatus` answers, every node is
    /// connected (by `GetNodes` when available, and by Relay's unavailable
    /// count), the expected nodes are known, and there are flows.
    ///
    /// # Caveats
    /// Flows in the ring buffer show that Hubble recorded traffic at some
    /// point; to see that flows are arriving now, also call
    /// [`crate::FlowWatch::wait_for_flows`] on the run's watch.
    ///
    /// # Errors
    /// [`HealthError::Unreachable`] or [`HealthError::Unhealthy`] naming
    /// every problem found, each with what to check.
    pub async fn check_health(&self, check: &HealthCheck) -> Result<HealthReport, HealthError> {
        let status = self
            .server_status()
            .await
            .map_err(HealthError::Unreachable)?;
        let nodes = self.nodes().await.map_err(HealthError::Unreachable)?;
        let mut problems = Vec::new();
        if let Some(nodes) = &nodes {
            for node in nodes {
                if node.state != NodeState::Connected {
                    problems.push(HealthProblem::NodeNotConnected {
                        node: node.name.clone(),
                        state: node.state,
                    });
                }
            }
        }
        for name in &status.unavailable_nodes {
            let already = problems
                .iter()
                .any(|p| matches!(p, HealthProblem::NodeNotConnected { node, .. } if node == name));
            if !already {
                problems.push(HealthProblem::NodeNotConnected {
                    node: name.clone(),
                    state: NodeState::Unavailable,
                });
            }
        }
        let named = problems.len();
        if let Some(count) = status.unavailable_count
            && usize::try_from(count).unwrap_or(usize::MAX) > named
        {
            problems.push(HealthProblem::UnavailableNodes { count });
        }
        if !check.expected_nodes.is_empty() {
            let known: Vec<String> = nodes
                .as_ref()
                .map(|list| list.iter().map(|n| n.name.clone()).collect())
                .unwrap_or_default();
            if nodes.is_some() {
                for expected in &check.expected_nodes {
                    let found = known
                        .iter()
                        .any(|k| k == expected || bare(k) == expected.as_str());
                    if !found {
                        problems.push(HealthProblem::NodeMissing {
                            node: expected.clone(),
                            known: known.clone(),
                        });
                    }
                }
            } else if let Some(connected) = status.connected_nodes
                && usize::try_from(connected).unwrap_or(0) < check.expected_nodes.len()
            {
                problems.push(HealthProblem::UnavailableNodes {
                    count: u32::try_from(check.expected_nodes.len()).unwrap_or(u32::MAX)
                        - connected,
                });
            }
        }
        if status.connected_nodes == Some(0) {
            problems.push(HealthProblem::NoConnectedNodes);
        }
        if check.require_flows && status.num_flows == 0 {
            problems.push(HealthProblem::NoFlows);
        }
        let report = HealthReport { status, nodes };
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(HealthError::Unhealthy {
                endpoint: self.endpoint().to_string(),
                problems,
                report: Box::new(report),
            })
        }
    }
}
