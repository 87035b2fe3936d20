//! `agent probe ...`: one probe, one classified [`ProbeResult`].
//!
//! Every probe gathers evidence into a [`Report`] and ends with one outcome. [`run`] bounds the whole
//! probe by its deadline (plus a small grace for the probe's own bookkeeping), so no probe can hang.

mod dns;
mod http;
mod kafka_exact;
mod kafka_rdkafka;
mod postgres;
mod tcp;

use std::net::SocketAddr;
use std::time::Duration;

use probe_wire::{
    DnsDetails, HttpDetails, KafkaDetails, Outcome, PostgresDetails, ProbeKind, ProbeRequest,
    ProbeResult, ProbeSpec, Timings, WIRE_VERSION,
};
use tokio::time::{Instant, timeout_at};

use crate::clock::Clock;
use crate::net::{ConnectFailed, Connected, Failure, Target};
use crate::timed::FirstByte;

pub use kafka_exact::validate_versions as validate_exact_versions;
pub use kafka_rdkafka::validate_config as validate_rdkafka_config;

/// Extra time granted past the deadline for a probe to classify and return what it has.
const GRACE: Duration = Duration::from_millis(300);

/// Evidence gathered by a probe while it runs.
#[derive(Debug)]
pub struct Report {
    clock: Clock,
    kind: ProbeKind,
    target: String,
    connected_at: Option<Instant>,
    first_byte: Option<FirstByte>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    http: Option<HttpDetails>,
    kafka: Option<KafkaDetails>,
    postgres: Option<PostgresDetails>,
    dns: Option<DnsDetails>,
}

impl Report {
    fn new(clock: Clock, kind: ProbeKind, target: String) -> Self {
        Report {
            clock,
            kind,
            target,
            connected_at: None,
            first_byte: None,
            local: None,
            peer: None,
            http: None,
            kafka: None,
            postgres: None,
            dns: None,
        }
    }

    /// Notes an established connection.
    fn connected(&mut self, c: &Connected) {
        self.connected_at = Some(c.at);
        self.local = c.local;
        self.peer = Some(c.peer);
    }

    /// Notes a failed connect and turns it into the failure.
    fn connect_failed(&mut self, c: ConnectFailed) -> Failure {
        self.local = self.local.or(c.local);
        self.peer = self.peer.or(c.peer);
        c.failure
    }

    fn finish(self, outcome: Outcome, detail: String) -> ProbeResult {
        let first_byte_ms = self
            .first_byte
            .as_ref()
            .and_then(FirstByte::at)
            .map(|t| self.clock.ms_at(t));
        ProbeResult {
            version: WIRE_VERSION,
            probe: self.kind,
            target: self.target,
            outcome,
            detail,
            timings: Timings {
                connect_ms: self.connected_at.map(|t| self.clock.ms_at(t)),
                first_byte_ms,
                total_ms: self.clock.elapsed_ms(),
            },
            local_addr: self.local,
            peer_addr: self.peer,
            http: self.http,
            kafka: self.kafka,
            postgres: self.postgres,
            dns: self.dns,
        }
    }
}

/// A probe's verdict before it is written into the result.
type Verdict = Result<String, Failure>;

/// Runs one probe and classifies what it saw. Never fails and never runs past the spec's deadline
/// (plus a grace of a few hundred milliseconds).
pub async fn run(spec: &ProbeSpec) -> ProbeResult {
    run_until(spec, std::future::pending()).await
}

/// Like [`run`], but stops early when `cancel` resolves (the caller closed stdin) and reports what was
/// seen until then: no connection yet is a connect timeout (for a UDP query: no response), a connection
/// without an answer is a timeout. The detail says that the harness stopped it and when.
pub async fn run_until(
    spec: &ProbeSpec,
    cancel: impl std::future::Future<Output = ()>,
) -> ProbeResult {
    let clock = Clock::start(spec.connect_timeout_ms, spec.timeout_ms);
    let mut report = Report::new(clock, spec.kind(), spec.target.clone());
    let target: Target = match spec.target.parse() {
        Ok(t) => t,
        Err(e) => return report.finish(Outcome::ProtocolError, e.to_string()),
    };
    let udp = matches!(&spec.request, ProbeRequest::Dns(q) if q.transport == probe_wire::DnsTransport::Udp);
    let verdict = {
        let work = timeout_at(
            clock.deadline() + GRACE,
            dispatch(spec, &target, &clock, &mut report),
        );
        tokio::select! {
            v = work => Some(v),
            () = cancel => None,
        }
    };
    let Some(verdict) = verdict else {
        let after = clock.elapsed_ms();
        let (outcome, what) = if report.connected_at.is_some() {
            (Outcome::Timeout, "connected, no complete answer yet")
        } else if udp {
            (Outcome::NoResponse, "no answer to the query yet")
        } else {
            (
                Outcome::ConnectTimeout,
                "no answer to the connection attempt yet",
            )
        };
        return report.finish(
            outcome,
            format!(
                "stopped by the harness after {after:.0} ms (signal on standard input): {what}"
            ),
        );
    };
    match verdict {
        Ok(Ok(detail)) => report.finish(Outcome::Completed, detail),
        Ok(Err(f)) => report.finish(f.outcome, f.detail),
        Err(_) => {
            let outcome = if report.connected_at.is_some() {
                Outcome::Timeout
            } else {
                Outcome::ConnectTimeout
            };
            report.finish(outcome, "the probe overran its deadline".to_owned())
        }
    }
}

async fn dispatch(
    spec: &ProbeSpec,
    target: &Target,
    clock: &Clock,
    report: &mut Report,
) -> Verdict {
    match &spec.request {
        ProbeRequest::Tcp => tcp::probe(target, clock, report).await,
        ProbeRequest::Http(req) => http::probe(target, clock, report, req, None).await,
        ProbeRequest::Https(req) => {
            http::probe(target, clock, report, &req.http, Some(req.sni.as_deref())).await
        }
        ProbeRequest::Dns(q) => dns::probe(target, clock, report, q).await,
        ProbeRequest::Postgres(q) => postgres::probe(target, clock, report, q).await,
        ProbeRequest::Kafka(k) => match &k.client {
            probe_wire::KafkaClient::Exact(v) => {
                kafka_exact::probe(target, clock, report, k, v).await
            }
            probe_wire::KafkaClient::Rdkafka(o) => {
                kafka_rdkafka::probe(target, clock, report, k, o).await
            }
        },
    }
}
