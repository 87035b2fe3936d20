//! `agent probe kafka --mode exact`: the agent's own Kafka client.
//!
//! Every request is encoded (with the `kafka-protocol` crate) at the version the caller chose and sent on
//! one connection to the target, with the given client id in every request header. Sequence:
//! - `[ApiVersions]`, `[Metadata(topic)]` (each only when its version is set; Metadata is repeated while
//!   the broker answers LEADER_NOT_AVAILABLE, as it does while it auto-creates a topic);
//! - produce: `Produce` of one record (record batch v2, no compression, acks=1);
//! - consume: `ListOffsets(earliest)` then `Fetch` from that offset.
//!
//! The probe stops at the first request that fails; every request sent is reported with its API key,
//! version and the error code received.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use probe_wire::{
    ExactVersions, KafkaAction, KafkaActionKind, KafkaDetails, KafkaExchange, KafkaMode,
    KafkaRequest, Outcome,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Duration, Instant, timeout_at};

use super::{Report, Verdict};
use crate::classify::{self, Phase};
use crate::clock::Clock;
use crate::net::{self, Failure, Target};
use crate::timed::Timed;

/// Largest response frame accepted.
const MAX_FRAME: i32 = 64 * 1024 * 1024;
/// LEADER_NOT_AVAILABLE: retried on Metadata.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// Pause between Metadata retries.
const METADATA_RETRY: Duration = Duration::from_millis(100);

/// Checks that every version is one the encoder supports for its request (bad arguments otherwise).
///
/// # Errors
/// A sentence naming the request and the supported range.
pub fn validate_versions(v: &ExactVersions) -> Result<(), String> {
    fn check<R: Message>(name: &str, version: i16) -> Result<(), String> {
        let r = R::VERSIONS;
        if version < r.min || version > r.max {
            return Err(format!(
                "{name} version {version} cannot be encoded (supported: {}..{})",
                r.min, r.max
            ));
        }
        Ok(())
    }
    if let Some(n) = v.api_versions {
        check::<ApiVersionsRequest>("ApiVersions", n)?;
    }
    if let Some(n) = v.metadata {
        check::<MetadataRequest>("Metadata", n)?;
    }
    check::<ProduceRequest>("Produce", v.produce)?;
    check::<ListOffsetsRequest>("ListOffsets", v.list_offsets)?;
    check::<FetchRequest>("Fetch", v.fetch)
}

pub(super) async fn probe(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    k: &KafkaRequest,
    versions: &ExactVersions,
) -> Verdict {
    let mut details = KafkaDetails {
        mode: KafkaMode::Exact,
        action: match k.action {
            KafkaAction::Produce { .. } => KafkaActionKind::Produce,
            KafkaAction::Consume => KafkaActionKind::Consume,
        },
        topic: k.topic.clone(),
        client_id: k.client_id.clone(),
        requests: Vec::new(),
        error_code: None,
        error_name: None,
        offset: None,
        records: None,
    };
    let c = match net::connect(target, clock).await {
        Ok(c) => c,
        Err(e) => {
            report.kafka = Some(details);
            return Err(report.connect_failed(e));
        }
    };
    report.connected(&c);
    let (stream, seen) = Timed::new(c.stream);
    report.first_byte = Some(seen);
    let mut conn = Conn {
        stream,
        next_correlation: 1,
        client_id: StrBytes::from_string(k.client_id.clone()),
        clock: *clock,
        exchanges: Vec::new(),
    };
    let result = session(&mut conn, k, versions).await;
    details.requests = std::mem::take(&mut conn.exchanges);
    let verdict = match result {
        Ok(done) => {
            details.offset = done.offset;
            details.records = done.records;
            Ok(done.detail)
        }
        Err(Stop::Error { code, api }) => {
            let name = classify::kafka_error_name(code);
            details.error_code = Some(i32::from(code));
            details.error_name = Some(name.clone());
            Err(Failure::new(
                classify::kafka_error_code(code),
                format!("{api} answered error {code} {name}"),
            ))
        }
        Err(Stop::Failed(f)) => Err(f),
    };
    report.kafka = Some(details);
    verdict
}

/// What a successful session found.
struct Done {
    detail: String,
    offset: Option<i64>,
    records: Option<u32>,
}

/// Why a session stopped early.
enum Stop {
    /// The broker answered with an error code.
    Error { code: i16, api: &'static str },
    /// No (usable) answer.
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

async fn session<S>(conn: &mut Conn<S>, k: &KafkaRequest, v: &ExactVersions) -> Result<Done, Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let topic = TopicName(StrBytes::from_string(k.topic.clone()));
    if let Some(version) = v.api_versions {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cnp-harness-agent"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = conn.call(&req, version, |r| r.error_code).await?;
        stop_on(resp.error_code, "ApiVersions")?;
    }
    if let Some(version) = v.metadata {
        loop {
            let req = MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic.clone())),
                ]))
                .with_allow_auto_topic_creation(true);
            let wanted = topic.clone();
            let partition = k.partition;
            let resp = conn
                .call(&req, version, |r| metadata_error(r, &wanted, partition))
                .await?;
            let code = metadata_error(&resp, &topic, k.partition);
            if code == LEADER_NOT_AVAILABLE && conn.clock.remaining() > METADATA_RETRY * 2 {
                tokio::time::sleep(METADATA_RETRY).await;
                continue;
            }
            stop_on(code, "Metadata")?;
            break;
        }
    }
    match &k.action {
        KafkaAction::Produce { message } => {
            produce(conn, &topic, k.partition, message, v.produce).await
        }
        KafkaAction::Consume => consume(conn, &topic, k.partition, v).await,
    }
}

fn stop_on(code: i16, api: &'static str) -> Result<(), Stop> {
    if code == 0 {
        Ok(())
    } else {
        Err(Stop::Error { code, api })
    }
}

/// The error of the topic in a Metadata response: its own code, or that of the partition, or
/// UNKNOWN_TOPIC_OR_PARTITION (3) when the topic or partition is missing.
fn metadata_error(
    r: &kafka_protocol::messages::MetadataResponse,
    topic: &TopicName,
    partition: i32,
) -> i16 {
    let Some(t) = r.topics.iter().find(|t| t.name.as_ref() == Some(topic)) else {
        return 3;
    };
    if t.error_code != 0 {
        return t.error_code;
    }
    match t.partitions.iter().find(|p| p.partition_index == partition) {
        Some(p) => p.error_code,
        None => 3,
    }
}

async fn produce<S>(
    conn: &mut Conn<S>,
    topic: &TopicName,
    partition: i32,
    message: &str,
    version: i16,
) -> Result<Done, Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: None,
        value: Some(Bytes::from(message.to_owned())),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| {
        Failure::new(
            Outcome::ProtocolError,
            format!("cannot encode the record: {e}"),
        )
    })?;
    let timeout_ms = i32::try_from(conn.clock.remaining().as_millis()).unwrap_or(i32::MAX);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch.freeze())),
                ]),
        ]);
    let resp = conn.call(&req, version, produce_error).await?;
    stop_on(produce_error(&resp), "Produce")?;
    let offset = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .map(|p| p.base_offset);
    conn.note_offset(offset);
    Ok(Done {
        detail: format!(
            "produced 1 message to {}/{partition} at offset {}",
            topic.0.as_str(),
            offset.map_or_else(|| "?".to_owned(), |o| o.to_string())
        ),
        offset,
        records: None,
    })
}

fn produce_error(r: &kafka_protocol::messages::ProduceResponse) -> i16 {
    r.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| p.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0)
}

async fn consume<S>(
    conn: &mut Conn<S>,
    topic: &TopicName,
    partition: i32,
    v: &ExactVersions,
) -> Result<Done, Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic.clone())
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-2), // earliest
                ]),
        ]);
    let resp = conn.call(&list, v.list_offsets, list_offsets_error).await?;
    stop_on(list_offsets_error(&resp), "ListOffsets")?;
    let start = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map_or(0, |p| p.offset.max(0));
    conn.note_offset(Some(start));
    let max_wait = conn
        .clock
        .remaining()
        .saturating_sub(Duration::from_millis(200));
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(i32::try_from(max_wait.as_millis().min(500)).unwrap_or(500))
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(start)
                        .with_partition_max_bytes(1024 * 1024),
                ]),
        ]);
    let resp = conn.call(&fetch, v.fetch, fetch_error).await?;
    stop_on(fetch_error(&resp), "Fetch")?;
    let mut count: u32 = 0;
    let mut first: Option<i64> = None;
    for p in resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.partition_index == partition)
    {
        if let Some(records) = &p.records {
            let mut buf = records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
                Failure::new(
                    Outcome::ProtocolError,
                    format!("cannot decode fetched records: {e}"),
                )
            })?;
            for r in sets.iter().flat_map(|s| s.records.iter()) {
                if r.control {
                    continue;
                }
                count += 1;
                first = Some(first.map_or(r.offset, |f: i64| f.min(r.offset)));
            }
        }
    }
    conn.note_offset(first);
    Ok(Done {
        detail: format!(
            "fetched {count} record(s) from {}/{partition} starting at offset {start}",
            topic.0.as_str()
        ),
        offset: first,
        records: Some(count),
    })
}

fn list_offsets_error(r: &kafka_protocol::messages::ListOffsetsResponse) -> i16 {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0)
}

fn fetch_error(r: &kafka_protocol::messages::FetchResponse) -> i16 {
    if r.error_code != 0 {
        return r.error_code;
    }
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0)
}

/// One connection to the broker.
struct Conn<S> {
    stream: Timed<S>,
    next_correlation: i32,
    client_id: StrBytes,
    clock: Clock,
    exchanges: Vec<KafkaExchange>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Notes the offset carried by the last response.
    fn note_offset(&mut self, offset: Option<i64>) {
        if let Some(last) = self.exchanges.last_mut() {
            last.offset = offset;
        }
    }

    /// Sends one request at `version` and reads its response, bounded by the overall deadline. Records the
    /// exchange, with the error code `error_of` finds in the response.
    async fn call<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        error_of: impl Fn(&R::Response) -> i16,
    ) -> Result<R::Response, Failure> {
        let api = R::KEY;
        let api_name = classify::kafka_api_name(api);
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let sent = Instant::now();
        let mut record = KafkaExchange {
            api_key: api,
            api_name: api_name.clone(),
            api_version: version,
            correlation_id,
            responded: false,
            error_code: None,
            error_name: None,
            offset: None,
            elapsed_ms: 0.0,
        };
        let frame = encode(req, version, correlation_id, &self.client_id).map_err(|e| {
            Failure::new(
                Outcome::ProtocolError,
                format!("cannot encode {api_name} v{version}: {e}"),
            )
        })?;
        let result = timeout_at(self.clock.deadline(), exchange(&mut self.stream, &frame)).await;
        record.elapsed_ms = sent.elapsed().as_secs_f64() * 1000.0;
        let outcome = match result {
            Err(_) => Err(Failure::new(
                Outcome::KafkaNoResponse,
                format!("no response to {api_name} v{version} before the deadline"),
            )),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Failure::new(
                Outcome::ProtocolError,
                format!(
                    "the broker closed the connection without answering {api_name} v{version} \
                     (Cilium's Kafka proxy does this to requests it cannot parse)"
                ),
            )),
            Ok(Err(e)) => Err(Failure::io(
                &e,
                Phase::Exchange,
                &format!("{api_name} v{version} failed"),
            )),
            Ok(Ok(body)) => decode::<R>(body, version, correlation_id).map_err(|e| {
                Failure::new(
                    Outcome::ProtocolError,
                    format!("cannot decode the {api_name} v{version} response: {e}"),
                )
            }),
        };
        if let Ok(resp) = &outcome {
            let code = error_of(resp);
            record.responded = true;
            record.error_code = Some(code);
            record.error_name = Some(classify::kafka_error_name(code));
        }
        self.exchanges.push(record);
        outcome
    }
}

/// Encodes a request frame: length, header (with the client id), body.
fn encode<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut body = BytesMut::new();
    header.encode(&mut body, R::header_version(version))?;
    req.encode(&mut body, version)?;
    let len = i32::try_from(body.len())?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame.freeze())
}

/// Writes a frame and reads one response frame.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &[u8],
) -> std::io::Result<Bytes> {
    stream.write_all(frame).await?;
    stream.flush().await?;
    let len = stream.read_i32().await?;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("response frame length {len} out of range"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

fn decode<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<R::Response> {
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
    if header.correlation_id != correlation_id {
        anyhow::bail!(
            "correlation id {} does not match the request's {correlation_id}",
            header.correlation_id
        );
    }
    R::Response::decode(&mut body, version)
}
