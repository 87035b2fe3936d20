//! Client for Hubble Relay's `observer.Observer` gRPC API.
//!
//! Plaintext HTTP/2 (Relay's own server is plaintext by default). For a
//! port-forward made by the runner (e.g. kube's `Api::<Pod>::portforward`),
//! build a `tonic::transport::Channel` over it and use
//! [`HubbleClient::from_channel`].

use std::time::{Duration, SystemTime};

use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::model::{Event, NodeState, unix_parts};
use crate::proto::flow::FlowFilter;
use crate::proto::observer::{
    GetFlowsRequest, GetNodesRequest, ServerStatusRequest, observer_client::ObserverClient,
};
use crate::watch::{EventStream, FlowWatch, StreamError, WatchOptions};

/// Errors talking to Relay.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint string is not a valid URI.
    #[error(
        "{endpoint:?} is not a valid Hubble Relay address (expected e.g. http://127.0.0.1:4245)"
    )]
    InvalidEndpoint {
        /// The address given.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The connection could not be made.
    #[error(
        "cannot connect to Hubble Relay at {endpoint}: is the port-forward running \
         (`cilium hubble port-forward`, or `kubectl -n kube-system port-forward service/hubble-relay 4245:80`) \
         and is the hubble-relay pod ready?"
    )]
    Connect {
        /// The address.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// An RPC failed.
    #[error("Hubble Relay at {endpoint}: {rpc} failed: {status}")]
    Rpc {
        /// The address.
        endpoint: String,
        /// The RPC name.
        rpc: &'static str,
        /// The gRPC status.
        #[source]
        status: Box<tonic::Status>,
    },
}

/// `ServerStatus` as reported by Relay (aggregated over all nodes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStatus {
    /// Flows currently in the ring buffers.
    pub num_flows: u64,
    /// Ring buffer capacity.
    pub max_flows: u64,
    /// Flows seen since start.
    pub seen_flows: u64,
    /// Uptime of the longest-running instance.
    pub uptime: Duration,
    /// Connected nodes (`None` from a single agent, which does not report it).
    pub connected_nodes: Option<u32>,
    /// Unavailable nodes (`None` when not reported).
    pub unavailable_count: Option<u32>,
    /// Names of unavailable nodes (may be incomplete).
    pub unavailable_nodes: Vec<String>,
    /// Cilium/Hubble version.
    pub version: String,
}

/// One node as Relay sees it (`GetNodes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Name, e.g. `kind-kind/kind-worker`.
    pub name: String,
    /// State.
    pub state: NodeState,
    /// Version of its Cilium/Hubble.
    pub version: String,
    /// Address of its Hubble server.
    pub address: String,
    /// Flows in its ring buffer.
    pub num_flows: u64,
    /// Flows seen since start.
    pub seen_flows: u64,
}

/// How long [`HubbleClient::follow`] waits for `GetFlows` to be answered before it lets the stream answer
/// later (a quiet agent answers with its first flow).
pub const FOLLOW_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// What to ask `GetFlows` for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowsRequest {
    /// Flows from this time on (incompatible with `number`).
    pub since: Option<SystemTime>,
    /// Flows up to this time (incompatible with `number` and `follow`).
    pub until: Option<SystemTime>,
    /// Keep streaming new flows.
    pub follow: bool,
    /// Only the last (or first) N flows.
    pub number: Option<u64>,
    /// Flows matching any of these (empty: all flows).
    pub whitelist: Vec<FlowFilter>,
    /// Minus flows matching any of these.
    pub blacklist: Vec<FlowFilter>,
}

impl FlowsRequest {
    /// Follow new flows, starting with those since `since` (a run's start).
    pub fn follow_since(since: SystemTime) -> FlowsRequest {
        FlowsRequest {
            since: Some(since),
            follow: true,
            ..FlowsRequest::default()
        }
    }

    fn to_proto(&self) -> GetFlowsRequest {
        let ts = |t: SystemTime| {
            let (seconds, nanos) = unix_parts(t);
            prost_types::Timestamp { seconds, nanos }
        };
        GetFlowsRequest {
            number: self.number.unwrap_or(0),
            first: false,
            follow: self.follow,
            blacklist: self.blacklist.clone(),
            whitelist: self.whitelist.clone(),
            since: self.since.map(ts),
            until: self.until.map(ts),
        }
    }
}

/// Flow filters that keep a shared stream to the traffic of some namespaces
/// (as source or destination) and some addresses (hosts outside the
/// cluster). Pass as [`FlowsRequest::whitelist`].
pub fn scope_filters(namespaces: &[&str], addresses: &[std::net::IpAddr]) -> Vec<FlowFilter> {
    let mut filters = Vec::new();
    if !namespaces.is_empty() {
        let pods: Vec<String> = namespaces.iter().map(|ns| format!("{ns}/")).collect();
        filters.push(FlowFilter {
            source_pod: pods.clone(),
            ..FlowFilter::default()
        });
        filters.push(FlowFilter {
            destination_pod: pods,
            ..FlowFilter::default()
        });
    }
    if !addresses.is_empty() {
        let ips: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        filters.push(FlowFilter {
            source_ip: ips.clone(),
            ..FlowFilter::default()
        });
        filters.push(FlowFilter {
            destination_ip: ips,
            ..FlowFilter::default()
        });
    }
    filters
}

/// A client for Hubble Relay (or a single agent's Hubble server).
#[derive(Debug, Clone)]
pub struct HubbleClient {
    inner: ObserverClient<Channel>,
    endpoint: String,
}

impl HubbleClient {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:4245` (`http://` is
    /// added when no scheme is given).
    ///
    /// # Caveats
    /// No timeout is added: wrap in `tokio::time::timeout` if needed.
    ///
    /// # Errors
    /// [`ClientError::InvalidEndpoint`], [`ClientError::Connect`].
    pub async fn connect(endpoint: &str) -> Result<HubbleClient, ClientError> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|source| ClientError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                source,
            })?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: uri.clone(),
                source,
            })?;
        Ok(HubbleClient::from_channel(channel, uri))
    }

    /// Like [`HubbleClient::connect`], but connects on first use (and
    /// reconnects after a failure), so an unreachable Relay shows up as an
    /// RPC error, e.g. in [`HubbleClient::check_health`].
    ///
    /// # Errors
    /// [`ClientError::InvalidEndpoint`].
    pub fn lazy(endpoint: &str) -> Result<HubbleClient, ClientError> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|source| ClientError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                source,
            })?
            .connect_lazy();
        Ok(HubbleClient::from_channel(channel, uri))
    }

    /// Uses an existing channel (e.g. over a port-forward); `label` names it
    /// in errors.
    pub fn from_channel(channel: Channel, label: impl Into<String>) -> HubbleClient {
        HubbleClient {
            inner: ObserverClient::new(channel).max_decoding_message_size(16 * 1024 * 1024),
            endpoint: label.into(),
        }
    }

    /// The address in use.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn rpc_error(&self, rpc: &'static str, status: tonic::Status) -> ClientError {
        ClientError::Rpc {
            endpoint: self.endpoint.clone(),
            rpc,
            status: Box::new(status),
        }
    }

    /// `ServerStatus`.
    ///
    /// # Errors
    /// [`ClientError::Rpc`].
    pub async fn server_status(&self) -> Result<ServerStatus, ClientError> {
        let response = self
            .inner
            .clone()
            .server_status(ServerStatusRequest {})
            .await
            .map_err(|status| self.rpc_error("ServerStatus", status))?
            .into_inner();
        Ok(ServerStatus {
            num_flows: response.num_flows,
            max_flows: response.max_flows,
            seen_flows: response.seen_flows,
            uptime: Duration::from_nanos(response.uptime_ns),
            connected_nodes: response.num_connected_nodes,
            unavailable_count: response.num_unavailable_nodes,
            unavailable_nodes: response.unavailable_nodes,
            version: response.version,
        })
    }

    /// `GetNodes`; `Ok(None)` when the server does not implement it (a
    /// single agent rather than Relay).
    ///
    /// # Errors
    /// [`ClientError::Rpc`].
    pub async fn nodes(&self) -> Result<Option<Vec<NodeInfo>>, ClientError> {
        match self.inner.clone().get_nodes(GetNodesRequest {}).await {
            Ok(response) => Ok(Some(
                response
                    .into_inner()
                    .nodes
                    .into_iter()
                    .map(|n| NodeInfo {
                        name: n.name,
                        state: NodeState::from_code(n.state),
                        version: n.version,
                        address: n.address,
                        num_flows: n.num_flows,
                        seen_flows: n.seen_flows,
                    })
                    .collect(),
            )),
            Err(status) if status.code() == tonic::Code::Unimplemented => Ok(None),
            Err(status) => Err(self.rpc_error("GetNodes", status)),
        }
    }

    /// `GetFlows` as a stream of [`Event`]s (responses this crate does not
    /// model are skipped).
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call is refused; errors later in the
    /// stream arrive as stream items.
    pub async fn flows(&self, request: &FlowsRequest) -> Result<EventStream, ClientError> {
        let streaming = self
            .inner
            .clone()
            .get_flows(request.to_proto())
            .await
            .map_err(|status| self.rpc_error("GetFlows", status))?
            .into_inner();
        let events = streaming.filter_map(|item| match item {
            Ok(response) => Event::from_proto(response).map(Ok),
            Err(status) => Some(Err(StreamError::from(status))),
        });
        Ok(Box::pin(events))
    }

    /// Opens the follow stream for a run and starts a [`FlowWatch`] on it.
    /// `request` should have `follow: true` and `since` = the run's start
    /// ([`FlowsRequest::follow_since`]).
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call is refused.
    ///
    /// A single Cilium agent's Observer (the lab's) sends the response headers only with its first flow, so
    /// waiting for the call to be answered would wait for traffic. The call is made in the background:
    /// a refusal within [`FOLLOW_ANSWER_WAIT`] is returned here, a later one ends the stream with it.
    pub async fn follow(
        &self,
        request: &FlowsRequest,
        options: WatchOptions,
    ) -> Result<FlowWatch, ClientError> {
        self.follow_waiting(request, options, FOLLOW_ANSWER_WAIT)
            .await
    }

    /// [`Self::follow`], waiting at most `answer_wait` for the call to be answered. After a health check
    /// has just shown the server answering, a short wait is enough: on a quiet single agent the full wait
    /// would be spent waiting for traffic. A refusal after the wait still ends the stream with it (every
    /// probe waiting on it then resolves inconclusive, never a verdict).
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call is refused within `answer_wait`.
    pub async fn follow_waiting(
        &self,
        request: &FlowsRequest,
        options: WatchOptions,
        answer_wait: Duration,
    ) -> Result<FlowWatch, ClientError> {
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<Result<(), ClientError>>();
        let client = self.clone();
        let request = request.clone();
        tokio::spawn(async move {
            match client.flows(&request).await {
                Ok(mut stream) => {
                    let _ = answer_tx.send(Ok(()));
                    while let Some(item) = stream.next().await {
                        if events_tx.send(item).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if answer_tx.send(Err(e)).is_err() {
                        let _ = events_tx.send(Err(StreamError { message })).await;
                    }
                }
            }
        });
        if let Ok(Ok(Err(e))) = tokio::time::timeout(answer_wait, answer_rx).await {
            return Err(e);
        }
        let stream: EventStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(events_rx));
        Ok(FlowWatch::new(stream, options))
    }
}
