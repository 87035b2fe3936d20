//! A small authoritative DNS server for the lab's kube-dns pod: answers A queries for the names it is
//! given (`--record NAME=IPV4`), NXDOMAIN for any other name, over UDP and TCP on the same port.
//!
//! It stands in for CoreDNS where none runs (the lab): what the scenarios test is whether a pod may ask
//! kube-dns at all and which names Cilium's DNS proxy lets through, not how a cluster resolves them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The records served: lower-case name without the trailing dot → address.
pub type Records = BTreeMap<String, Ipv4Addr>;

/// Parses `NAME=IPV4` arguments.
///
/// # Errors
/// An argument without `=` or with an address that is not IPv4.
pub fn parse_records(args: &[String]) -> anyhow::Result<Records> {
    let mut out = Records::new();
    for a in args {
        let (name, ip) = a
            .split_once('=')
            .with_context(|| format!("--record {a}: expected NAME=IPV4"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .with_context(|| format!("--record {a}: {ip} is not an IPv4 address"))?;
        out.insert(normalise(name), ip);
    }
    Ok(out)
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The answer to one query message, or `None` when the message is too short or malformed to answer.
pub fn answer(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if qdcount != 1 {
        return None;
    }
    // The question: labels, then QTYPE and QCLASS.
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let question = query.get(12..question_end)?;
    let name = labels.join(".");
    let found = records.get(&name).copied();
    let rd = query[2] & 0x01;
    let mut m = Vec::with_capacity(question_end + 16);
    m.extend_from_slice(&query[0..2]); // id
    m.push(0x84 | rd); // QR, AA, RD as asked
    let rcode = if found.is_some() { 0 } else { 3 };
    m.push(rcode); // RA clear, NXDOMAIN when unknown
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    let an: u16 = u16::from(found.is_some() && qtype == 1);
    m.extend_from_slice(&an.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(question);
    if let (Some(ip), 1) = (found, an) {
        m.extend_from_slice(&[0xc0, 12]); // pointer to the question's name
        m.extend_from_slice(&1u16.to_be_bytes()); // A
        m.extend_from_slice(&1u16.to_be_bytes()); // IN
        m.extend_from_slice(&30u32.to_be_bytes()); // TTL
        m.extend_from_slice(&4u16.to_be_bytes());
        m.extend_from_slice(&ip.octets());
    }
    Some(m)
}

/// Serves DNS on `port` (UDP and TCP) until the process ends, and /healthz on `health_port`.
///
/// # Errors
/// A port cannot be bound.
pub async fn serve(
    addr: IpAddr,
    port: u16,
    health_port: u16,
    records: Records,
) -> anyhow::Result<()> {
    let sock = SocketAddr::new(addr, port);
    let udp = tokio::net::UdpSocket::bind(sock)
        .await
        .with_context(|| format!("cannot bind UDP {sock}"))?;
    let tcp = tokio::net::TcpListener::bind(sock)
        .await
        .with_context(|| format!("cannot bind TCP {sock}"))?;
    let records = std::sync::Arc::new(records);
    let udp_records = records.clone();
    let udp_loop = async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(reply) = answer(&buf[..n], &udp_records) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    };
    let tcp_loop = async move {
        loop {
            let Ok((mut conn, _)) = tcp.accept().await else {
                continue;
            };
            let records = records.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while conn.read_exact(&mut len).await.is_ok() {
                    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if conn.read_exact(&mut msg).await.is_err() {
                        return;
                    }
                    let Some(reply) = answer(&msg, &records) else {
                        return;
                    };
                    let Ok(n) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if conn.write_all(&n.to_be_bytes()).await.is_err()
                        || conn.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    };
    tokio::select! {
        () = udp_loop => Ok(()),
        () = tcp_loop => Ok(()),
        r = super::idle(addr, health_port) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnswire::{build_query, parse_response};

    fn records() -> Records {
        parse_records(&["api.backend.svc.cluster.local=10.244.0.9".to_string()]).unwrap()
    }

    #[test]
    fn a_known_name_is_answered_with_its_address() {
        let q = build_query(7, "API.backend.svc.cluster.local.", 1).unwrap();
        let r = parse_response(7, &answer(&q, &records()).unwrap()).unwrap();
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answers.len(), 1, "{r:?}");
    }

    #[test]
    fn an_unknown_name_is_nxdomain_with_no_answer() {
        let q = build_query(9, "kafka.kafka.svc.cluster.local", 1).unwrap();
        let r = parse_response(9, &answer(&q, &records()).unwrap()).unwrap();
        assert_eq!(r.rcode, 3);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn a_truncated_query_gets_no_answer() {
        assert!(answer(&[0, 1, 2], &records()).is_none());
    }

    #[test]
    fn a_record_argument_without_an_ipv4_address_is_refused() {
        assert!(parse_records(&["x=not-an-ip".into()]).is_err());
        assert!(parse_records(&["no-equals".into()]).is_err());
    }
}
