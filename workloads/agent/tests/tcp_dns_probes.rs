//! TCP and DNS probes on loopback, plus unreachability inside a network namespace of the test's own.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;

use common::{agent_bin, closed_port, probe, responder, syn_dropping_port};
use probe_wire::{DnsQuery, DnsTransport, DnsType, Outcome, ProbeRequest, ProbeResult, ProbeSpec};

fn tcp(target: impl ToString) -> ProbeSpec {
    ProbeSpec::new(target.to_string(), ProbeRequest::Tcp)
}

#[test]
fn tcp_connects_to_a_listening_port() {
    let addr = responder(|_s| {});
    let r = probe(&tcp(addr));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    assert!(r.timings.connect_ms.is_some());
}

#[test]
fn tcp_to_a_closed_port_is_refused() {
    assert_eq!(probe(&tcp(closed_port())).outcome, Outcome::Refused);
}

#[test]
fn tcp_with_dropped_syns_is_a_connect_timeout() {
    let (addr, _l, _f) = syn_dropping_port();
    let mut spec = tcp(addr);
    spec.connect_timeout_ms = 300;
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::ConnectTimeout, "{}", r.detail);
    assert!(r.timings.total_ms < 1_000.0, "{:?}", r.timings);
}

#[test]
fn tcp_resolves_localhost_through_the_system_resolver() {
    let addr = responder(|_s| {});
    let r = probe(&tcp(format!("localhost:{}", addr.port())));
    assert!(
        matches!(r.outcome, Outcome::Completed | Outcome::Refused),
        "{}",
        r.detail
    );
    assert!(r.peer_addr.expect("resolved").ip().is_loopback());
}

/// Runs the probe inside a new network namespace whose loopback is down: every destination is
/// unreachable there, and no packet can leave it.
#[test]
fn tcp_without_a_route_is_unreachable() {
    let spec = tcp("127.0.0.1:80");
    let args = spec.to_args();
    let out = Command::new("unshare")
        .arg("--net")
        .arg(agent_bin())
        .args(&args[1..])
        .output()
        .expect("run unshare (util-linux); the test needs root or CAP_SYS_ADMIN for a network namespace");
    assert!(
        out.status.success(),
        "unshare --net failed (needs root or CAP_SYS_ADMIN): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ProbeResult::from_json(&String::from_utf8_lossy(&out.stdout)).expect("result");
    assert_eq!(r.outcome, Outcome::Unreachable, "{}", r.detail);
}

/// A UDP DNS server of the test's own: `ok.test` has an A record, `missing.test` is NXDOMAIN, anything
/// else gets no answer.
fn dns_server() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(answer) = dns_answer(&buf[..n]) {
                let _ = sock.send_to(&answer, from);
            }
        }
    });
    addr
}

fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    let name_end = 12 + query[12..].iter().position(|b| *b == 0)?;
    let qname = &query[12..name_end];
    let mut m = query[..name_end + 5].to_vec();
    m[2] = 0x81;
    if qname == b"\x02ok\x04test" {
        m[3] = 0x80;
        m[7] = 1; // ANCOUNT
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        Some(m)
    } else if qname == b"\x07missing\x04test" {
        m[3] = 0x83; // NXDOMAIN
        Some(m)
    } else {
        None
    }
}

fn dns(server: impl ToString, name: &str, transport: DnsTransport) -> ProbeSpec {
    let mut s = ProbeSpec::new(
        server.to_string(),
        ProbeRequest::Dns(DnsQuery {
            name: name.into(),
            qtype: DnsType::A,
            transport,
        }),
    );
    s.timeout_ms = 800;
    s
}

#[test]
fn dns_answers_are_completed_with_their_records() {
    let r = probe(&dns(dns_server(), "ok.test", DnsTransport::Udp));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    let d = r.dns.expect("dns details");
    assert_eq!(d.rcode_name, "NOERROR");
    assert_eq!(d.answers.len(), 1);
    assert_eq!(d.answers[0].data, "192.0.2.7");
    assert!(r.local_addr.is_some() && r.timings.first_byte_ms.is_some());
}

#[test]
fn nxdomain_is_a_dns_failure() {
    let r = probe(&dns(dns_server(), "missing.test", DnsTransport::Udp));
    assert_eq!(r.outcome, Outcome::DnsFailure, "{}", r.detail);
    assert_eq!(r.dns.expect("dns").rcode, 3);
}

#[test]
fn a_dns_server_that_stays_silent_is_no_response() {
    let r = probe(&dns(dns_server(), "silent.test", DnsTransport::Udp));
    assert_eq!(r.outcome, Outcome::NoResponse, "{}", r.detail);
}

#[test]
fn dns_to_a_closed_udp_port_is_refused() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let r = probe(&dns(port, "ok.test", DnsTransport::Udp));
    assert_eq!(r.outcome, Outcome::Refused, "{}", r.detail);
}

#[test]
fn dns_over_tcp_uses_length_prefixed_messages() {
    use std::io::{Read, Write};
    let addr = responder(|mut s| {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut q).is_err() {
            return;
        }
        if let Some(a) = dns_answer(&q) {
            let _ = s.write_all(&(a.len() as u16).to_be_bytes());
            let _ = s.write_all(&a);
        }
    });
    let r = probe(&dns(addr, "ok.test", DnsTransport::Tcp));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    assert!(r.timings.connect_ms.is_some());
}

/// The harness stops a deny probe by writing to the agent's stdin as soon as Hubble reports the drop:
/// the agent must stop at once and say that nothing had connected yet.
#[test]
fn a_line_on_stdin_stops_a_probe_early_and_reports_no_connection_yet() {
    use std::io::Write as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let (addr, _l, _f) = syn_dropping_port();
    let mut spec = tcp(addr);
    spec.connect_timeout_ms = 10_000;
    spec.timeout_ms = 20_000;
    spec.cancel_on_stdin = true;
    let args = spec.to_args();
    let started = Instant::now();
    let mut child = Command::new(agent_bin())
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("agent starts");
    std::thread::sleep(Duration::from_millis(300));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"stop\n")
        .expect("write to the agent's stdin");
    stdin.flush().expect("flush");
    let out = child.wait_with_output().expect("agent ends");
    drop(stdin);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let r =
        ProbeResult::from_json(String::from_utf8_lossy(&out.stdout).trim()).expect("result JSON");
    assert_eq!(r.outcome, Outcome::ConnectTimeout, "{}", r.detail);
    assert!(r.detail.contains("stopped by the harness"), "{}", r.detail);
}

/// Stopped after the connection was established (the server accepted but has not answered yet), the
/// agent must say so: a timeout after connect, never a connect timeout (which would read as an L4 deny).
#[test]
fn a_probe_stopped_after_it_connected_reports_a_timeout_not_a_connect_timeout() {
    use std::io::Write as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let addr = common::silent_responder();
    let mut spec = ProbeSpec::new(
        addr.to_string(),
        ProbeRequest::Http(probe_wire::HttpRequest::default()),
    );
    spec.connect_timeout_ms = 10_000;
    spec.timeout_ms = 20_000;
    spec.cancel_on_stdin = true;
    let args = spec.to_args();
    let started = Instant::now();
    let mut child = Command::new(agent_bin())
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("agent starts");
    // Loopback connects at once; the silent server then holds the request unanswered.
    std::thread::sleep(Duration::from_millis(500));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"stop\n")
        .expect("write to the agent's stdin");
    stdin.flush().expect("flush");
    let out = child.wait_with_output().expect("agent ends");
    drop(stdin);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r =
        ProbeResult::from_json(String::from_utf8_lossy(&out.stdout).trim()).expect("result JSON");
    assert_eq!(r.outcome, Outcome::Timeout, "{}", r.detail);
    assert!(
        r.detail.contains("stopped by the harness") && r.detail.contains("connected"),
        "{}",
        r.detail
    );
    assert!(r.timings.connect_ms.is_some(), "{:?}", r.timings);
}

#[test]
fn without_the_flag_a_closed_stdin_does_not_stop_the_probe() {
    let addr = responder(|_s| {});
    let spec = tcp(addr);
    assert!(!spec.to_args().iter().any(|a| a == "--cancel-on-stdin"));
    let out = Command::new(agent_bin())
        .args(&spec.to_args()[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("agent runs");
    let r =
        ProbeResult::from_json(String::from_utf8_lossy(&out.stdout).trim()).expect("result JSON");
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
}
