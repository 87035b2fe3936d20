//! `agent probe kafka --mode rdkafka`: librdkafka (through the `rdkafka` crate), as real applications use it.
//!
//! librdkafka negotiates request versions with ApiVersions and follows the broker addresses announced in
//! Metadata; the agent only bounds it (every librdkafka timeout is derived from the probe's deadlines) and
//! listens to its error callback to classify transport failures. Extra configuration given with
//! `--rdkafka-config` is applied last.
//!
//! # Caveats
//! The client is leaked rather than dropped: dropping a librdkafka handle flushes and joins its threads,
//! which may block past the deadline. A probe is a one-shot process, so nothing accumulates.

use std::sync::{Arc, Mutex};

use probe_wire::{
    KafkaAction, KafkaActionKind, KafkaDetails, KafkaMode, KafkaRequest, RdkafkaOptions,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::time::timeout_at;

use super::{Report, Verdict};
use crate::classify;
use crate::clock::Clock;
use crate::net::{Failure, Target};

/// Records librdkafka's error callbacks (transport failures and the like).
#[derive(Clone, Default)]
struct Observer {
    errors: Arc<Mutex<Vec<String>>>,
    /// Copy librdkafka's log to stderr (when the caller set `debug=...`).
    echo_logs: bool,
}

impl Observer {
    fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl ClientContext for Observer {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if self.echo_logs {
            eprintln!("librdkafka {fac}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for Observer {}

pub(super) async fn probe(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    k: &KafkaRequest,
    options: &RdkafkaOptions,
) -> Verdict {
    let mut details = KafkaDetails {
        mode: KafkaMode::Rdkafka,
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
    let observer = Observer {
        echo_logs: options.config.iter().any(|(k, _)| k == "debug"),
        ..Observer::default()
    };
    let config = base_config(
        target,
        clock,
        k,
        options,
        matches!(k.action, KafkaAction::Consume),
    );
    let result = match &k.action {
        KafkaAction::Produce { message } => produce(&config, &observer, clock, k, message).await,
        KafkaAction::Consume => consume(&config, &observer, clock, k).await,
    };
    let verdict = match result {
        Ok(done) => {
            details.offset = done.offset;
            details.records = done.records;
            Ok(done.detail)
        }
        Err(Ended { code, what }) => {
            let transport = observer.errors();
            let outcome = classify::rdkafka_failure(code, &transport);
            if let Some(c) = code {
                details.error_code = Some(c);
                details.error_name = Some(rdkafka_error_name(c));
            }
            let mut detail = what;
            if let Some(last) = transport.last() {
                detail.push_str(&format!("; last transport error: {last}"));
            }
            Err(Failure::new(outcome, detail))
        }
    };
    report.kafka = Some(details);
    verdict
}

/// The name of an error code: the Kafka protocol name for codes ≥ 0, librdkafka's for its own.
fn rdkafka_error_name(code: i32) -> String {
    if code >= 0 {
        return i16::try_from(code).map_or_else(
            |_| format!("UNKNOWN_CODE_{code}"),
            classify::kafka_error_name,
        );
    }
    match code {
        classify::rdkafka_codes::MSG_TIMED_OUT => "_MSG_TIMED_OUT".to_owned(),
        classify::rdkafka_codes::TIMED_OUT => "_TIMED_OUT".to_owned(),
        classify::rdkafka_codes::TRANSPORT => "_TRANSPORT".to_owned(),
        classify::rdkafka_codes::ALL_BROKERS_DOWN => "_ALL_BROKERS_DOWN".to_owned(),
        other => format!("_LOCAL_{}", -other),
    }
}

/// Checks extra librdkafka settings (known keys, valid values) without creating a client.
///
/// # Errors
/// librdkafka's message for the first bad setting.
pub fn validate_config(config: &[(String, String)]) -> Result<(), String> {
    let mut c = ClientConfig::new();
    for (key, value) in config {
        c.set(key, value);
    }
    c.create_native_config()
        .map(|_| ())
        .map_err(|e| format!("--rdkafka-config: {e}"))
}

fn base_config(
    target: &Target,
    clock: &Clock,
    k: &KafkaRequest,
    options: &RdkafkaOptions,
    consumer: bool,
) -> ClientConfig {
    let remaining = clock.remaining().as_millis().max(10);
    let connect = (clock.connect_deadline() - tokio::time::Instant::now())
        .as_millis()
        .clamp(1000, 2_147_483_647);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", target.to_string())
        .set("client.id", &k.client_id)
        .set("socket.connection.setup.timeout.ms", connect.to_string())
        .set("socket.timeout.ms", remaining.to_string())
        .set("api.version.request.timeout.ms", remaining.to_string())
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "-1");
    if consumer {
        c.set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            // librdkafka refuses to assign partitions without a group id. No group membership is
            // requested (partitions are assigned, not subscribed, and nothing is committed), but
            // librdkafka may still look up the group coordinator (FindCoordinator, in Cilium's consume
            // role).
            .set("group.id", &k.client_id);
    } else {
        c.set("message.timeout.ms", remaining.to_string())
            .set("request.timeout.ms", remaining.to_string())
            .set("linger.ms", "0")
            .set("acks", "1");
    }
    for (key, value) in &options.config {
        c.set(key, value);
    }
    c
}

struct Done {
    detail: String,
    offset: Option<i64>,
    records: Option<u32>,
}

/// How an rdkafka operation ended without success: its error code (none when the agent's own deadline
/// ran out first) and what happened.
struct Ended {
    code: Option<i32>,
    what: String,
}

fn code_of(e: &KafkaError) -> Option<i32> {
    e.rdkafka_error_code().map(|c| c as i32)
}

async fn produce(
    config: &ClientConfig,
    observer: &Observer,
    clock: &Clock,
    k: &KafkaRequest,
    message: &str,
) -> Result<Done, Ended> {
    let producer: FutureProducer<Observer> =
        config
            .create_with_context(observer.clone())
            .map_err(|e| Ended {
                code: code_of(&e),
                what: format!("cannot create the producer: {e}"),
            })?;
    let producer: &'static FutureProducer<Observer> = Box::leak(Box::new(producer));
    let record = FutureRecord::<(), str>::to(&k.topic)
        .partition(k.partition)
        .payload(message);
    let send = producer.send(record, clock.remaining());
    match timeout_at(clock.deadline(), send).await {
        Err(_) => Err(Ended {
            code: None,
            what: "the message was not acknowledged before the deadline".to_owned(),
        }),
        Ok(Err((e, _))) => Err(Ended {
            code: code_of(&e),
            what: format!("produce failed: {e}"),
        }),
        Ok(Ok(delivery)) => Ok(Done {
            detail: format!(
                "produced 1 message to {}/{} at offset {}",
                k.topic, delivery.partition, delivery.offset
            ),
            offset: Some(delivery.offset),
            records: None,
        }),
    }
}

async fn consume(
    config: &ClientConfig,
    observer: &Observer,
    clock: &Clock,
    k: &KafkaRequest,
) -> Result<Done, Ended> {
    let consumer: StreamConsumer<Observer> =
        config
            .create_with_context(observer.clone())
            .map_err(|e| Ended {
                code: code_of(&e),
                what: format!("cannot create the consumer: {e}"),
            })?;
    let consumer: &'static StreamConsumer<Observer> = Box::leak(Box::new(consumer));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&k.topic, k.partition, Offset::Beginning)
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|e| Ended {
            code: code_of(&e),
            what: format!("cannot assign {}/{}: {e}", k.topic, k.partition),
        })?;
    loop {
        match timeout_at(clock.deadline(), consumer.recv()).await {
            Err(_) => {
                return Err(Ended {
                    code: None,
                    what:
                        "neither a record nor the end of the partition arrived before the deadline"
                            .to_owned(),
                });
            }
            Ok(Ok(m)) => {
                return Ok(Done {
                    detail: format!(
                        "consumed a record from {}/{} at offset {}",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    ),
                    offset: Some(m.offset()),
                    records: Some(1),
                });
            }
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                return Ok(Done {
                    detail: format!("reached the end of {}/{p}: no record to read", k.topic),
                    offset: None,
                    records: Some(0),
                });
            }
            // Local (negative) errors such as transport failures are transient for librdkafka: it
            // reconnects; keep waiting until the deadline and classify from the error callbacks then.
            Ok(Err(e)) if code_of(&e).is_some_and(|c| c < 0) => {}
            Ok(Err(e)) => {
                return Err(Ended {
                    code: code_of(&e),
                    what: format!("consume failed: {e}"),
                });
            }
        }
    }
}
