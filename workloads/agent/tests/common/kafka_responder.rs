//! A scripted Kafka broker of the tests' own: it records every request header (API key, version, client
//! id) and answers ApiVersions, Metadata and Produce with the error codes of its script, as Cilium's Kafka
//! proxy does when it denies a request (error 29 encoded in the request's version). It can also stay
//! silent, as Cilium does for the API keys it cannot answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ResponseHeader,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer,
};

use super::responder;

/// What the responder answers.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    /// Error code for every topic in Metadata responses.
    pub metadata_error: i16,
    /// Error code for every partition in Produce responses.
    pub produce_error: i16,
    /// Whether to answer at all (false: record the request, never answer).
    pub answer: bool,
}

impl Script {
    /// Answers everything without error.
    pub const OK: Script = Script {
        metadata_error: 0,
        produce_error: 0,
        answer: true,
    };
}

/// One request header as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub api_key: i16,
    pub api_version: i16,
    pub client_id: Option<String>,
}

/// A running responder.
pub struct Responder {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Responder {
    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The offset the responder reports for a successful produce.
pub const PRODUCED_OFFSET: i64 = 42;

/// Starts a responder on 127.0.0.1.
pub fn start(script: Script) -> Responder {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let port = Arc::new(Mutex::new(0u16));
    let port_in = port.clone();
    let addr = responder(move |s| {
        let port = *port_in.lock().expect("lock");
        let _ = serve(s, script, port, &record);
    });
    *port.lock().expect("lock") = addr.port();
    Responder { addr, seen }
}

fn serve(
    mut s: TcpStream,
    script: Script,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut frame = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        s.read_exact(&mut frame)?;
        let mut buf = Bytes::from(frame);
        let Ok(header) = decode_request_header_from_buffer(&mut buf) else {
            return Ok(());
        };
        seen.lock().expect("lock").push(Seen {
            api_key: header.request_api_key,
            api_version: header.request_api_version,
            client_id: header.client_id.as_ref().map(|c| c.as_str().to_owned()),
        });
        if !script.answer {
            continue;
        }
        let v = header.request_api_version;
        let mut out = BytesMut::new();
        let key = ApiKey::try_from(header.request_api_key).ok();
        let head = ResponseHeader::default().with_correlation_id(header.correlation_id);
        match key {
            Some(ApiKey::ApiVersions) => {
                let body = ApiVersionsResponse::default().with_api_keys(vec![
                    range(ApiKey::Produce, 3, 5),
                    range(ApiKey::Fetch, 4, 5),
                    range(ApiKey::ListOffsets, 1, 2),
                    range(ApiKey::Metadata, 1, 4),
                    range(ApiKey::ApiVersions, 0, 3),
                ]);
                head.encode(&mut out, ApiVersionsResponse::header_version(v))
                    .expect("head");
                body.encode(&mut out, v).expect("body");
            }
            Some(ApiKey::Metadata) => {
                let req = MetadataRequest::decode(&mut buf, v).expect("metadata request");
                let topics = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.name)
                    .map(|name| {
                        let partitions = if script.metadata_error == 0 {
                            vec![
                                MetadataResponsePartition::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(0))
                                    .with_replica_nodes(vec![BrokerId(0)])
                                    .with_isr_nodes(vec![BrokerId(0)]),
                            ]
                        } else {
                            Vec::new()
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(script.metadata_error)
                            .with_name(Some(name))
                            .with_partitions(partitions)
                    })
                    .collect();
                let body = MetadataResponse::default()
                    .with_brokers(vec![
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(0))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(port)),
                    ])
                    .with_cluster_id(Some(StrBytes::from_static_str("responder")))
                    .with_controller_id(BrokerId(0))
                    .with_topics(topics);
                head.encode(&mut out, MetadataResponse::header_version(v))
                    .expect("head");
                body.encode(&mut out, v).expect("body");
            }
            Some(ApiKey::Produce) => {
                let req = ProduceRequest::decode(&mut buf, v).expect("produce request");
                let responses = req
                    .topic_data
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(script.produce_error)
                                    .with_base_offset(if script.produce_error == 0 {
                                        PRODUCED_OFFSET
                                    } else {
                                        -1
                                    })
                            })
                            .collect();
                        TopicProduceResponse::default()
                            .with_name(t.name)
                            .with_partition_responses(partitions)
                    })
                    .collect();
                let body = ProduceResponse::default().with_responses(responses);
                head.encode(&mut out, ProduceResponse::header_version(v))
                    .expect("head");
                body.encode(&mut out, v).expect("body");
            }
            // Like Cilium for the keys it cannot answer: no response.
            _ => continue,
        }
        let _ = buf.remaining();
        s.write_all(&(out.len() as i32).to_be_bytes())?;
        s.write_all(&out)?;
        s.flush()?;
    }
}

fn range(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}
