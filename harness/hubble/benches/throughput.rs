//! Decode + match throughput for a stream of mixed flows, and the early
//! verdict latency, in release mode.
//!
//! Run: `cargo bench -p hubble --bench throughput` (optionally
//! `HUBBLE_BENCH_FLOWS=200000` for a shorter run). Prints flows per second
//! for two paths:
//! 1. decode (protobuf `GetFlowsResponse` bytes) + convert + match against
//!    64 concurrent probes, in one thread;
//! 2. end to end over loopback gRPC: a scripted Relay streams the flows, the
//!    client decodes them and a `FlowWatch` matches them against 64 probes
//!    (server-side encoding runs in the same process).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use hubble::fake::FakeRelay;
use hubble::proto::flow::{
    DropReason as PbReason, TraceObservationPoint, TrafficDirection as Dir, Verdict as PbVerdict,
};
use hubble::proto::observer::GetFlowsResponse;
use hubble::proto::relay::NodeState as PbNodeState;
use hubble::{
    Event, FlowsRequest, HubbleClient, L7Request, MatchOptions, Matcher, Probe, Progress,
    WatchOptions,
};
use prost::Message;
use support::*;

const PROBES: usize = 64;
const POOL: usize = 65_536;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn probe(i: usize) -> Probe {
    match i % 4 {
        0 | 1 => Probe::tcp(attacker().peer(), db().peer(), 10_000 + i as u16, t0()),
        2 => Probe::tcp(frontend().peer(), api().peer(), 8080, t0()).with_l7(L7Request::Http {
            method: "GET".into(),
            path: format!("/items/{i}"),
        }),
        _ => Probe::tcp(outsider().peer(), api().peer(), 9_000 + i as u16, t0()),
    }
}

/// One response of the mix: mostly unrelated L3/L4 traces, some policy
/// verdicts and drops, L7 HTTP and DNS records, replies, and now and then a
/// flow that decides one of the probes, a lost-events notice or a node status.
fn mixed(rng: &mut Rng, seq: u64) -> GetFlowsResponse {
    let at = t0() + Duration::from_micros(seq);
    let pods = [frontend(), api(), db(), attacker(), kafka()];
    let a = &pods[rng.below(5) as usize];
    let b = &pods[rng.below(5) as usize];
    let sport = 30_000 + rng.below(30_000) as u16;
    let dport = [80, 443, 5432, 8080, 9092][rng.below(5) as usize];
    let roll = rng.below(1000);
    let flow = match roll {
        0..=599 => F::tcp(a, sport, b, dport, at).trace(TraceObservationPoint::ToEndpoint),
        600..=699 => {
            F::tcp(a, sport, b, dport, at).policy_verdict(PbVerdict::Forwarded, None, Dir::Ingress)
        }
        700..=779 => {
            F::tcp(a, sport, b, dport, at).drop_event(PbReason::PolicyDenied, Dir::Ingress)
        }
        780..=849 => F::tcp(a, sport, b, 8080, at).http_request(
            PbVerdict::Forwarded,
            "GET",
            "http://api:8080/items/x",
        ),
        850..=899 => {
            F::tcp(b, 8080, a, sport, at).http_response(200, "GET", "http://api:8080/items/x")
        }
        900..=949 => F::tcp(b, dport, a, sport, at).syn_ack(),
        950..=979 => F::udp(a, sport, b, 53, at).trace(TraceObservationPoint::ToStack),
        980..=995 => {
            // Decides one of the probes.
            let i = rng.below(PROBES as u64) as usize;
            match i % 4 {
                0 | 1 => F::tcp(&attacker(), sport, &db(), 10_000 + i as u16, at).policy_verdict(
                    PbVerdict::Dropped,
                    Some(PbReason::PolicyDenied),
                    Dir::Ingress,
                ),
                2 => F::tcp(&frontend(), sport, &api(), 8080, at).http_request(
                    PbVerdict::Dropped,
                    "GET",
                    &format!("http://api:8080/items/{i}"),
                ),
                _ => F::tcp(&api(), 9_000 + i as u16, &outsider(), sport, at).syn_ack(),
            }
        }
        996..=997 => return lost_events(1, NODE_B, at),
        _ => return node_status(PbNodeState::NodeConnected, &[NODE_A, NODE_B], at),
    };
    flow_response(flow.build())
}

fn flows_wanted() -> usize {
    std::env::var("HUBBLE_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn decode_and_match(pool: &[Vec<u8>], total: usize) -> (Duration, u64) {
    let options = MatchOptions::default();
    let mut matchers: Vec<Matcher> = (0..PROBES)
        .map(|i| Matcher::with_options(probe(i), options))
        .collect();
    let mut verdicts = 0u64;
    let started = Instant::now();
    for n in 0..total {
        let bytes = &pool[n % pool.len()];
        let response = match GetFlowsResponse::decode(bytes.as_slice()) {
            Ok(response) => response,
            Err(err) => panic!("decode: {err}"),
        };
        let Some(event) = Event::from_proto(response) else {
            continue;
        };
        for (i, matcher) in matchers.iter_mut().enumerate() {
            if matcher.observe(&event) != Progress::Pending {
                let done = std::mem::replace(matcher, Matcher::with_options(probe(i), options));
                let report = done.finish(hubble::Resolution::Complete);
                std::hint::black_box(&report);
                verdicts += 1;
            }
        }
    }
    (started.elapsed(), verdicts)
}

async fn end_to_end(pool: &[GetFlowsResponse], total: usize) -> (Duration, u64) {
    let relay = FakeRelay::start().await.expect("loopback relay");
    let client = HubbleClient::connect(&relay.endpoint())
        .await
        .expect("connect");
    let watch = client
        .follow(&FlowsRequest::follow_since(t0()), WatchOptions::default())
        .await
        .expect("follow");
    let stream = relay.next_stream().await.expect("stream");
    let handles: Vec<_> = (0..PROBES).map(|i| watch.register(probe(i))).collect();
    let sender_pool = pool.to_vec();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for n in 0..total {
            if !stream
                .send(sender_pool[n % sender_pool.len()].clone())
                .await
            {
                break;
            }
        }
        stream
    });
    while watch.stats().events < total as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let _stream = sender.await.expect("sender");
    let mut resolved = 0;
    for handle in handles {
        let report = handle.verdict(tokio::time::Instant::now()).await;
        if report.verdict.is_conclusive() {
            resolved += 1;
        }
    }
    (elapsed, resolved)
}

async fn latency() -> Vec<Duration> {
    let relay = FakeRelay::start().await.expect("loopback relay");
    let client = HubbleClient::connect(&relay.endpoint())
        .await
        .expect("connect");
    let watch = client
        .follow(&FlowsRequest::follow_since(t0()), WatchOptions::default())
        .await
        .expect("follow");
    let stream = relay.next_stream().await.expect("stream");
    let mut latencies = Vec::new();
    for i in 0..1000u16 {
        let handle = watch.register(Probe::tcp(attacker().peer(), db().peer(), 20_000 + i, t0()));
        let decisive = F::tcp(
            &attacker(),
            50_000,
            &db(),
            20_000 + i,
            t0() + Duration::from_millis(1),
        )
        .policy_verdict(
            PbVerdict::Dropped,
            Some(PbReason::PolicyDenied),
            Dir::Ingress,
        )
        .build();
        let sent = Instant::now();
        assert!(stream.send_flow(decisive).await);
        let report = handle
            .verdict(tokio::time::Instant::now() + Duration::from_secs(10))
            .await;
        latencies.push(sent.elapsed());
        assert!(report.verdict.is_conclusive());
    }
    latencies.sort();
    latencies
}

fn main() {
    // `cargo bench` passes `--bench`; test runners (`cargo test --all-targets`,
    // nextest listing with `--list`) must not start a minute-long run.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "throughput: benchmark skipped (run it with `cargo bench -p hubble --bench throughput`)"
        );
        return;
    }
    let total = flows_wanted();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let responses: Vec<GetFlowsResponse> =
        (0..POOL as u64).map(|seq| mixed(&mut rng, seq)).collect();
    let encoded: Vec<Vec<u8>> = responses.iter().map(Message::encode_to_vec).collect();
    let mean_size = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    println!(
        "hubble throughput: {total} mixed flows (pool of {POOL} distinct responses, mean {mean_size} bytes), {PROBES} concurrent probes"
    );

    let started = Instant::now();
    let mut converted = 0u64;
    for n in 0..total {
        let response = match GetFlowsResponse::decode(encoded[n % encoded.len()].as_slice()) {
            Ok(response) => response,
            Err(err) => panic!("decode: {err}"),
        };
        if let Some(event) = Event::from_proto(response) {
            std::hint::black_box(&event);
            converted += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "  decode + convert only (1 thread):       {:>10.0} flows/s  ({elapsed:.2?}, {converted} events)",
        total as f64 / elapsed.as_secs_f64()
    );

    let (elapsed, verdicts) = decode_and_match(&encoded, total);
    println!(
        "  decode + convert + match (1 thread):   {:>10.0} flows/s  ({elapsed:.2?}, {verdicts} verdicts)",
        total as f64 / elapsed.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (elapsed, resolved) = runtime.block_on(end_to_end(&responses, total));
    println!(
        "  end to end over loopback gRPC:         {:>10.0} flows/s  ({elapsed:.2?}, {resolved}/{PROBES} probes conclusive)",
        total as f64 / elapsed.as_secs_f64()
    );

    let latencies = runtime.block_on(latency());
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "  early verdict after the decisive flow:  p50 {:?}, p90 {:?}, p99 {:?}, max {:?} (1000 probes)",
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(1.0)
    );
}
