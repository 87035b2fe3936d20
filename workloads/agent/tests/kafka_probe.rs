//! The Kafka probe in both modes: against a real broker (tansu here, apache/kafka 3.9 where Docker is),
//! and against the scripted responder for what a broker cannot be made to do (error 29, silence).

mod common;

use common::kafka_responder::{self, PRODUCED_OFFSET, Script, Seen};
use common::{closed_port, probe, servers::Kafka};
use probe_wire::{
    ExactVersions, KafkaAction, KafkaClient, KafkaRequest, Outcome, ProbeRequest, ProbeResult,
    ProbeSpec, RdkafkaOptions,
};

fn kafka(
    target: impl ToString,
    client: KafkaClient,
    action: KafkaAction,
    topic: &str,
    client_id: &str,
) -> ProbeSpec {
    let mut s = ProbeSpec::new(
        target.to_string(),
        ProbeRequest::Kafka(KafkaRequest {
            client,
            action,
            topic: topic.into(),
            partition: 0,
            client_id: client_id.into(),
        }),
    );
    s.timeout_ms = 10_000;
    s
}

fn exact() -> KafkaClient {
    KafkaClient::Exact(ExactVersions::default())
}

fn rdkafka() -> KafkaClient {
    KafkaClient::Rdkafka(RdkafkaOptions::default())
}

fn produce(message: &str) -> KafkaAction {
    KafkaAction::Produce {
        message: message.into(),
    }
}

fn requests(r: &ProbeResult) -> Vec<(String, i16, Option<i16>)> {
    r.kafka
        .as_ref()
        .expect("kafka details")
        .requests
        .iter()
        .map(|x| (x.api_name.clone(), x.api_version, x.error_code))
        .collect()
}

#[test]
fn exact_mode_produces_then_consumes_against_a_real_broker_at_versions_inside_ciliums_range() {
    let broker = Kafka::start();
    broker.create_topic("exact-orders");
    let p = probe(&kafka(
        broker.addr,
        exact(),
        produce("hello"),
        "exact-orders",
        "writer",
    ));
    assert_eq!(
        p.outcome,
        Outcome::Completed,
        "{} ({}): {:?}",
        p.detail,
        broker.flavour,
        requests(&p)
    );
    let sent = requests(&p);
    assert_eq!(
        sent.last(),
        Some(&("Produce".to_owned(), 3, Some(0))),
        "{sent:?}"
    );
    assert!(sent.iter().all(|(_, v, _)| *v <= 5), "{sent:?}");
    let offset = p.kafka.as_ref().and_then(|k| k.offset).expect("offset");
    let c = probe(&kafka(
        broker.addr,
        exact(),
        KafkaAction::Consume,
        "exact-orders",
        "reader",
    ));
    assert_eq!(
        c.outcome,
        Outcome::Completed,
        "{}: {:?}",
        c.detail,
        requests(&c)
    );
    let k = c.kafka.as_ref().expect("kafka");
    assert!(k.records.expect("records") >= 1, "{}", c.detail);
    assert!(k.offset.expect("first offset") <= offset);
    let names: Vec<String> = requests(&c).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names.iter().rev().take(2).collect::<Vec<_>>(),
        ["Fetch", "ListOffsets"]
    );
}

#[test]
fn rdkafka_mode_produces_then_consumes_against_a_real_broker() {
    let broker = Kafka::start();
    broker.create_topic("rd-orders");
    let p = probe(&kafka(
        broker.addr,
        rdkafka(),
        produce("hi"),
        "rd-orders",
        "rd-writer",
    ));
    assert_eq!(
        p.outcome,
        Outcome::Completed,
        "{} ({})",
        p.detail,
        broker.flavour
    );
    let offset = p.kafka.as_ref().and_then(|k| k.offset).expect("offset");
    let c = probe(&kafka(
        broker.addr,
        rdkafka(),
        KafkaAction::Consume,
        "rd-orders",
        "rd-reader",
    ));
    assert_eq!(c.outcome, Outcome::Completed, "{}", c.detail);
    let k = c.kafka.expect("kafka");
    assert_eq!(k.records, Some(1), "{}", c.detail);
    assert!(k.offset.expect("offset") <= offset);
}

#[test]
fn a_consume_of_an_empty_topic_completes_with_no_records_in_both_modes() {
    let broker = Kafka::start();
    broker.create_topic("empty-topic");
    for client in [exact(), rdkafka()] {
        let r = probe(&kafka(
            broker.addr,
            client.clone(),
            KafkaAction::Consume,
            "empty-topic",
            "reader",
        ));
        assert_eq!(r.outcome, Outcome::Completed, "{client:?}: {}", r.detail);
        assert_eq!(r.kafka.expect("kafka").records, Some(0), "{client:?}");
    }
}

#[test]
fn exact_mode_sends_its_client_id_in_every_header_at_the_chosen_versions() {
    let responder = kafka_responder::start(Script::OK);
    let client = KafkaClient::Exact(ExactVersions {
        api_versions: Some(2),
        metadata: Some(4),
        produce: 5,
        ..ExactVersions::default()
    });
    let r = probe(&kafka(
        responder.addr,
        client,
        produce("m"),
        "audit",
        "billing-svc",
    ));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    assert_eq!(
        r.kafka.as_ref().and_then(|k| k.offset),
        Some(PRODUCED_OFFSET)
    );
    let last = r
        .kafka
        .as_ref()
        .and_then(|k| k.requests.last().cloned())
        .expect("requests");
    assert_eq!(
        (last.api_key, last.responded, last.offset),
        (0, true, Some(PRODUCED_OFFSET))
    );
    let who = Some("billing-svc".to_owned());
    assert_eq!(
        responder.seen(),
        vec![
            Seen {
                api_key: 18,
                api_version: 2,
                client_id: who.clone()
            },
            Seen {
                api_key: 3,
                api_version: 4,
                client_id: who.clone()
            },
            Seen {
                api_key: 0,
                api_version: 5,
                client_id: who
            },
        ]
    );
    assert_eq!(
        requests(&r),
        vec![
            ("ApiVersions".to_owned(), 2, Some(0)),
            ("Metadata".to_owned(), 4, Some(0)),
            ("Produce".to_owned(), 5, Some(0)),
        ]
    );
}

#[test]
fn rdkafka_mode_sends_its_client_id_in_every_header() {
    let responder = kafka_responder::start(Script::OK);
    let r = probe(&kafka(
        responder.addr,
        rdkafka(),
        produce("m"),
        "audit",
        "rd-billing",
    ));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    assert_eq!(
        r.kafka.as_ref().and_then(|k| k.offset),
        Some(PRODUCED_OFFSET)
    );
    let seen = responder.seen();
    assert!(
        seen.iter().any(|s| s.api_key == 0),
        "no Produce seen: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.client_id.as_deref() == Some("rd-billing")),
        "{seen:?}"
    );
}

#[test]
fn error_29_on_produce_is_topic_authorization_failed_in_exact_mode() {
    let responder = kafka_responder::start(Script {
        produce_error: 29,
        ..Script::OK
    });
    let r = probe(&kafka(
        responder.addr,
        exact(),
        produce("m"),
        "payments",
        "intruder",
    ));
    assert_eq!(
        r.outcome,
        Outcome::KafkaTopicAuthorizationFailed,
        "{}",
        r.detail
    );
    let k = r.kafka.as_ref().expect("kafka");
    assert_eq!(
        (k.error_code, k.error_name.as_deref()),
        (Some(29), Some("TOPIC_AUTHORIZATION_FAILED"))
    );
    assert_eq!(
        requests(&r).last(),
        Some(&("Produce".to_owned(), 3, Some(29)))
    );
}

#[test]
fn error_29_on_metadata_stops_the_exact_probe_before_producing() {
    let responder = kafka_responder::start(Script {
        metadata_error: 29,
        ..Script::OK
    });
    let r = probe(&kafka(
        responder.addr,
        exact(),
        produce("m"),
        "payments",
        "intruder",
    ));
    assert_eq!(
        r.outcome,
        Outcome::KafkaTopicAuthorizationFailed,
        "{}",
        r.detail
    );
    assert_eq!(requests(&r), vec![("Metadata".to_owned(), 1, Some(29))]);
}

#[test]
fn other_kafka_error_codes_are_kafka_errors() {
    let responder = kafka_responder::start(Script {
        produce_error: 3,
        ..Script::OK
    });
    let r = probe(&kafka(
        responder.addr,
        exact(),
        produce("m"),
        "payments",
        "app",
    ));
    assert_eq!(r.outcome, Outcome::KafkaError, "{}", r.detail);
    assert_eq!(
        r.kafka.expect("kafka").error_name.as_deref(),
        Some("UNKNOWN_TOPIC_OR_PARTITION")
    );
}

#[test]
fn error_29_on_produce_is_topic_authorization_failed_in_rdkafka_mode() {
    let responder = kafka_responder::start(Script {
        produce_error: 29,
        ..Script::OK
    });
    let r = probe(&kafka(
        responder.addr,
        rdkafka(),
        produce("m"),
        "payments",
        "intruder",
    ));
    assert_eq!(
        r.outcome,
        Outcome::KafkaTopicAuthorizationFailed,
        "{}",
        r.detail
    );
    assert_eq!(r.kafka.expect("kafka").error_code, Some(29));
}

#[test]
fn a_broker_that_never_answers_is_kafka_no_response_within_the_deadline() {
    let responder = kafka_responder::start(Script {
        answer: false,
        ..Script::OK
    });
    let mut spec = kafka(responder.addr, exact(), produce("m"), "t", "c");
    spec.timeout_ms = 700;
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::KafkaNoResponse, "{}", r.detail);
    let k = r.kafka.expect("kafka");
    assert_eq!(k.requests.len(), 1);
    assert!(!k.requests[0].responded);
    assert_eq!(responder.seen().len(), 1, "the request reached the broker");
}

#[test]
fn kafka_to_a_closed_port_is_refused_in_both_modes() {
    let port = closed_port();
    for client in [exact(), rdkafka()] {
        let mut spec = kafka(port, client.clone(), produce("m"), "t", "c");
        spec.timeout_ms = 2_000;
        let r = probe(&spec);
        assert_eq!(r.outcome, Outcome::Refused, "{client:?}: {}", r.detail);
    }
}
