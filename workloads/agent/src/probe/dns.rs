//! `agent probe dns`: one DNS query to the target server, over UDP (default) or TCP.

use probe_wire::{DnsDetails, DnsQuery, DnsTransport, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::timeout_at;

use super::{Report, Verdict};
use crate::classify::{self, Phase};
use crate::clock::Clock;
use crate::dnswire::{self, DnsWireError};
use crate::net::{self, Failure, Target};
use crate::timed::{FirstByte, Timed};

pub(super) async fn probe(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    q: &DnsQuery,
) -> Verdict {
    let id = query_id();
    let query = dnswire::build_query(id, &q.name, q.qtype.code())
        .map_err(|e| Failure::new(Outcome::ProtocolError, e.to_string()))?;
    let answer = match q.transport {
        DnsTransport::Udp => udp(target, clock, report, id, &query).await?,
        DnsTransport::Tcp => tcp(target, clock, report, &query).await?,
    };
    let response = dnswire::parse_response(id, &answer)
        .map_err(|e| Failure::new(Outcome::DnsFailure, format!("malformed DNS answer: {e}")))?;
    let outcome = classify::dns_rcode(response.rcode);
    let rcode_name = classify::dns_rcode_name(response.rcode);
    let n = response.answers.len();
    report.dns = Some(DnsDetails {
        rcode: response.rcode,
        rcode_name: rcode_name.clone(),
        answers: response.answers,
    });
    match outcome {
        Outcome::Completed => Ok(format!(
            "{rcode_name}, {n} answer record(s) for {} {}{}",
            q.name,
            q.qtype.as_str(),
            if response.truncated {
                " (truncated)"
            } else {
                ""
            }
        )),
        other => Err(Failure::new(
            other,
            format!(
                "the server answered {rcode_name} for {} {}",
                q.name,
                q.qtype.as_str()
            ),
        )),
    }
}

/// A query id that differs between runs.
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(16) ^ (nanos >> 16)) as u16
}

/// Sends the query in one datagram and waits, until the overall deadline, for a datagram answering it
/// (other datagrams are ignored). An ICMP port unreachable shows as "refused".
async fn udp(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    id: u16,
    query: &[u8],
) -> Result<Vec<u8>, Failure> {
    let server = net::resolve(target, clock).await?;
    report.peer = Some(server);
    let bind: std::net::SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let what = format!("querying {server} over UDP");
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| Failure::io(&e, Phase::Connect, &what))?;
    sock.connect(server)
        .await
        .map_err(|e| Failure::io(&e, Phase::Connect, &what))?;
    report.local = sock.local_addr().ok();
    let seen = FirstByte::default();
    report.first_byte = Some(seen.clone());
    sock.send(query)
        .await
        .map_err(|e| Failure::io(&e, Phase::Connect, &what))?;
    let mut buf = vec![0u8; 65_535];
    loop {
        match timeout_at(clock.deadline(), sock.recv(&mut buf)).await {
            Err(_) => {
                return Err(Failure::new(
                    Outcome::NoResponse,
                    format!("{what}: no answer before the deadline"),
                ));
            }
            Ok(Err(e)) => return Err(Failure::io(&e, Phase::Connect, &what)),
            Ok(Ok(n)) => {
                seen.mark();
                match dnswire::parse_response(id, &buf[..n]) {
                    Err(DnsWireError::NotOurs(_)) => continue,
                    _ => return Ok(buf[..n].to_vec()),
                }
            }
        }
    }
}

/// Sends the query over TCP (two-byte length prefix each way).
async fn tcp(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    query: &[u8],
) -> Result<Vec<u8>, Failure> {
    let c = match net::connect(target, clock).await {
        Ok(c) => c,
        Err(e) => return Err(report.connect_failed(e)),
    };
    report.connected(&c);
    let (mut stream, seen) = Timed::new(c.stream);
    report.first_byte = Some(seen);
    let exchange = async {
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut msg = vec![0u8; usize::from(len)];
        stream.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    };
    match timeout_at(clock.deadline(), exchange).await {
        Err(_) => Err(Failure::new(
            Outcome::Timeout,
            "connected, but no DNS answer before the deadline",
        )),
        Ok(Err(e)) => Err(Failure::io(&e, Phase::Exchange, "DNS over TCP failed")),
        Ok(Ok(msg)) => Ok(msg),
    }
}
