//! Targets, name resolution and TCP connect with classified failures.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use probe_wire::Outcome;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::classify::{self, Phase};
use crate::clock::Clock;

/// `EINPROGRESS` on Linux: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

/// A probe target, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// IP address (without brackets) or DNS name.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Why a target string is not `host:port`.
#[derive(Debug, thiserror::Error)]
#[error("target {0:?} is not host:port (IPv6 in brackets, e.g. [::1]:80)")]
pub struct TargetError(String);

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TargetError(s.to_owned());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (h, p)
        } else {
            s.rsplit_once(':').ok_or_else(bad)?
        };
        if host.is_empty() || host.contains(':') && !s.starts_with('[') {
            return Err(bad());
        }
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// A classified failure: the outcome and a sentence saying what happened.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The outcome.
    pub outcome: Outcome,
    /// What happened.
    pub detail: String,
}

impl Failure {
    /// A failure with this outcome and detail.
    pub fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Failure {
            outcome,
            detail: detail.into(),
        }
    }

    /// Classifies an I/O error of `phase`; `what` says what was being done ("connecting to x").
    pub fn io(e: &std::io::Error, phase: Phase, what: &str) -> Self {
        Failure::new(classify::io_error(e, phase), format!("{what}: {e}"))
    }
}

/// Resolves the target to one socket address (the first the resolver returns), bounded by the overall
/// deadline.
///
/// # Errors
/// [`Outcome::NoResponse`] when the resolver got no answer before the deadline (what a dropped DNS
/// request looks like), [`Outcome::DnsFailure`] when the name does not resolve.
pub async fn resolve(target: &Target, clock: &Clock) -> Result<SocketAddr, Failure> {
    if let Some(ip) = target.ip() {
        return Ok(SocketAddr::new(ip, target.port));
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match timeout_at(clock.deadline(), lookup).await {
        Err(_) => Err(Failure::new(
            Outcome::NoResponse,
            format!(
                "resolving {} got no answer before the deadline",
                target.host
            ),
        )),
        Ok(Err(e)) => Err(Failure::new(
            Outcome::DnsFailure,
            format!("cannot resolve {}: {e}", target.host),
        )),
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| {
            Failure::new(
                Outcome::DnsFailure,
                format!("{} resolves to no address", target.host),
            )
        }),
    }
}

/// An established TCP connection.
#[derive(Debug)]
pub struct Connected {
    /// The stream (TCP_NODELAY set).
    pub stream: TcpStream,
    /// Local address.
    pub local: Option<SocketAddr>,
    /// Remote address.
    pub peer: SocketAddr,
    /// When the connection was established.
    pub at: Instant,
}

/// A connect that failed, with the addresses known at that point (the local ephemeral port is known even
/// when the SYN went unanswered, so the harness can find the dropped flow in Hubble).
#[derive(Debug)]
pub struct ConnectFailed {
    /// What happened.
    pub failure: Failure,
    /// Local address, when a port had been bound.
    pub local: Option<SocketAddr>,
    /// Remote address, when resolution succeeded.
    pub peer: Option<SocketAddr>,
}

/// Resolves `target` and connects to it, the connect bounded by the clock's connect deadline.
///
/// # Errors
/// A classified [`ConnectFailed`]: [`Outcome::ConnectTimeout`] when the SYN went unanswered,
/// [`Outcome::Refused`] on RST, [`Outcome::Unreachable`] on ICMP unreachable or no route, and the
/// resolution failures of [`resolve`].
pub async fn connect(target: &Target, clock: &Clock) -> Result<Connected, ConnectFailed> {
    let peer = resolve(target, clock)
        .await
        .map_err(|failure| ConnectFailed {
            failure,
            local: None,
            peer: None,
        })?;
    connect_addr(peer, clock).await
}

/// Connects to `peer`, bounded by the clock's connect deadline.
///
/// # Errors
/// See [`connect`].
pub async fn connect_addr(peer: SocketAddr, clock: &Clock) -> Result<Connected, ConnectFailed> {
    let what = format!("connecting to {peer}");
    let fail = |failure: Failure, local: Option<SocketAddr>| ConnectFailed {
        failure,
        local,
        peer: Some(peer),
    };
    let io_fail = |e: &std::io::Error, local| fail(Failure::io(e, Phase::Connect, &what), local);
    let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| io_fail(&e, None))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io_fail(&e, None))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| io_fail(&e, None))?;
    let started = socket.connect(&peer.into());
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| a.port() != 0);
    match started {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(io_fail(&e, local)),
    }
    let std_stream: std::net::TcpStream = socket.into();
    let stream = TcpStream::from_std(std_stream).map_err(|e| io_fail(&e, local))?;
    let deadline = clock.connect_deadline();
    match timeout_at(deadline, stream.writable()).await {
        Err(_) => {
            return Err(fail(
                Failure::new(
                    Outcome::ConnectTimeout,
                    format!("{what}: no answer to the SYN within the connect timeout"),
                ),
                local,
            ));
        }
        Ok(Err(e)) => return Err(io_fail(&e, local)),
        Ok(Ok(())) => {}
    }
    if let Some(e) = stream.take_error().map_err(|e| io_fail(&e, local))? {
        return Err(io_fail(&e, local));
    }
    // A socket that is writable without an error is connected; peer_addr confirms it.
    if let Err(e) = stream.peer_addr() {
        return Err(io_fail(&e, local));
    }
    let local = stream.local_addr().ok().or(local);
    Ok(Connected {
        stream,
        local,
        peer,
        at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_names_ipv4_and_bracketed_ipv6() {
        let t: Target = "api.backend.svc:8080".parse().expect("name");
        assert_eq!((t.host.as_str(), t.port), ("api.backend.svc", 8080));
        let t: Target = "[::1]:443".parse().expect("v6");
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.to_string(), "[::1]:443");
        assert!("10.0.0.1".parse::<Target>().is_err());
        assert!("::1:80".parse::<Target>().is_err());
        assert!("host:99999".parse::<Target>().is_err());
        assert!(":80".parse::<Target>().is_err());
    }
}
