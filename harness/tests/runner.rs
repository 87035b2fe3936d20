//! The runner against an in-process test bed: scripted agent answers and scripted Hubble flows (fed
//! through the real flow watch and matcher), including the bad cases.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::check::{self, Inputs};
use harness::model::{CiliumVersion, Model};
use harness::results::Status;
use harness::runner::{self, BedError, BoxFuture, NodeMetrics, Place, RunOptions, TestBed};
use harness::scenario::Scenario;
use probe_wire::{NetworkMeaning, Outcome, ProbeKind, ProbeResult, Timings, WIRE_VERSION};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn loaded(posture: &str) -> check::Loaded {
    let r = root();
    check::load(&Inputs {
        policies: vec![r.join("policies").join(posture)],
        posture: posture.into(),
        stack_file: r.join("fixtures/stack.yaml"),
        scenarios: r.join("fixtures/scenarios"),
        helm_values: Some(r.join("kind/cilium-values.yaml")),
        version: CiliumVersion::new(1, 19),
    })
    .expect("project inputs load")
}

/// What the fake agent does for one (source, target) pair.
///
/// The fake agent behaves as `agent probe --cancel-on-stdin` does: it stops only when a line arrives on its
/// standard input (written by the same function the live test bed uses), and then reports what it saw
/// until then. It never looks at the runner's cancellation token or deadline.
#[derive(Clone)]
enum Script {
    /// Push these Hubble flows, then answer with this outcome at once.
    Answer(Outcome, Vec<Kind>),
    /// Push these Hubble flows, keep the connection busy for a moment ([`HOLD`]), then answer with this
    /// outcome; stopped before that, it reports a timeout (connected) or a connect timeout (not connected),
    /// as the agent does.
    Busy(Outcome, Vec<Kind>),
    /// Push these flows, then wait for the stop line or the probe's connect timeout, and answer with a
    /// connect timeout, as the agent does.
    DropUntilStopped(Vec<Kind>),
    /// Never answer and ignore the stop line (a hung exec stream): only the runner can end it.
    Hang,
    /// Answer with this outcome at once, but hold these flows back until the next command runs on the bed,
    /// as Hubble's ring serves an event only once the next one is written (a quiet node).
    HeldBack(Outcome, Vec<Kind>),
}

/// How long an answering fake agent keeps the probe running after its flows were streamed.
const HOLD: Duration = Duration::from_millis(250);

/// The Hubble flows the fake can emit.
#[derive(Clone, Copy)]
enum Kind {
    /// Policy-verdict + drop event at the destination's ingress (POLICY_DENIED).
    IngressDrop,
    /// Policy-verdict forwarded at ingress, then the reply.
    Forwarded,
    /// An HTTP request record (dropped or forwarded) and its response.
    Http { denied: bool },
    /// A lost-events notice.
    Lost,
    /// A drop at the destination's ingress for a reason other than policy (a conntrack failure).
    OtherDrop,
}

/// A flow held back: its kind, source, destination, port, HTTP method and path.
type HeldFlow = (Kind, Place, Place, u16, String, String);

struct FakeBed {
    places: HashMap<String, Place>,
    scripts: HashMap<(String, String), Script>,
    default_script: Script,
    tx: mpsc::UnboundedSender<Result<hubble::Event, hubble::StreamError>>,
    watch: Option<Arc<hubble::FlowWatch>>,
    metrics: Result<Vec<NodeMetrics>, BedError>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight_per_key: AtomicUsize,
    stopped_early: AtomicUsize,
    /// Flows held back ([`Script::HeldBack`]): written when the next command runs.
    held: Mutex<Vec<HeldFlow>>,
    /// Nudges received (TCP connects to the runner's nudge port).
    nudges: AtomicUsize,
}

/// Counts a probe in flight for its (source, target) key until dropped, also when the runner abandons it.
struct InFlight<'a> {
    bed: &'a FakeBed,
    key: String,
}

impl<'a> InFlight<'a> {
    fn enter(bed: &'a FakeBed, key: String) -> InFlight<'a> {
        let mut m = bed.in_flight.lock().expect("lock");
        let n = m.entry(key.clone()).or_insert(0);
        *n += 1;
        bed.max_in_flight_per_key.fetch_max(*n, Ordering::SeqCst);
        InFlight { bed, key }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.bed.in_flight.lock()
            && let Some(n) = m.get_mut(&self.key)
        {
            *n -= 1;
        }
    }
}

fn pod_ip(i: usize) -> IpAddr {
    format!("10.244.1.{}", 10 + i).parse().expect("ip")
}

impl FakeBed {
    fn new(loaded: &check::Loaded, with_hubble: bool) -> Arc<FakeBed> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<hubble::Event, hubble::StreamError>>();
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let watch = with_hubble.then(|| {
            Arc::new(hubble::FlowWatch::new(
                stream,
                hubble::WatchOptions::default(),
            ))
        });
        let mut places = HashMap::new();
        for (i, w) in loaded.stack.workloads.iter().enumerate() {
            places.insert(
                w.id(),
                Place {
                    ip: pod_ip(i),
                    hubble: hubble::Peer::pod(&w.namespace, format!("{}-7d9f8c-abcde", w.name)),
                },
            );
        }
        for h in &loaded.stack.outside {
            places.insert(
                h.name.clone(),
                Place {
                    ip: h.ip,
                    hubble: hubble::Peer::ip(h.ip),
                },
            );
        }
        Arc::new(FakeBed {
            places,
            scripts: HashMap::new(),
            default_script: Script::Answer(Outcome::Completed, vec![Kind::Forwarded]),
            tx,
            watch,
            metrics: Ok(vec![]),
            in_flight: Mutex::new(HashMap::new()),
            max_in_flight_per_key: AtomicUsize::new(0),
            stopped_early: AtomicUsize::new(0),
            held: Mutex::new(Vec::new()),
            nudges: AtomicUsize::new(0),
        })
    }

    fn place_of_ip(&self, ip: &str) -> (String, Place) {
        self.places
            .iter()
            .find(|(_, p)| p.ip.to_string() == ip)
            .map(|(n, p)| (n.clone(), p.clone()))
            .expect("target is a known place")
    }

    fn endpoint_json(p: &Place) -> String {
        match &p.hubble {
            hubble::Peer::Pod { namespace, name } => format!(
                r#"{{"identity":12345,"namespace":"{namespace}","pod_name":"{name}","labels":["k8s:io.kubernetes.pod.namespace={namespace}"]}}"#
            ),
            _ => r#"{"identity":2,"labels":["reserved:world"]}"#.to_string(),
        }
    }

    fn push(&self, kind: Kind, src: &Place, dst: &Place, port: u16, method: &str, path: &str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        let time = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let time = rfc3339(&time);
        let s = FakeBed::endpoint_json(src);
        let d = FakeBed::endpoint_json(dst);
        let (sip, dip) = (src.ip, dst.ip);
        let lines: Vec<String> = match kind {
            Kind::IngressDrop => vec![
                format!(
                    r#"{{"flow":{{"time":"{time}","verdict":"DROPPED","drop_reason":133,"IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port},"flags":{{"SYN":true}}}}}},"source":{s},"destination":{d},"Type":"L3_L4","node_name":"kind-harness/harness-worker","event_type":{{"type":5}},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED","is_reply":false}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                ),
                format!(
                    r#"{{"flow":{{"time":"{time}","verdict":"DROPPED","drop_reason":133,"IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port},"flags":{{"SYN":true}}}}}},"source":{s},"destination":{d},"Type":"L3_L4","node_name":"kind-harness/harness-worker","event_type":{{"type":1,"sub_type":133}},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED","is_reply":false}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                ),
            ],
            Kind::Forwarded => vec![
                format!(
                    r#"{{"flow":{{"time":"{time}","verdict":"FORWARDED","IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port},"flags":{{"SYN":true}}}}}},"source":{s},"destination":{d},"Type":"L3_L4","node_name":"kind-harness/harness-worker","event_type":{{"type":5}},"traffic_direction":"INGRESS","is_reply":false}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                ),
                format!(
                    r#"{{"flow":{{"time":"{time}","verdict":"FORWARDED","IP":{{"source":"{dip}","destination":"{sip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{port},"destination_port":40000,"flags":{{"SYN":true,"ACK":true}}}}}},"source":{d},"destination":{s},"Type":"L3_L4","node_name":"kind-harness/harness-worker","event_type":{{"type":4}},"traffic_direction":"INGRESS","is_reply":true}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                ),
            ],
            Kind::Http { denied } => {
                let (verdict, code) = if denied {
                    ("DROPPED", 403)
                } else {
                    ("FORWARDED", 200)
                };
                vec![
                    format!(
                        r#"{{"flow":{{"time":"{time}","verdict":"{verdict}","IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40001,"destination_port":{port}}}}},"source":{s},"destination":{d},"Type":"L7","node_name":"kind-harness/harness-worker","l7":{{"type":"REQUEST","http":{{"method":"{method}","url":"http://{dip}:{port}{path}","protocol":"HTTP/1.1"}}}},"event_type":{{"type":129}},"traffic_direction":"INGRESS","is_reply":false}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                    ),
                    format!(
                        r#"{{"flow":{{"time":"{time}","verdict":"FORWARDED","IP":{{"source":"{dip}","destination":"{sip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{port},"destination_port":40001}}}},"source":{d},"destination":{s},"Type":"L7","node_name":"kind-harness/harness-worker","l7":{{"type":"RESPONSE","http":{{"code":{code},"method":"{method}","url":"http://{dip}:{port}{path}","protocol":"HTTP/1.1"}}}},"event_type":{{"type":129}},"traffic_direction":"INGRESS","is_reply":true}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
                    ),
                ]
            }
            Kind::OtherDrop => vec![format!(
                r#"{{"flow":{{"time":"{time}","verdict":"DROPPED","drop_reason":155,"IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port},"flags":{{"SYN":true}}}}}},"source":{s},"destination":{d},"Type":"L3_L4","node_name":"kind-harness/harness-worker","event_type":{{"type":1,"sub_type":155}},"traffic_direction":"INGRESS","drop_reason_desc":"CT_MAP_INSERTION_FAILED","is_reply":false}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
            )],
            Kind::Lost => vec![format!(
                r#"{{"lost_events":{{"source":"HUBBLE_RING_BUFFER","num_events_lost":"12"}},"node_name":"kind-harness/harness-worker","time":"{time}"}}"#
            )],
        };
        for l in lines {
            if let Ok(Some(ev)) = hubble::json::parse_line(&l, 1) {
                let _ = self.tx.send(Ok(ev));
            } else {
                panic!("test flow does not parse: {l}");
            }
        }
    }
}

/// `secs.nanos` since the epoch → RFC 3339 with nanoseconds.
fn rfc3339(epoch: &str) -> String {
    let (secs, nanos) = epoch.split_once('.').expect("dot");
    let secs: i64 = secs.parse().expect("secs");
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn answer(outcome: Outcome, kind: ProbeKind, target: &str, detail: &str) -> String {
    ProbeResult {
        version: WIRE_VERSION,
        probe: kind,
        target: target.into(),
        outcome,
        detail: detail.into(),
        timings: Timings {
            connect_ms: None,
            first_byte_ms: None,
            total_ms: 1.0,
        },
        local_addr: None,
        peer_addr: None,
        http: None,
        kafka: None,
        postgres: None,
        dns: None,
    }
    .to_json()
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
}

impl TestBed for FakeBed {
    fn locate(&self, peer: &str) -> Result<Place, BedError> {
        if peer == "outsider" {
            return Err(BedError::NotApplicable(
                "no outside hosts on this test bed".into(),
            ));
        }
        if peer == "analytics/reporting" {
            return Err(BedError::Failed(
                "no Ready pod labelled harness/workload=reporting in namespace analytics".into(),
            ));
        }
        self.places
            .get(peer)
            .cloned()
            .ok_or_else(|| BedError::Failed(format!("unknown peer {peer}")))
    }

    fn exec<'a>(
        &'a self,
        source: &'a str,
        args: Vec<String>,
        // Like the real agent, the fake one knows nothing of the runner's deadline: bounding a probe is the
        // runner's job.
        _deadline: Instant,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<String, BedError>> {
        Box::pin(async move {
            assert!(
                args.iter().any(|a| a == "--cancel-on-stdin"),
                "the runner must ask for early stops"
            );
            let target = arg(&args, "--target").expect("--target").to_string();
            let (ip, port) = target.rsplit_once(':').expect("host:port");
            let port: u16 = port.parse().expect("port");
            let kind = match args.get(2).map(String::as_str) {
                Some("http") => ProbeKind::Http,
                Some("https") => ProbeKind::Https,
                Some("postgres") => ProbeKind::Postgres,
                Some("kafka") => ProbeKind::Kafka,
                Some("dns") => ProbeKind::Dns,
                _ => ProbeKind::Tcp,
            };
            let method = arg(&args, "--method").unwrap_or("GET").to_string();
            let path = arg(&args, "--path").unwrap_or("/").to_string();
            let connect_timeout = Duration::from_millis(
                arg(&args, "--connect-timeout-ms")
                    .and_then(|v| v.parse().ok())
                    .expect("--connect-timeout-ms"),
            );
            let key = format!("{source}->{target}");
            let _in_flight = InFlight::enter(self, key);
            let src = self.places.get(source).cloned().expect("source place");
            let (dst_name, dst) = self.place_of_ip(ip);
            let script = self
                .scripts
                .get(&(source.to_string(), dst_name))
                .cloned()
                .unwrap_or_else(|| self.default_script.clone());
            // The agent's standard input: the only way a stop reaches it.
            let (stdin, mut agent_stdin) = tokio::io::duplex(64);
            let agent = async move {
                let started = std::time::Instant::now();
                let mut stop = Box::pin(async move {
                    let mut byte = [0u8; 1];
                    let _ = agent_stdin.read(&mut byte).await;
                });
                let stopped = |connected: bool| {
                    self.stopped_early.fetch_add(1, Ordering::SeqCst);
                    let (outcome, what) = if connected {
                        (Outcome::Timeout, "connected, no complete answer yet")
                    } else {
                        (
                            Outcome::ConnectTimeout,
                            "no answer to the connection attempt yet",
                        )
                    };
                    answer(
                        outcome,
                        kind,
                        &target,
                        &format!(
                            "stopped by the harness after {} ms (signal on standard input): {what}",
                            started.elapsed().as_millis()
                        ),
                    )
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
                // This command's traffic is the next event: what Hubble held back is served now.
                let held = std::mem::take(&mut *self.held.lock().expect("lock"));
                for (f, a, b, p, m, pa) in held {
                    self.push(f, &a, &b, p, &m, &pa);
                }
                if port == runner::NUDGE_PORT && kind == ProbeKind::Tcp {
                    self.nudges.fetch_add(1, Ordering::SeqCst);
                    return Ok(answer(Outcome::Refused, kind, &target, "nudge"));
                }
                match script {
                    Script::Answer(outcome, flows) => {
                        for f in flows {
                            self.push(f, &src, &dst, port, &method, &path);
                        }
                        Ok(answer(outcome, kind, &target, "scripted"))
                    }
                    Script::Busy(outcome, flows) => {
                        for f in flows {
                            self.push(f, &src, &dst, port, &method, &path);
                        }
                        let connected = outcome.network() != NetworkMeaning::DeniedL4;
                        tokio::select! {
                            () = &mut stop => Ok(stopped(connected)),
                            () = tokio::time::sleep(HOLD) => Ok(answer(outcome, kind, &target, "scripted")),
                        }
                    }
                    Script::DropUntilStopped(flows) => {
                        for f in flows {
                            self.push(f, &src, &dst, port, &method, &path);
                        }
                        tokio::select! {
                            () = &mut stop => Ok(stopped(false)),
                            () = tokio::time::sleep(connect_timeout) => Ok(answer(Outcome::ConnectTimeout, kind, &target, "connect timeout")),
                        }
                    }
                    Script::Hang => std::future::pending().await,
                    Script::HeldBack(outcome, flows) => {
                        let mut held = self.held.lock().expect("lock");
                        for f in flows {
                            held.push((
                                f,
                                src.clone(),
                                dst.clone(),
                                port,
                                method.clone(),
                                path.clone(),
                            ));
                        }
                        Ok(answer(outcome, kind, &target, "scripted"))
                    }
                }
            };
            testbed::exec::signal_on_cancel(agent, Some(stdin), cancel).await
        })
    }

    fn flows(&self) -> BoxFuture<'_, Result<Arc<hubble::FlowWatch>, String>> {
        let w = self
            .watch
            .clone()
            .ok_or_else(|| "Hubble Relay unreachable at 127.0.0.1:4245".to_string());
        Box::pin(async move { w })
    }

    fn hubble_metrics(&self) -> BoxFuture<'_, Result<Vec<NodeMetrics>, BedError>> {
        let m = self.metrics.clone();
        Box::pin(async move { m })
    }
}

fn only(loaded: &check::Loaded, ids: &[&str]) -> Vec<Scenario> {
    let v: Vec<Scenario> = loaded
        .scenarios
        .iter()
        .filter(|s| ids.contains(&s.id.as_str()))
        .cloned()
        .collect();
    assert_eq!(v.len(), ids.len(), "unknown scenario id among {ids:?}");
    v
}

fn fast() -> RunOptions {
    RunOptions {
        timeouts: harness::runner::ProbeTimeouts {
            connect_ms: 2_000,
            total_ms: 3_000,
        },
        concurrency: 4,
        early_stop: true,
        hubble_margin: Duration::from_millis(400),
        exec_overhead: Duration::from_millis(500),
        nudge_after: None,
    }
}

fn nudging() -> RunOptions {
    RunOptions {
        nudge_after: Some(Duration::from_millis(50)),
        ..fast()
    }
}

fn set(bed: &mut Arc<FakeBed>, from: &str, to: &str, s: Script) {
    Arc::get_mut(bed)
        .expect("unique")
        .scripts
        .insert((from.into(), to.into()), s);
}

async fn run(
    bed: &Arc<FakeBed>,
    model: &Model,
    scenarios: &[Scenario],
) -> Vec<harness::results::ScenarioResult> {
    runner::run(bed.as_ref(), model, scenarios, &fast()).await
}

#[tokio::test]
async fn consistent_evidence_passes_allow_l4_deny_and_l7_deny() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "attacker/attacker",
        "backend/api",
        Script::DropUntilStopped(vec![Kind::IngressDrop]),
    );
    set(
        &mut bed,
        "frontend/frontend",
        "backend/api",
        Script::Answer(Outcome::ProxyDenied, vec![Kind::Http { denied: true }]),
    );
    set(
        &mut bed,
        "backend/api",
        "database/postgres",
        Script::Answer(Outcome::Completed, vec![Kind::Forwarded]),
    );
    let rs = run(
        &bed,
        &l.model,
        &only(
            &l,
            &["api-from-attacker", "api-delete-order", "db-api-select"],
        ),
    )
    .await;
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{}: {}", r.id, r.reason);
        assert!(!r.model_divergence, "{}", r.id);
        assert!(r.client.is_some() && r.hubble.is_some(), "{}", r.id);
    }
    let drop = rs
        .iter()
        .find(|r| r.id == "api-from-attacker")
        .expect("result");
    assert!(
        drop.hubble
            .as_ref()
            .expect("hubble")
            .flows
            .iter()
            .any(|f| f["flow"].as_str().unwrap_or("").contains("DROPPED"))
    );
}

#[tokio::test]
async fn deny_probes_stop_as_soon_as_hubble_reports_the_drop() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "attacker/attacker",
        "backend/api",
        Script::DropUntilStopped(vec![Kind::IngressDrop]),
    );
    let started = std::time::Instant::now();
    let rs = run(&bed, &l.model, &only(&l, &["api-from-attacker"])).await;
    let took = started.elapsed();
    assert_eq!(rs[0].status, Status::Pass, "{}", rs[0].reason);
    assert_eq!(
        bed.stopped_early.load(Ordering::SeqCst),
        1,
        "the probe was not stopped early"
    );
    // The probe's connect deadline is 2 s: the early stop must come well before it.
    assert!(took < Duration::from_millis(1_000), "took {took:?}");
    assert!(
        rs[0]
            .client
            .as_ref()
            .expect("client")
            .detail
            .contains("stopped by the harness")
    );
}

#[tokio::test]
async fn only_a_policy_drop_stops_a_probe_early() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    // Hubble reports these verdicts while the client is still busy: neither may stop it.
    set(
        &mut bed,
        "backend/api",
        "database/postgres",
        Script::Busy(Outcome::Completed, vec![Kind::Forwarded]),
    );
    set(
        &mut bed,
        "frontend/frontend",
        "backend/api",
        Script::Busy(Outcome::ProxyDenied, vec![Kind::Http { denied: true }]),
    );
    let rs = run(
        &bed,
        &l.model,
        &only(&l, &["db-api-select", "api-delete-order"]),
    )
    .await;
    assert_eq!(
        bed.stopped_early.load(Ordering::SeqCst),
        0,
        "a probe was stopped on a verdict other than a policy drop"
    );
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{}: {}", r.id, r.reason);
        assert_eq!(
            r.client.as_ref().expect("client").detail,
            "scripted",
            "{}",
            r.id
        );
    }
}

#[tokio::test]
async fn a_drop_for_a_reason_other_than_policy_is_inconclusive_never_a_deny() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    // The intent is an L4 deny and the client sees a connect timeout, but the only drop Hubble shows is a
    // conntrack failure: that proves nothing about the policy.
    set(
        &mut bed,
        "attacker/attacker",
        "backend/api",
        Script::DropUntilStopped(vec![Kind::OtherDrop]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["api-from-attacker"])).await;
    let r = &rs[0];
    assert_eq!(r.status, Status::Inconclusive, "{}", r.reason);
    assert!(
        r.reason.contains("CT_MAP_INSERTION_FAILED") && r.reason.contains("other than policy"),
        "the reason must name the drop reason: {}",
        r.reason
    );
    let hubble = r.hubble.as_ref().expect("hubble evidence");
    assert_eq!(hubble.verdict, harness::runner::DROPPED_OTHER);
    assert_eq!(
        bed.stopped_early.load(Ordering::SeqCst),
        0,
        "a drop for another reason than policy must not stop the probe"
    );
}

#[tokio::test]
async fn evidence_that_disagrees_fails_and_names_the_column() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    // The client connected, but Hubble shows a policy drop.
    set(
        &mut bed,
        "attacker/attacker",
        "backend/api",
        Script::Answer(Outcome::Completed, vec![Kind::IngressDrop]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["api-from-attacker"])).await;
    assert_eq!(rs[0].status, Status::Fail, "{}", rs[0].reason);
    assert!(
        rs[0]
            .reason
            .contains("client: intent deny l4, observed allow"),
        "{}",
        rs[0].reason
    );
    assert!(rs[0].model_divergence);
}

#[tokio::test]
async fn hubble_silent_is_inconclusive_never_a_pass() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "backend/api",
        "database/postgres",
        Script::Answer(Outcome::Completed, vec![]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["db-api-select"])).await;
    assert_eq!(rs[0].status, Status::Inconclusive, "{}", rs[0].reason);
    assert!(rs[0].reason.contains("hubble"), "{}", rs[0].reason);
}

#[tokio::test]
async fn unreachable_relay_makes_every_scenario_inconclusive() {
    let l = loaded("hardened");
    let bed = FakeBed::new(&l, false);
    let rs = run(
        &bed,
        &l.model,
        &only(&l, &["db-api-select", "api-get-orders"]),
    )
    .await;
    for r in &rs {
        assert_eq!(r.status, Status::Inconclusive, "{}: {}", r.id, r.reason);
        assert!(r.reason.contains("Relay unreachable"), "{}", r.reason);
    }
}

#[tokio::test]
async fn lost_events_make_an_allow_inconclusive() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "backend/api",
        "database/postgres",
        Script::Answer(Outcome::Completed, vec![Kind::Lost]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["db-api-select"])).await;
    assert_eq!(rs[0].status, Status::Inconclusive, "{}", rs[0].reason);
}

#[tokio::test]
async fn a_hung_probe_is_bounded_and_inconclusive() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    // The fake exec never ends and ignores its deadline: only the runner can end it (budget 3 s + 0.5 s).
    set(&mut bed, "backend/api", "database/postgres", Script::Hang);
    let started = std::time::Instant::now();
    let rs = tokio::time::timeout(
        Duration::from_secs(10),
        run(&bed, &l.model, &only(&l, &["db-api-select"])),
    )
    .await
    .expect("the runner must bound a probe whose command never ends");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rs[0].status, Status::Inconclusive, "{}", rs[0].reason);
    assert!(
        rs[0].reason.contains("probe could not run") && rs[0].reason.contains("abandoned"),
        "{}",
        rs[0].reason
    );
    assert_eq!(
        bed.in_flight.lock().expect("lock").values().sum::<usize>(),
        0,
        "the abandoned probe is no longer in flight"
    );
}

#[tokio::test]
async fn a_pod_that_never_became_ready_is_inconclusive_and_named() {
    let l = loaded("hardened");
    let bed = FakeBed::new(&l, true);
    let rs = run(&bed, &l.model, &only(&l, &["kafka-reporting-produce"])).await;
    assert_eq!(rs[0].status, Status::Inconclusive);
    assert!(rs[0].reason.contains("no Ready pod"), "{}", rs[0].reason);
}

#[tokio::test]
async fn a_flow_of_an_endpoint_whose_policy_cilium_cannot_compute_is_inconclusive_without_a_probe()
{
    let l = loaded("hardened");
    // HTTP rules for the selector (written in another order) the hardened kafka-ingress gives Kafka rules
    // on 9092.
    let conflicting = harness::policy::parse_policies(
        Path::new("conflict.yaml"),
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http-too, namespace: kafka}
spec:
  endpointSelector: {matchLabels: {app: kafka}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: backend-api, k8s:io.kubernetes.pod.namespace: backend}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        http: [{method: GET}]
"#,
    )
    .expect("parses");
    let mut policies = l.policies.clone();
    policies.extend(conflicting);
    let model = Model::build(&policies, l.model.identities.clone(), l.model.version);
    let bed = FakeBed::new(&l, true);
    let ids = ["kafka-api-produce-orders", "api-get-orders"];
    let rs = run(&bed, &model, &only(&l, &ids)).await;
    let kafka = rs.iter().find(|r| r.id == ids[0]).expect("kafka result");
    assert_eq!(kafka.status, Status::Inconclusive, "{}", kafka.reason);
    assert!(
        kafka
            .reason
            .contains("cannot compute the policy of kafka/kafka"),
        "{}",
        kafka.reason
    );
    assert!(kafka.client.is_none(), "no probe ran: {:?}", kafka.client);
    // `check` counts it as a gap.
    let scenario = &only(&l, &ids[..1])[0];
    let (met, why) = check::judge(scenario, &kafka.model);
    assert!(!met && why.contains("previous policy"), "{why}");
    // A flow between other endpoints is run as usual.
    let other = rs.iter().find(|r| r.id == ids[1]).expect("other result");
    assert_eq!(other.model.endpoint_policy_error, None);
    assert!(other.client.is_some(), "{}", other.reason);
}

#[tokio::test]
async fn scenarios_needing_a_missing_outside_host_are_not_applicable() {
    let l = loaded("hardened");
    let bed = FakeBed::new(&l, true);
    let rs = run(&bed, &l.model, &only(&l, &["edge-outsider-https"])).await;
    assert_eq!(rs[0].status, Status::NotApplicable);
    assert!(
        rs[0].reason.contains("no outside hosts"),
        "{}",
        rs[0].reason
    );
}

#[tokio::test]
async fn a_policy_rejected_at_apply_still_gives_a_results_document() {
    let l = loaded("hardened");
    let env = runner::environment("1.19.8", "hardened");
    let r = runner::setup_failed(
        env,
        &l.model,
        &l.scenarios,
        "kafka/kafka-ingress rejected: .spec.ingress[0].toPorts[0].rules.kafka: field not declared in schema",
    );
    assert_eq!(r.summary.inconclusive, r.scenarios.len());
    assert!(r.scenarios.iter().all(|s| s.reason.contains("rejected")));
    assert_eq!(r.kind, harness::results::ResultsKind::Run);
}

#[tokio::test]
async fn probes_hubble_could_confuse_never_overlap() {
    let l = loaded("hardened");
    let bed = FakeBed::new(&l, true);
    // Five scenarios from the frontend to the API on 8080 share a tuple; others run beside them.
    let ids = [
        "api-get-orders",
        "api-post-orders",
        "api-put-order",
        "api-patch-order",
        "api-get-admin",
        "db-api-select",
        "edge-lb-https",
    ];
    let scenarios = only(&l, &ids);
    let rs = run(&bed, &l.model, &scenarios).await;
    assert_eq!(rs.len(), ids.len());
    assert_eq!(bed.max_in_flight_per_key.load(Ordering::SeqCst), 1);
    let order: Vec<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        rs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        order,
        "results keep scenario order"
    );
}

#[tokio::test]
async fn hubble_metrics_scenario_checks_every_agent() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    let node = |n: &str, m: &[&str]| NodeMetrics {
        node: n.into(),
        metrics: m.iter().map(|s| s.to_string()).collect(),
    };
    Arc::get_mut(&mut bed).expect("unique").metrics = Ok(vec![
        node("w1", &["drop", "tcp", "dns"]),
        node("w2", &["drop", "tcp"]),
    ]);
    let rs = run(&bed, &l.model, &only(&l, &["obs-hubble-metrics"])).await;
    assert_eq!(rs[0].status, Status::Fail);
    assert!(rs[0].reason.contains("w2 lacks dns"), "{}", rs[0].reason);
    Arc::get_mut(&mut bed).expect("unique").metrics = Ok(vec![node("w1", &["drop", "tcp", "dns"])]);
    let rs = run(&bed, &l.model, &only(&l, &["obs-hubble-metrics"])).await;
    assert_eq!(rs[0].status, Status::Pass, "{}", rs[0].reason);
}

#[tokio::test]
async fn seed_posture_observations_that_match_the_model_are_reported_as_failures_not_divergences() {
    // On the seed posture the model predicts the outsider reaches the frontend; a cluster that agrees is a
    // failure of the intent but no model divergence.
    let l = loaded("seed");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "attacker/attacker",
        "frontend/frontend",
        Script::Answer(Outcome::Completed, vec![Kind::Forwarded]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["edge-attacker-https"])).await;
    assert_eq!(rs[0].status, Status::Fail, "{}", rs[0].reason);
    assert!(!rs[0].model_divergence, "{}", rs[0].reason);
}

#[tokio::test]
async fn the_summary_counts_not_applicable_apart_and_never_as_passed() {
    let l = loaded("hardened");
    let bed = FakeBed::new(&l, true);
    let rs = run(
        &bed,
        &l.model,
        &only(&l, &["edge-outsider-https", "db-api-select"]),
    )
    .await;
    let doc = runner::results(runner::environment("1.19.8", "hardened"), &l.model, rs);
    assert_eq!(
        (doc.summary.pass, doc.summary.not_applicable),
        (1, 1),
        "{:?}",
        doc.summary
    );
    let refs: Vec<&harness::results::ScenarioResult> = doc.scenarios.iter().collect();
    let line = harness::report::counts_text(doc.kind, &refs);
    assert!(
        line.contains("1 pass") && line.contains("1 not applicable"),
        "{line}"
    );
    let accept = harness::runner::accept::AcceptNotApplicable::none();
    assert!(!harness::runner::accept::run_succeeded(
        &doc.scenarios,
        false,
        &accept
    ));
}

#[tokio::test]
async fn a_last_event_hubble_holds_back_is_brought_out_by_a_nudge() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "frontend/frontend",
        "backend/api",
        Script::HeldBack(Outcome::ProxyDenied, vec![Kind::Http { denied: true }]),
    );
    let started = std::time::Instant::now();
    let rs = runner::run(
        bed.as_ref(),
        &l.model,
        &only(&l, &["api-delete-order"]),
        &nudging(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(rs[0].status, Status::Pass, "{}", rs[0].reason);
    assert_eq!(bed.nudges.load(Ordering::SeqCst), 1);
    assert!(rs[0].hubble.as_ref().expect("hubble").nudged);
    // Decided on the nudge, not at the end of the 400 ms margin.
    assert!(took < Duration::from_millis(300), "took {took:?}");
}

#[tokio::test]
async fn without_a_nudge_a_held_back_last_event_leaves_the_verdict_inconclusive() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "frontend/frontend",
        "backend/api",
        Script::HeldBack(Outcome::ProxyDenied, vec![Kind::Http { denied: true }]),
    );
    let rs = run(&bed, &l.model, &only(&l, &["api-delete-order"])).await;
    assert_eq!(rs[0].status, Status::Inconclusive, "{}", rs[0].reason);
    assert_eq!(bed.nudges.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_verdict_hubble_gives_before_the_client_ends_sends_no_nudge() {
    let l = loaded("hardened");
    let mut bed = FakeBed::new(&l, true);
    set(
        &mut bed,
        "attacker/attacker",
        "backend/api",
        Script::DropUntilStopped(vec![Kind::IngressDrop]),
    );
    set(
        &mut bed,
        "frontend/frontend",
        "backend/api",
        Script::Answer(Outcome::ProxyDenied, vec![Kind::Http { denied: true }]),
    );
    let rs = runner::run(
        bed.as_ref(),
        &l.model,
        &only(&l, &["api-from-attacker", "api-delete-order"]),
        &nudging(),
    )
    .await;
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{}: {}", r.id, r.reason);
        assert!(!r.hubble.as_ref().expect("hubble").nudged, "{}", r.id);
    }
    assert_eq!(bed.nudges.load(Ordering::SeqCst), 0);
}
