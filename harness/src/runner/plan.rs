//! From a scenario to the probe the agent runs and the flows Hubble should show.

use std::net::IpAddr;
use std::time::SystemTime;

use probe_wire::{
    DnsQuery, DnsTransport, DnsType, ExactVersions, HttpHeader, HttpRequest, HttpsRequest,
    KafkaAction as WireKafkaAction, KafkaClient, KafkaRequest, PostgresQuery, ProbeRequest,
    ProbeSpec,
};

use crate::model::Verdict;
use crate::model::kafka::{self, KafkaAction};
use crate::scenario::{Request, Scenario};

/// Timeouts of the probes of a run.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTimeouts {
    pub connect_ms: u64,
    pub total_ms: u64,
}

impl Default for ProbeTimeouts {
    fn default() -> Self {
        ProbeTimeouts {
            connect_ms: probe_wire::DEFAULT_CONNECT_TIMEOUT_MS,
            total_ms: probe_wire::DEFAULT_TIMEOUT_MS,
        }
    }
}

fn http_request(h: &crate::scenario::HttpSpec) -> HttpRequest {
    HttpRequest {
        method: h.method.clone(),
        path: h.path.clone(),
        headers: h
            .headers
            .iter()
            .map(|(k, v)| HttpHeader {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        body: h.body.clone(),
        // Filled in on load (scenario::default_authority): the model evaluates `host:` rules on it.
        host_header: h.host.clone(),
    }
}

/// The agent probe for a scenario whose destination is at `ip`.
pub fn probe_spec(
    s: &Scenario,
    request: &Request,
    ip: IpAddr,
    port: u16,
    t: ProbeTimeouts,
) -> ProbeSpec {
    let target = match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let req = match request {
        Request::Http(h) => ProbeRequest::Http(http_request(h)),
        Request::Https(h) => ProbeRequest::Https(HttpsRequest {
            http: http_request(h),
            sni: None,
        }),
        Request::Tcp {} => ProbeRequest::Tcp,
        Request::Postgres(p) => ProbeRequest::Postgres(PostgresQuery {
            user: p.user.clone(),
            database: p.database.clone(),
            password: None,
            query: p.query.clone(),
        }),
        Request::Kafka(k) => ProbeRequest::Kafka(KafkaRequest {
            // The exact mode sends what the model evaluates: Metadata, then Produce or ListOffsets + Fetch
            // (see model::kafka::requests_for), at versions inside Cilium's parser range.
            client: KafkaClient::Exact(ExactVersions::default()),
            action: match k.action {
                KafkaAction::Produce => WireKafkaAction::Produce {
                    message: format!("harness scenario {}", s.id),
                },
                KafkaAction::Consume => WireKafkaAction::Consume,
            },
            topic: k.topic.clone(),
            partition: 0,
            client_id: k.client_id.clone(),
        }),
        // Refused when scenarios are loaded (scenario::validate): only eval queries carry it.
        Request::KafkaRequests(_) => {
            unreachable!("a scenario with kafkaRequests is refused on load")
        }
        Request::Dns(d) => ProbeRequest::Dns(DnsQuery {
            name: d.query.clone(),
            qtype: DnsType::A,
            transport: DnsTransport::Udp,
        }),
    };
    ProbeSpec {
        target,
        connect_timeout_ms: t.connect_ms,
        timeout_ms: t.total_ms,
        request: req,
        cancel_on_stdin: false,
    }
}

/// The L7 request Hubble will log, when the model says the flow is proxied.
pub fn hubble_l7(request: &Request, model: &Verdict) -> Option<hubble::L7Request> {
    if !model.proxied {
        return None;
    }
    match request {
        Request::Http(h) => Some(hubble::L7Request::Http {
            method: h.method.clone(),
            path: h.path.split('?').next().unwrap_or(&h.path).to_string(),
        }),
        Request::Kafka(k) => {
            // The request that decides: the one the model says is refused, else the last one of the session
            // (Produce or Fetch), which is only sent when everything before it was allowed.
            let key = model.denied_kafka_key.clone().unwrap_or_else(|| {
                let reqs = kafka::requests_for(k.action, &k.topic, &k.client_id);
                kafka::api_key_name(reqs.last().map_or(kafka::PRODUCE, |r| r.api_key))
            });
            Some(hubble::L7Request::Kafka {
                api_key: key,
                topic: Some(k.topic.clone()),
            })
        }
        Request::Dns(d) => Some(hubble::L7Request::Dns {
            query: d.query.clone(),
        }),
        _ => None,
    }
}

/// The Hubble probe description of a scenario.
pub fn hubble_probe(
    source: hubble::Peer,
    destination: hubble::Peer,
    port: u16,
    request: &Request,
    model: &Verdict,
    start: SystemTime,
) -> hubble::Probe {
    let p = match request.protocol() {
        crate::policy::Protocol::Udp => hubble::Probe::udp(source, destination, port, start),
        _ => hubble::Probe::tcp(source, destination, port, start),
    };
    match hubble_l7(request, model) {
        Some(l7) => p.with_l7(l7),
        None => p,
    }
}
