//! A scripted Hubble Relay for tests: a real tonic `observer.Observer`
//! server on 127.0.0.1 (port chosen by the OS) whose `GetFlows` streams are
//! driven by the test, message by message.
//!
//! With [`FakeRelay::start_behind_link`] clients reach it through a TCP
//! relay that [`FakeRelay::sever_links`] can cut, as a dying
//! `kubectl port-forward` would.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

use crate::proto::flow::Flow;
use crate::proto::observer::observer_server::{Observer, ObserverServer};
use crate::proto::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNodesRequest, GetNodesResponse, Node,
    ServerStatusRequest, ServerStatusResponse, get_flows_response::ResponseTypes,
};

/// How many responses a scripted stream buffers before `send` waits.
const STREAM_BUFFER: usize = 4096;

struct FakeState {
    status: Mutex<ServerStatusResponse>,
    nodes: Mutex<Option<Vec<Node>>>,
    requests: Mutex<Vec<GetFlowsRequest>>,
    streams_tx: mpsc::UnboundedSender<ScriptedStream>,
}

struct FakeService {
    state: Arc<FakeState>,
}

#[tonic::async_trait]
impl Observer for FakeService {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.into_inner());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.state
            .streams_tx
            .send(ScriptedStream { tx })
            .map_err(|_| Status::unavailable("fake relay is shutting down"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let nodes = self
            .state
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match nodes {
            Some(nodes) => Ok(Response::new(GetNodesResponse { nodes })),
            None => Err(Status::unimplemented("GetNodes is not scripted")),
        }
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let status = self
            .state
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(Response::new(status))
    }
}

/// The server side of one `GetFlows` call.
#[derive(Debug)]
pub struct ScriptedStream {
    tx: mpsc::Sender<Result<GetFlowsResponse, Status>>,
}

impl ScriptedStream {
    /// Sends one response; `false` when the client has gone.
    pub async fn send(&self, response: GetFlowsResponse) -> bool {
        self.tx.send(Ok(response)).await.is_ok()
    }

    /// Sends one flow in a response stamped with the flow's node and time.
    pub async fn send_flow(&self, flow: Flow) -> bool {
        let response = GetFlowsResponse {
            node_name: flow.node_name.clone(),
            time: flow.time,
            response_types: Some(ResponseTypes::Flow(flow)),
        };
        self.send(response).await
    }

    /// Ends the stream with a gRPC error.
    pub async fn fail(self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }

    /// Ends the stream normally.
    pub fn close(self) {}
}

/// A scripted Relay. Dropping it stops the server and its links.
pub struct FakeRelay {
    address: SocketAddr,
    state: Arc<FakeState>,
    streams_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<ScriptedStream>>,
    server: JoinHandle<()>,
    link_acceptor: Option<JoinHandle<()>>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl std::fmt::Debug for FakeRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRelay")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl FakeRelay {
    /// Starts a Relay on 127.0.0.1 that reports one flow and no nodes problem.
    ///
    /// # Errors
    /// When the loopback port cannot be bound.
    pub async fn start() -> io::Result<FakeRelay> {
        Self::start_inner(false).await
    }

    /// Like [`FakeRelay::start`], with clients connecting through a TCP link
    /// that [`FakeRelay::sever_links`] can cut.
    ///
    /// # Errors
    /// When the loopback ports cannot be bound.
    pub async fn start_behind_link() -> io::Result<FakeRelay> {
        Self::start_inner(true).await
    }

    async fn start_inner(behind_link: bool) -> io::Result<FakeRelay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let server_address = listener.local_addr()?;
        let (streams_tx, streams_rx) = mpsc::unbounded_channel();
        let state = Arc::new(FakeState {
            status: Mutex::new(ServerStatusResponse {
                num_flows: 1,
                max_flows: 4095,
                seen_flows: 1,
                uptime_ns: 1_000_000_000,
                num_connected_nodes: Some(1),
                num_unavailable_nodes: Some(0),
                unavailable_nodes: Vec::new(),
                version: "fake".to_string(),
            }),
            nodes: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            streams_tx,
        });
        let service = FakeService {
            state: Arc::clone(&state),
        };
        let server = tokio::spawn(async move {
            // The server runs until the FakeRelay is dropped (task aborted).
            let _ = tonic::transport::Server::builder()
                .add_service(ObserverServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let links = Arc::new(Mutex::new(Vec::new()));
        let (address, link_acceptor) = if behind_link {
            let front = TcpListener::bind(("127.0.0.1", 0)).await?;
            let address = front.local_addr()?;
            let links = Arc::clone(&links);
            let acceptor = tokio::spawn(async move {
                while let Ok((mut client, _)) = front.accept().await {
                    let task = tokio::spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect(server_address).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                    links
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(task.abort_handle());
                }
            });
            (address, Some(acceptor))
        } else {
            (server_address, None)
        };
        Ok(FakeRelay {
            address,
            state,
            streams_rx: tokio::sync::Mutex::new(streams_rx),
            server,
            link_acceptor,
            links,
        })
    }

    /// The address clients connect to, e.g. `http://127.0.0.1:39017`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sets the `ServerStatus` answer.
    pub fn set_status(&self, status: ServerStatusResponse) {
        *self
            .state
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// Sets the `GetNodes` answer (`None`: answer Unimplemented).
    pub fn set_nodes(&self, nodes: Option<Vec<Node>>) {
        *self
            .state
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = nodes;
    }

    /// Waits for the next `GetFlows` call and returns its script handle.
    pub async fn next_stream(&self) -> Option<ScriptedStream> {
        self.streams_rx.lock().await.recv().await
    }

    /// The `GetFlows` requests received so far.
    pub fn flow_requests(&self) -> Vec<GetFlowsRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Cuts every client connection made through the link (no-op without one).
    pub fn sever_links(&self) {
        for link in self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            link.abort();
        }
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.sever_links();
        if let Some(acceptor) = &self.link_acceptor {
            acceptor.abort();
        }
        self.server.abort();
    }
}
