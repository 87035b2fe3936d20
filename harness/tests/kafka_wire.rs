//! Kafka on the wire: the request bytes the agent's Kafka probe really sends, captured on their way to a
//! real broker (tansu on loopback), are read by Cilium's own Kafka parser and decided by its own rule
//! matching (proxylib of Cilium v1.19, through the oracle in `oracle/`), and must be decided as the model
//! decides every Kafka scenario of both postures.
//!
//! What it proves that the plain differential test does not: the oracle otherwise encodes the Kafka
//! session itself; here Cilium's parser meets the agent's own encoder (the `kafka-protocol` crate, record
//! batch v2), so a request version or field layout the proxy cannot read would show up here, not first
//! on a cluster (where the proxy closes such a connection).
//!
//! Needs the `tansu` broker (`TANSU_BIN`, else on PATH, else `~/.cargo/bin/tansu`; `scripts/test.sh`
//! installs it) and Go for the oracle. Without either the test fails and says how to install it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::model::CiliumVersion;
use harness::model::kafka::{self, KafkaAction};
use harness::oracle::{self, Oracle};
use harness::runner::plan::{self, ProbeTimeouts};
use harness::scenario::{self, Request, Scenario};
use harness::stack::Stack;
use probe_wire::{
    ExactVersions, KafkaAction as WireAction, KafkaClient, KafkaRequest, Outcome, ProbeRequest,
    ProbeResult, ProbeSpec, RdkafkaOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    match on_path.or(home.filter(|p| p.is_file())) {
        Some(p) => p,
        None => panic!(
            "the tansu broker is not installed: `bash scripts/test.sh --setup-only` installs it \
             (or `cargo install tansu --locked`, or set TANSU_BIN)"
        ),
    }
}

/// A tansu broker with in-memory storage on a free loopback port, stopped when dropped.
struct Broker {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(topics: &BTreeSet<String>) -> Broker {
        let bin = tansu_bin();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let broker = Broker {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&broker.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} in 30 s",
                broker.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for t in topics {
            let out = Command::new(&bin)
                .args(["topic", "create", t, "--partitions", "1", "--broker", &url])
                .output()
                .expect("run tansu topic create");
            assert!(
                out.status.success(),
                "tansu topic create {t}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        broker
    }
}

/// Runs a probe (built for the relay's port) through a loopback relay to the broker, and returns the bytes
/// the probe sent, cut into request frames (each with its 4-byte size), with the probe's result.
async fn capture(
    spec_for: impl FnOnce(u16) -> ProbeSpec,
    broker: SocketAddr,
) -> (Vec<Vec<u8>>, ProbeResult) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let relay_port = listener.local_addr().expect("relay address").port();
    let sent = Arc::new(Mutex::new(Vec::<u8>::new()));
    let record = Arc::clone(&sent);
    let relay = tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("the probe connects");
        let upstream = tokio::net::TcpStream::connect(broker)
            .await
            .expect("connect to the broker");
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let to_broker = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                record.lock().expect("record").extend_from_slice(&buf[..n]);
                if uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = uw.shutdown().await;
        };
        let to_client = async move {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        tokio::join!(to_broker, to_client);
    });
    let result = agent::probe::run(&spec_for(relay_port)).await;
    tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("the relay ends when the probe closes its connection")
        .expect("relay task");
    let bytes = sent.lock().expect("record").clone();
    (frames(&result.target, &bytes), result)
}

/// The frames the live suite's probe for a scenario sends (the runner's own `plan::probe_spec`).
async fn capture_scenario(s: &Scenario, request: &Request, broker: SocketAddr) -> Vec<Vec<u8>> {
    let (frames, result) = capture(
        |port| {
            plan::probe_spec(
                s,
                request,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
                ProbeTimeouts {
                    connect_ms: 2_000,
                    total_ms: 15_000,
                },
            )
        },
        broker,
    )
    .await;
    assert_eq!(
        result.outcome,
        Outcome::Completed,
        "{}: the probe did not complete against tansu: {}",
        s.id,
        result.detail
    );
    frames
}

/// Cuts a client byte stream into Kafka request frames (4-byte big-endian size, then the request).
fn frames(id: &str, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "{id}: a truncated size field at the end");
        let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert!(
            bytes.len() >= 4 + size,
            "{id}: a truncated frame at the end"
        );
        out.push(bytes[..4 + size].to_vec());
        bytes = &bytes[4 + size..];
    }
    out
}

fn kafka_scenarios(scenarios: &[Scenario]) -> Vec<(&Scenario, &Request)> {
    scenarios
        .iter()
        .filter_map(|s| match &s.request {
            Some(r @ Request::Kafka(_)) => Some((s, r)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_agents_kafka_bytes_are_read_by_ciliums_parser_and_decided_as_the_model_says() {
    let root = root();
    let stack = Stack::load(&root.join("fixtures/stack.yaml")).expect("stack");
    let scenarios =
        scenario::load_scenarios(&root.join("fixtures/scenarios"), &stack).expect("scenarios");
    let kafka_ones = kafka_scenarios(&scenarios);
    assert!(
        kafka_ones.len() >= 10,
        "too few Kafka scenarios: {}",
        kafka_ones.len()
    );
    let topics: BTreeSet<String> = kafka_ones
        .iter()
        .filter_map(|(_, r)| match r {
            Request::Kafka(k) => Some(k.topic.clone()),
            _ => None,
        })
        .collect();
    let o = Oracle::build(&root, &oracle::RELEASES[0]).unwrap_or_else(|e| panic!("{e}"));
    let broker = Broker::start(&topics);

    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut wire: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (s, r) in &kafka_ones {
        let f = rt.block_on(capture_scenario(s, r, broker.addr));
        assert!(!f.is_empty(), "{}: the probe sent nothing", s.id);
        wire.insert(s.id.clone(), f);
    }

    let version: CiliumVersion = oracle::CILIUM_MINOR.parse().expect("version");
    let mut problems = Vec::new();
    for posture in ["seed", "hardened"] {
        let d = oracle::differential_on_wire(
            &o,
            &stack,
            &scenarios,
            &root.join("policies").join(posture),
            version,
            &wire,
        )
        .unwrap_or_else(|e| panic!("{posture}: {e}"));
        for (s, r) in &kafka_ones {
            let Request::Kafka(k) = r else { continue };
            if let Some(fields) = d.scenarios.get(&s.id) {
                problems.push(format!("{posture}: {}: {}", s.id, fields.join("; ")));
            }
            // What Cilium's parser read must be the requests the model evaluates, in order, with
            // their versions.
            let read: Vec<(i16, i16, String, Vec<String>)> = d
                .wire
                .get(&s.id)
                .map(|w| {
                    w.iter()
                        .map(|q| {
                            (
                                q.api_key,
                                q.api_version,
                                q.client_id.clone(),
                                q.topics.clone(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let expected: Vec<(i16, i16, String, Vec<String>)> =
                kafka::requests_for(k.action, &k.topic, &k.client_id)
                    .into_iter()
                    .map(|q| {
                        (
                            q.api_key,
                            q.api_version.unwrap_or(-1),
                            q.client_id,
                            q.topics,
                        )
                    })
                    .collect();
            if read != expected {
                problems.push(format!(
                    "{posture}: {}: Cilium's parser read {read:?}, the model evaluates {expected:?}",
                    s.id
                ));
            }
        }
        eprintln!(
            "{posture}: {} Kafka scenarios, {} request frames read by Cilium {}'s parser",
            kafka_ones.len(),
            d.wire.values().map(Vec::len).sum::<usize>(),
            oracle::CILIUM_RELEASE
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let produce = kafka_ones
        .iter()
        .any(|(_, r)| matches!(r, Request::Kafka(k) if k.action == KafkaAction::Produce));
    let consume = kafka_ones
        .iter()
        .any(|(_, r)| matches!(r, Request::Kafka(k) if k.action == KafkaAction::Consume));
    assert!(produce && consume, "both produce and consume are exercised");
}

/// The API keys the exact mode sends, with the request that uses each and how to set its version.
const SWEPT: &[(&str, i16)] = &[
    ("ApiVersions", kafka::API_VERSIONS),
    ("Metadata", kafka::METADATA),
    ("Produce", kafka::PRODUCE),
    ("ListOffsets", kafka::LIST_OFFSETS),
    ("Fetch", kafka::FETCH),
];

fn versions_with(api_key: i16, v: i16) -> ExactVersions {
    let mut e = ExactVersions::default();
    match api_key {
        kafka::API_VERSIONS => e.api_versions = Some(v),
        kafka::METADATA => e.metadata = Some(v),
        kafka::PRODUCE => e.produce = v,
        kafka::LIST_OFFSETS => e.list_offsets = v,
        _ => e.fetch = v,
    }
    e
}

/// The versions of each request the agent can encode (the `kafka-protocol` crate) that Cilium v1.19's
/// Kafka parser (proxylib, through the oracle) reads: (API, first, last), measured by sending every
/// encodable version to tansu through the relay and reading the captured frame. The first versions are the
/// agent's own lower limits (it cannot encode Produce v0-v2, ListOffsets v0 or Fetch v0-v3); the last ones
/// are Cilium's: from Metadata v9, Produce v9, ListOffsets v6 and Fetch v15 on (Kafka's flexible versions,
/// and ListOffsets v6's new layout) the parser fails and the proxy closes the client's connection.
/// ApiVersions is read at every version because proxylib does not decode its body. The exact mode's
/// defaults (Metadata v1, Produce v3, ListOffsets v1, Fetch v4) sit inside.
const PARSED_VERSIONS: &[(&str, i16, i16)] = &[
    ("ApiVersions", 0, 4),
    ("Metadata", 0, 8),
    ("Produce", 3, 8),
    ("ListOffsets", 1, 5),
    ("Fetch", 4, 14),
];

#[test]
fn ciliums_kafka_parser_reads_the_agents_requests_at_the_versions_measured() {
    let root = root();
    let o = Oracle::build(&root, &oracle::RELEASES[0]).unwrap_or_else(|e| panic!("{e}"));
    let topic = "wire-sweep".to_string();
    let broker = Broker::start(&BTreeSet::from([topic.clone()]));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut measured: Vec<(&str, i16, i16)> = Vec::new();
    let mut table = Vec::new();
    for (name, key) in SWEPT {
        let mut accepted: Vec<i16> = Vec::new();
        for v in 0..=20 {
            let ev = versions_with(*key, v);
            if agent::probe::validate_exact_versions(&ev).is_err() {
                continue;
            }
            let action = if matches!(*key, kafka::LIST_OFFSETS | kafka::FETCH) {
                WireAction::Consume
            } else {
                WireAction::Produce {
                    message: "sweep".into(),
                }
            };
            let (sent, result) = rt.block_on(capture(
                |port| {
                    let mut spec = ProbeSpec::new(
                        format!("127.0.0.1:{port}"),
                        ProbeRequest::Kafka(KafkaRequest {
                            client: KafkaClient::Exact(ev),
                            action: action.clone(),
                            topic: topic.clone(),
                            partition: 0,
                            client_id: "sweep".into(),
                        }),
                    );
                    spec.timeout_ms = 10_000;
                    spec
                },
                broker.addr,
            ));
            let Some(frame) = sent
                .iter()
                .find(|f| f.len() >= 8 && i16::from_be_bytes([f[4], f[5]]) == *key)
            else {
                table.push(format!("{name} v{v}: not sent ({})", result.detail));
                continue;
            };
            let answer = o
                .kafka_parse(std::slice::from_ref(frame))
                .unwrap_or_else(|e| panic!("{e}"));
            let read = &answer[0];
            table.push(format!(
                "{name} v{v}: {}",
                if read.ok {
                    "read".to_string()
                } else {
                    read.error.clone().unwrap_or_default()
                }
            ));
            if read.ok {
                let r = read.request.as_ref().expect("a read request");
                assert_eq!(
                    (r.api_key, r.api_version),
                    (*key, v),
                    "{name} v{v}: Cilium's parser read another request"
                );
                accepted.push(v);
            }
        }
        let (first, last) = (
            accepted.first().copied().unwrap_or(-1),
            accepted.last().copied().unwrap_or(-1),
        );
        assert_eq!(
            accepted,
            (first..=last).collect::<Vec<_>>(),
            "{name}: the versions Cilium's parser reads are not one range"
        );
        measured.push((name, first, last));
    }
    eprintln!("{}", table.join("\n"));
    assert_eq!(measured, PARSED_VERSIONS, "{}", table.join("\n"));
}

/// Why the live suite uses the exact mode: librdkafka, left to negotiate with ApiVersions as real
/// applications do, sends requests at versions Cilium v1.19's Kafka parser cannot read, so behind a Kafka
/// rule the proxy would close its connection whatever the rule says. Only the bootstrap connection passes
/// the relay (librdkafka then follows the broker's advertised address), which is enough to show it.
#[test]
fn librdkafka_left_to_negotiate_sends_requests_ciliums_parser_cannot_read() {
    let root = root();
    let o = Oracle::build(&root, &oracle::RELEASES[0]).unwrap_or_else(|e| panic!("{e}"));
    let topic = "wire-rdkafka".to_string();
    let broker = Broker::start(&BTreeSet::from([topic.clone()]));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (sent, result) = rt.block_on(capture(
        |port| {
            let mut spec = ProbeSpec::new(
                format!("127.0.0.1:{port}"),
                ProbeRequest::Kafka(KafkaRequest {
                    client: KafkaClient::Rdkafka(RdkafkaOptions::default()),
                    action: WireAction::Produce {
                        message: "negotiated".into(),
                    },
                    topic: topic.clone(),
                    partition: 0,
                    client_id: "rdkafka".into(),
                }),
            );
            spec.timeout_ms = 10_000;
            spec
        },
        broker.addr,
    ));
    assert!(
        !sent.is_empty(),
        "librdkafka sent nothing: {}",
        result.detail
    );
    let answers = o.kafka_parse(&sent).unwrap_or_else(|e| panic!("{e}"));
    let shown: Vec<String> = sent
        .iter()
        .zip(&answers)
        .map(|(f, a)| {
            let (key, v) = (
                i16::from_be_bytes([f[4], f[5]]),
                i16::from_be_bytes([f[6], f[7]]),
            );
            let what = if a.ok { "read" } else { "refused" };
            format!("API key {key} v{v}: {what}")
        })
        .collect();
    eprintln!("librdkafka's bootstrap connection: {}", shown.join(", "));
    assert!(
        answers.iter().any(|a| !a.ok),
        "every request librdkafka sent was read by Cilium's parser: {}",
        shown.join(", ")
    );
}

#[test]
fn frames_are_cut_at_their_size_fields() {
    let stream = [0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 7];
    assert_eq!(
        frames("t", &stream),
        vec![vec![0, 0, 0, 2, 9, 9], vec![0, 0, 0, 1, 7]]
    );
}
