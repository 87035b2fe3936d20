//! What a runner tells the matcher about one probe: who talks to whom, on
//! which port, since when, and (optionally) which L7 request it sends.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::model::{Endpoint, Protocol};

/// One side of a probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A pod, by namespace and exact name.
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// Any pod of a namespace whose name starts with `prefix`, e.g. the pods
    /// of one Deployment (`api-`), when the backend behind a Service is not
    /// known in advance.
    PodPrefix {
        /// Namespace.
        namespace: String,
        /// Pod name prefix.
        prefix: String,
    },
    /// An address, e.g. a host outside the cluster (`10.0.1.10`).
    Ip(IpAddr),
}

impl Peer {
    /// A pod by namespace and name.
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> Peer {
        Peer::Pod {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Pods of a namespace whose names start with `prefix`.
    pub fn pod_prefix(namespace: impl Into<String>, prefix: impl Into<String>) -> Peer {
        Peer::PodPrefix {
            namespace: namespace.into(),
            prefix: prefix.into(),
        }
    }

    /// An IP address.
    pub fn ip(ip: IpAddr) -> Peer {
        Peer::Ip(ip)
    }

    /// Whether a flow endpoint is this peer.
    pub fn matches(&self, endpoint: &Endpoint) -> bool {
        match self {
            Peer::Pod { namespace, name } => {
                endpoint.pod_name == *name && endpoint.namespace == *namespace
            }
            Peer::PodPrefix { namespace, prefix } => {
                !endpoint.pod_name.is_empty()
                    && endpoint.pod_name.starts_with(prefix.as_str())
                    && endpoint.namespace == *namespace
            }
            Peer::Ip(ip) => endpoint.ip == Some(*ip),
        }
    }

    /// False only when the two peers certainly denote different endpoints.
    /// An IP and a pod may be the same endpoint, so they may overlap.
    pub fn may_overlap(&self, other: &Peer) -> bool {
        match (self, other) {
            (Peer::Ip(a), Peer::Ip(b)) => a == b,
            (
                Peer::Pod {
                    namespace: n1,
                    name: a,
                },
                Peer::Pod {
                    namespace: n2,
                    name: b,
                },
            ) => n1 == n2 && a == b,
            (
                Peer::Pod {
                    namespace: n1,
                    name,
                },
                Peer::PodPrefix {
                    namespace: n2,
                    prefix,
                },
            )
            | (
                Peer::PodPrefix {
                    namespace: n2,
                    prefix,
                },
                Peer::Pod {
                    namespace: n1,
                    name,
                },
            ) => n1 == n2 && name.starts_with(prefix.as_str()),
            (
                Peer::PodPrefix {
                    namespace: n1,
                    prefix: a,
                },
                Peer::PodPrefix {
                    namespace: n2,
                    prefix: b,
                },
            ) => n1 == n2 && (a.starts_with(b.as_str()) || b.starts_with(a.as_str())),
            (Peer::Ip(_), _) | (_, Peer::Ip(_)) => true,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Pod { namespace, name } => write!(f, "{namespace}/{name}"),
            Peer::PodPrefix { namespace, prefix } => write!(f, "{namespace}/{prefix}*"),
            Peer::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The L7 request a probe sends, when the port is subject to an L7 rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L7Request {
    /// An HTTP request. `path` is compared with the path of the URL Envoy
    /// logs (without scheme, authority and query); the method without case.
    Http {
        /// Method, e.g. `GET`.
        method: String,
        /// Path, e.g. `/v1/items`.
        path: String,
    },
    /// A Kafka request. `api_key` is the name Hubble reports (`produce`,
    /// `fetch`, `metadata`, ...), compared without case, `_` or `-`.
    Kafka {
        /// API key name.
        api_key: String,
        /// Topic; `None` matches any (and requests without topics).
        topic: Option<String>,
    },
    /// A DNS query through Cilium's DNS proxy. Compared without case and
    /// without the trailing dot.
    Dns {
        /// Queried name.
        query: String,
    },
}

impl fmt::Display for L7Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L7Request::Http { method, path } => write!(f, "HTTP {method} {path}"),
            L7Request::Kafka {
                api_key,
                topic: Some(topic),
            } => write!(f, "Kafka {api_key} topic {topic}"),
            L7Request::Kafka { api_key, .. } => write!(f, "Kafka {api_key}"),
            L7Request::Dns { query } => write!(f, "DNS {query}"),
        }
    }
}

/// One probe: a connection attempt whose Hubble verdict is wanted.
///
/// # Caveats
/// - Flows are attributed to a probe by endpoints, destination port and
///   protocol (plus source port when known, and the L7 request for L7
///   flows) and by time (`start`). Two probes that [`Probe::conflicts_with`]
///   each other cannot be told apart and must not run at the same time.
/// - `source` is matched against the flow's source as Hubble reports it: if
///   the packet is SNATed before Cilium sees it (e.g. NodePort traffic from
///   outside without `externalTrafficPolicy: Local`), give the translated
///   address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Client side.
    pub source: Peer,
    /// Server side (after Service translation: a pod or the real address).
    pub destination: Peer,
    /// Destination port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// When the probe started (flows before `start - clock_skew` are ignored).
    pub start: SystemTime,
    /// The client's source port, when known; restricts L3/L4 flows to it.
    /// L7 records are not restricted by it (the proxy may log another
    /// connection).
    pub source_port: Option<u16>,
    /// The L7 request, when the port is subject to an L7 rule.
    pub l7: Option<L7Request>,
}

impl Probe {
    /// A TCP probe.
    pub fn tcp(source: Peer, destination: Peer, port: u16, start: SystemTime) -> Probe {
        Probe {
            source,
            destination,
            port,
            protocol: Protocol::Tcp,
            start,
            source_port: None,
            l7: None,
        }
    }

    /// A UDP probe.
    pub fn udp(source: Peer, destination: Peer, port: u16, start: SystemTime) -> Probe {
        Probe {
            protocol: Protocol::Udp,
            ..Probe::tcp(source, destination, port, start)
        }
    }

    /// Sets the known client source port.
    pub fn with_source_port(mut self, port: u16) -> Probe {
        self.source_port = Some(port);
        self
    }

    /// Sets the L7 request.
    pub fn with_l7(mut self, request: L7Request) -> Probe {
        self.l7 = Some(request);
        self
    }

    /// True when flows of the two probes could be mistaken for each other,
    /// so a runner must not run them at the same time:
    /// same protocol and port, endpoints that may overlap, and
    /// - for L3/L4 probes: no distinct known source ports;
    /// - for L7 probes: the same L7 request (source ports do not help, the
    ///   proxy's records may come from another connection);
    /// - an L7 probe and an L3/L4 probe on the same tuple always conflict.
    pub fn conflicts_with(&self, other: &Probe) -> bool {
        if self.protocol != other.protocol
            || self.port != other.port
            || !self.source.may_overlap(&other.source)
            || !self.destination.may_overlap(&other.destination)
        {
            return false;
        }
        match (&self.l7, &other.l7) {
            (Some(a), Some(b)) => a == b,
            (None, None) => match (self.source_port, other.source_port) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            },
            _ => true,
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(port) = self.source_port {
            write!(f, ":{port}")?;
        }
        write!(
            f,
            " -> {}:{}/{}",
            self.destination, self.port, self.protocol
        )?;
        if let Some(l7) = &self.l7 {
            write!(f, " {l7}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn probe(dst: &str, port: u16) -> Probe {
        Probe::tcp(
            Peer::pod("a", "client"),
            Peer::pod("b", dst),
            port,
            UNIX_EPOCH,
        )
    }

    #[test]
    fn same_tuple_without_source_port_conflicts() {
        assert!(probe("api-0", 80).conflicts_with(&probe("api-0", 80)));
        assert!(!probe("api-0", 80).conflicts_with(&probe("api-0", 81)));
        assert!(!probe("api-0", 80).conflicts_with(&probe("api-1", 80)));
    }

    #[test]
    fn distinct_source_ports_separate_l34_probes_only() {
        let a = probe("api-0", 80).with_source_port(40000);
        let b = probe("api-0", 80).with_source_port(40001);
        assert!(!a.conflicts_with(&b));
        let get = L7Request::Http {
            method: "GET".into(),
            path: "/".into(),
        };
        assert!(
            a.clone()
                .with_l7(get.clone())
                .conflicts_with(&b.clone().with_l7(get))
        );
    }

    #[test]
    fn different_l7_requests_on_one_tuple_do_not_conflict() {
        let get = probe("api-0", 80).with_l7(L7Request::Http {
            method: "GET".into(),
            path: "/a".into(),
        });
        let post = probe("api-0", 80).with_l7(L7Request::Http {
            method: "POST".into(),
            path: "/a".into(),
        });
        assert!(!get.conflicts_with(&post));
        assert!(get.conflicts_with(&probe("api-0", 80)));
    }

    #[test]
    fn ip_peer_may_be_any_pod() {
        let by_ip = Probe::tcp(
            Peer::pod("a", "client"),
            Peer::ip("10.244.1.5".parse().unwrap()),
            80,
            UNIX_EPOCH,
        );
        assert!(by_ip.conflicts_with(&probe("api-0", 80)));
    }
}
