//! Typed CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy documents.
//!
//! The types follow the `cilium.io/v2` CRD field by field and reject unknown fields, so a typo is an error
//! with its file and line instead of a silently ignored rule (which is what the API server does with unknown
//! fields unless strict field validation is asked for). Values are checked where Cilium checks them: CIDRs,
//! ports, regular expressions (compiled here as Cilium's proxy runs them: RE2, full match), Kafka fields.
//!
//! Fields that Cilium accepts but the model does not evaluate (FQDN, service and node peers, TLS
//! interception, authentication, CIDR groups) are kept as "unmodelled" markers: they parse, and the model
//! says so when they could change a decision.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use crate::load::{self, InputError};

/// One policy as read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: PolicyKind,
    pub name: String,
    /// The namespace of a CiliumNetworkPolicy; `None` for a clusterwide policy.
    pub namespace: Option<String>,
    pub rules: Vec<Rule>,
    pub file: PathBuf,
    /// 1-based line where the document starts.
    pub line: u64,
}

impl Policy {
    /// `namespace/name` for a CNP, `name` for a CCNP.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

/// The document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    api_version: String,
    kind: PolicyKind,
    metadata: Metadata,
    spec: Option<Rule>,
    specs: Option<Vec<Rule>>,
    status: Option<IgnoredAny>,
}

// The exported-object fields are accepted and ignored.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Metadata {
    name: String,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    // Fields present when a policy is exported from a cluster; they carry no policy meaning.
    uid: Option<IgnoredAny>,
    resource_version: Option<IgnoredAny>,
    generation: Option<IgnoredAny>,
    creation_timestamp: Option<IgnoredAny>,
    managed_fields: Option<IgnoredAny>,
}

/// One rule (`spec`, or one element of `specs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub endpoint_selector: Option<Selector>,
    pub node_selector: Option<Selector>,
    pub ingress: Option<Vec<IngressRule>>,
    pub ingress_deny: Option<Vec<IngressDenyRule>>,
    pub egress: Option<Vec<EgressRule>>,
    pub egress_deny: Option<Vec<EgressDenyRule>>,
    pub enable_default_deny: Option<DefaultDeny>,
    pub description: Option<String>,
    #[serde(default, skip_serializing)]
    pub labels: Option<Vec<RuleLabel>>,
    pub log: Option<LogConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleLabel {
    pub key: String,
    pub value: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DefaultDeny {
    pub ingress: Option<bool>,
    pub egress: Option<bool>,
}

/// A Kubernetes label selector as Cilium reads it (keys may carry a source prefix such as `k8s:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<Requirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A field Cilium accepts that the model does not evaluate. Its presence is recorded.
#[derive(Debug, Clone, Default)]
pub struct Unmodelled;

impl<'de> Deserialize<'de> for Unmodelled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Ok(Unmodelled)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    pub from_endpoints: Option<Vec<Selector>>,
    #[serde(rename = "fromCIDR")]
    pub from_cidr: Option<Vec<Cidr>>,
    #[serde(rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    pub from_entities: Option<Vec<Entity>>,
    pub from_nodes: Option<Unmodelled>,
    pub from_groups: Option<Unmodelled>,
    pub from_requires: Option<Unmodelled>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub authentication: Option<Unmodelled>,
    pub to_ports: Option<Vec<PortRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressDenyRule {
    pub from_endpoints: Option<Vec<Selector>>,
    #[serde(rename = "fromCIDR")]
    pub from_cidr: Option<Vec<Cidr>>,
    #[serde(rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    pub from_entities: Option<Vec<Entity>>,
    pub from_nodes: Option<Unmodelled>,
    pub from_groups: Option<Unmodelled>,
    pub from_requires: Option<Unmodelled>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub to_ports: Option<Vec<PortDenyRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressRule {
    pub to_endpoints: Option<Vec<Selector>>,
    #[serde(rename = "toCIDR")]
    pub to_cidr: Option<Vec<Cidr>>,
    #[serde(rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    pub to_entities: Option<Vec<Entity>>,
    #[serde(rename = "toFQDNs")]
    pub to_fqdns: Option<Unmodelled>,
    pub to_services: Option<Unmodelled>,
    pub to_nodes: Option<Unmodelled>,
    pub to_groups: Option<Unmodelled>,
    pub to_requires: Option<Unmodelled>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub authentication: Option<Unmodelled>,
    pub to_ports: Option<Vec<PortRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressDenyRule {
    pub to_endpoints: Option<Vec<Selector>>,
    #[serde(rename = "toCIDR")]
    pub to_cidr: Option<Vec<Cidr>>,
    #[serde(rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    pub to_entities: Option<Vec<Entity>>,
    pub to_services: Option<Unmodelled>,
    pub to_nodes: Option<Unmodelled>,
    pub to_groups: Option<Unmodelled>,
    pub to_requires: Option<Unmodelled>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub to_ports: Option<Vec<PortDenyRule>>,
}

/// An `icmps` entry: ICMP types a rule admits (or denies) instead of ports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpRule {
    pub fields: Option<Vec<IcmpField>>,
}

/// One ICMP type of an `icmps` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpField {
    /// `IPv4` (the default) or `IPv6`.
    #[serde(default)]
    pub family: Option<IcmpFamily>,
    #[serde(rename = "type")]
    pub icmp_type: IcmpType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IcmpFamily {
    IPv4,
    IPv6,
}

/// An ICMP type: its code, or the CamelCase name Cilium accepts for the field's family.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IcmpType {
    Code(u8),
    Name(String),
}

/// ICMP type names Cilium accepts for IPv4, with their codes (`icmpIpv4TypeNameToCode`).
const ICMP4_NAMES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// ICMPv6 type names Cilium accepts, with their codes (`icmpIpv6TypeNameToCode`).
const ICMP6_NAMES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

impl IcmpField {
    /// The protocol of the field's family.
    pub fn protocol(&self) -> Protocol {
        match self.family {
            Some(IcmpFamily::IPv6) => Protocol::IcmpV6,
            _ => Protocol::Icmp,
        }
    }

    /// The type's code; `None` for a name that is not one of the family's.
    pub fn code(&self) -> Option<u8> {
        match &self.icmp_type {
            IcmpType::Code(c) => Some(*c),
            IcmpType::Name(n) => {
                let table = match self.family {
                    Some(IcmpFamily::IPv6) => ICMP6_NAMES,
                    _ => ICMP4_NAMES,
                };
                table.iter().find(|(name, _)| name == n).map(|(_, c)| *c)
            }
        }
    }
}

/// `toPorts` element of an allow rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortRule {
    pub ports: Option<Vec<PortProtocol>>,
    pub rules: Option<L7Rules>,
    #[serde(rename = "terminatingTLS")]
    pub terminating_tls: Option<Unmodelled>,
    #[serde(rename = "originatingTLS")]
    pub originating_tls: Option<Unmodelled>,
    pub server_names: Option<Unmodelled>,
    pub listener: Option<Unmodelled>,
}

/// `toPorts` element of a deny rule: ports only, there is no L7 deny.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortDenyRule {
    pub ports: Option<Vec<PortProtocol>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortProtocol {
    pub port: Option<PortSpec>,
    #[serde(default, deserialize_with = "end_port")]
    pub end_port: Option<u16>,
    pub protocol: Option<Protocol>,
}

/// A port number or a named port (resolved against the destination's container ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(u16),
    Named(String),
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Number(n) => write!(f, "{n}"),
            PortSpec::Named(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        if s.is_empty() {
            return Err(de::Error::custom("port: empty string"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<u16>().map(PortSpec::Number).map_err(|_| {
                de::Error::custom(format!("port: `{s}` is not a port number 0-65535"))
            });
        }
        let valid = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && s.bytes().any(|b| b.is_ascii_alphabetic())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        if !valid || s.len() > 15 {
            return Err(de::Error::custom(format!(
                "port: `{s}` is neither a port number nor a valid port name (letters, digits and single dashes, at most 15 characters)"
            )));
        }
        Ok(PortSpec::Named(s.to_ascii_lowercase()))
    }
}

fn end_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let n = Option::<i64>::deserialize(d)?;
    n.map(|n| {
        u16::try_from(n).map_err(|_| {
            de::Error::custom(format!(
                "endPort: `{n}` is not a port number 0-65535 (endPort is the last port of the range that starts at `port`)"
            ))
        })
    })
    .transpose()
}

/// A port number for a query or a scenario: an integer 1-65535.
///
/// # Errors
/// Anything else, with a message saying what a port may be.
pub fn port_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let s = StringOrNumber::deserialize(d)?.0;
    s.parse::<u16>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            de::Error::custom(format!(
                "port: `{s}` is not a port number 1-65535 (write the destination's numeric port; named ports are for policies)"
            ))
        })
}

/// Like [`port_number`], for an optional field (use with `#[serde(default)]`).
///
/// # Errors
/// See [`port_number`].
pub fn optional_port_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct P(u16);
    impl<'de> Deserialize<'de> for P {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            port_number(d).map(P)
        }
    }
    Ok(Option::<P>::deserialize(d)?.map(|p| p.0))
}

/// The readable part of a regex error: `unclosed group` instead of the multi-line rendering.
pub fn regex_error_text(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.lines().next().unwrap_or("syntax error"))
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled expression is larger than the limit of {limit} bytes")
        }
        other => other.to_string().replace('\n', " "),
    }
}

/// Accepts a YAML string or a bare number as text.
#[derive(Debug)]
struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = StringOrNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
    #[serde(rename = "VRRP")]
    Vrrp,
    #[serde(rename = "IGMP")]
    Igmp,
    /// Only from `icmps` rules and in queries: the CRD refuses ICMP in `toPorts`.
    #[serde(rename = "ICMP")]
    Icmp,
    #[serde(rename = "ICMPv6")]
    IcmpV6,
    #[serde(rename = "ANY")]
    Any,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Vrrp => "VRRP",
            Protocol::Igmp => "IGMP",
            Protocol::Icmp => "ICMP",
            Protocol::IcmpV6 => "ICMPv6",
            Protocol::Any => "ANY",
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L7Rules {
    pub http: Option<Vec<HttpRule>>,
    pub kafka: Option<Vec<KafkaRule>>,
    pub dns: Option<Vec<DnsRule>>,
    #[serde(rename = "l7proto")]
    pub l7proto: Option<String>,
    pub l7: Option<Unmodelled>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRule {
    pub method: Option<PolicyRegex>,
    pub path: Option<PolicyRegex>,
    pub host: Option<PolicyRegex>,
    pub headers: Option<Vec<String>>,
    pub header_matches: Option<Vec<HeaderMatch>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderMatch {
    pub name: String,
    pub value: Option<String>,
    pub secret: Option<SecretRef>,
    pub mismatch: Option<Mismatch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mismatch {
    #[serde(rename = "LOG")]
    Log,
    #[serde(rename = "ADD")]
    Add,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "REPLACE")]
    Replace,
}

/// A regular expression as Cilium's proxy applies it: RE2 syntax, matched against the whole value
/// (Envoy's `safe_regex` uses `RE2::FullMatch`; cilium-semantics.md §5).
#[derive(Debug, Clone)]
pub struct PolicyRegex {
    pub source: String,
    anchored: regex::Regex,
}

impl PolicyRegex {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let anchored = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(PolicyRegex {
            source: source.to_string(),
            anchored,
        })
    }

    /// Full match of the whole value.
    pub fn full_match(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }
}

impl<'de> Deserialize<'de> for PolicyRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Errors are reported for the expression as written, not for its anchored form.
        if let Err(e) = regex::Regex::new(&s) {
            return Err(de::Error::custom(format!(
                "invalid regular expression `{s}`: {} (Cilium's proxy uses RE2 syntax)",
                regex_error_text(&e)
            )));
        }
        PolicyRegex::new(&s).map_err(|e| {
            de::Error::custom(format!(
                "invalid regular expression `{s}`: {}",
                regex_error_text(&e)
            ))
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(try_from = "KafkaRuleRaw")]
pub struct KafkaRule {
    pub role: Option<KafkaRole>,
    /// The API key named by `apiKey`, as a number.
    pub api_key: Option<i16>,
    pub api_version: Option<i16>,
    pub client_id: Option<String>,
    pub topic: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KafkaRuleRaw {
    role: Option<String>,
    api_key: Option<String>,
    api_version: Option<StringOrNumber>,
    #[serde(rename = "clientID")]
    client_id: Option<String>,
    topic: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaRole {
    Produce,
    Consume,
}

impl TryFrom<KafkaRuleRaw> for KafkaRule {
    type Error = String;
    fn try_from(raw: KafkaRuleRaw) -> Result<Self, String> {
        let role = match raw.role.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(r) if r.eq_ignore_ascii_case("produce") => Some(KafkaRole::Produce),
            Some(r) if r.eq_ignore_ascii_case("consume") => Some(KafkaRole::Consume),
            Some(r) => {
                return Err(format!(
                    "kafka.role: `{r}` is not a role (Cilium knows `produce` and `consume`)"
                ));
            }
        };
        let api_key = match raw.api_key.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(k) => Some(crate::model::kafka::api_key_by_name(k).ok_or_else(|| {
                format!("kafka.apiKey: `{k}` is not an API key name Cilium knows (keys 0-33, e.g. produce, fetch, metadata)")
            })?),
        };
        if role.is_some() && api_key.is_some() {
            return Err("kafka: `role` and `apiKey` are mutually exclusive".into());
        }
        let api_version =
            match raw.api_version.map(|v| v.0).filter(|s| !s.is_empty()) {
                None => None,
                Some(v) => Some(v.parse::<i16>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    format!("kafka.apiVersion: `{v}` is not a non-negative integer")
                })?),
            };
        let topic = raw.topic.filter(|t| !t.is_empty());
        if let Some(t) = &topic {
            let ok = t.len() <= 255
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
            if !ok {
                return Err(format!(
                    "kafka.topic: `{t}` is not a valid topic name ([a-zA-Z0-9._-], at most 255 characters; no wildcards)"
                ));
            }
        }
        Ok(KafkaRule {
            role,
            api_key,
            api_version,
            client_id: raw.client_id.filter(|c| !c.is_empty()),
            topic,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsRule {
    pub match_name: Option<String>,
    pub match_pattern: Option<String>,
}

/// A CIDR prefix (a bare address is taken as a host prefix, as Cilium does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(de::Error::custom(format!("`{s}` is not a CIDR prefix")))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CidrRule {
    pub cidr: Option<Cidr>,
    pub except: Option<Vec<Cidr>>,
    pub cidr_group_ref: Option<String>,
    pub cidr_group_selector: Option<Selector>,
}

/// Special peers without individual identities (`fromEntities` / `toEntities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    All,
    World,
    #[serde(rename = "world-ipv4")]
    WorldIpv4,
    #[serde(rename = "world-ipv6")]
    WorldIpv6,
    Cluster,
    Host,
    Init,
    Ingress,
    Unmanaged,
    RemoteNode,
    Health,
    None,
    KubeApiserver,
}

/// Read every policy document of the given files and directories (directories: their `*.yaml` files).
///
/// # Errors
/// The first file that cannot be read or parsed, with its path, line and the offending field.
pub fn load_policies(paths: &[PathBuf]) -> Result<Vec<Policy>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        let files = load::yaml_files(p)?;
        let before = out.len();
        for file in &files {
            out.extend(load_policy_file(file)?);
        }
        if out.len() == before {
            return Err(no_policies_error(p, &files));
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for p in &out {
        if let Some(prev) = seen.insert((p.kind as u8, p.qualified_name()), (&p.file, p.line)) {
            return Err(InputError::at(
                &p.file,
                Some(p.line),
                format!(
                    "metadata.name: policy `{}` is defined twice (also in {}:{})",
                    p.qualified_name(),
                    prev.0.display(),
                    prev.1
                ),
            ));
        }
    }
    Ok(out)
}

/// Point an error about `metadata.name` or `metadata.namespace` at the line of that field.
fn at_metadata_field(e: InputError, doc: &load::Document<'_>) -> InputError {
    let InputError::At(mut l) = e else { return e };
    let field = ["name", "namespace", "labels"]
        .into_iter()
        .find(|f| l.message.starts_with(&format!("metadata.{f}:")));
    if let Some(f) = field {
        let mut in_metadata = false;
        for (i, line) in doc.text.lines().enumerate() {
            let indented = line.starts_with(' ');
            if !indented {
                in_metadata = line.trim_end() == "metadata:";
                continue;
            }
            if in_metadata && line.trim_start().starts_with(&format!("{f}:")) {
                l.line = Some(doc.first_line + i as u64);
                l.column = Some((line.len() - line.trim_start().len()) as u64 + 1);
                break;
            }
        }
    }
    InputError::At(l)
}

/// Why a path given as policies holds none: no YAML files, only empty or comment-only files, and whether
/// subdirectories (which are not searched) hold YAML files.
fn no_policies_error(path: &Path, files: &[PathBuf]) -> InputError {
    if path.is_file() {
        return InputError::at(
            path,
            None,
            "no policy in this file: it is empty or holds only comments",
        );
    }
    let mut msg = if files.is_empty() {
        "no policies: the directory holds no *.yaml or *.yml file".to_string()
    } else {
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        format!(
            "no policies: {} {} empty or only comments ({})",
            names.len(),
            if names.len() == 1 {
                "file, which is"
            } else {
                "files, all"
            },
            names.join(", ")
        )
    };
    let subdirs: Vec<String> = std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter(|d| load::yaml_files(d).is_ok_and(|f| !f.is_empty()))
                .map(|d| load::display_path(&d))
                .collect()
        })
        .unwrap_or_default();
    msg.push_str("; subdirectories are not searched");
    if !subdirs.is_empty() {
        msg.push_str(&format!(
            " ({} {} YAML files: pass that directory instead)",
            subdirs.join(", "),
            if subdirs.len() == 1 { "holds" } else { "hold" }
        ));
    }
    InputError::at(path, None, msg)
}

/// What is wrong with a Kubernetes label, if anything: the key is an optional DNS-subdomain prefix and a
/// name, the value empty or a name (each name at most 63 characters of letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit).
pub fn label_problem(key: &str, value: &str) -> Option<&'static str> {
    fn is_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return Some("the key's prefix is not a DNS subdomain");
            }
            name
        }
        None => key,
    };
    if !is_name(name) {
        return Some(
            "the key is not a valid label name (at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)",
        );
    }
    if !value.is_empty() && !is_name(value) {
        return Some(
            "the value is not a valid label value (empty, or at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)",
        );
    }
    None
}

/// Whether `s` is a DNS-1123 subdomain (what Kubernetes requires of most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label_part)
}

/// Whether `s` is a DNS-1123 label (what Kubernetes requires of namespace names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_part(s)
}

fn is_dns_label_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Read the policy documents of one file.
pub fn load_policy_file(path: &Path) -> Result<Vec<Policy>, InputError> {
    let text = load::read_text(path)?;
    parse_policies(path, &text)
}

/// Parse the policy documents of a text, attributing errors to `path`.
pub fn parse_policies(path: &Path, text: &str) -> Result<Vec<Policy>, InputError> {
    let mut out = Vec::new();
    for doc in load::split_documents(text) {
        let parsed: PolicyDoc = load::parse_document(path, &doc)?;
        out.push(finish(path, doc.first_line, parsed).map_err(|e| at_metadata_field(e, &doc))?);
    }
    Ok(out)
}

fn finish(path: &Path, line: u64, doc: PolicyDoc) -> Result<Policy, InputError> {
    let err = |msg: String| InputError::at(path, Some(line), msg);
    if doc.api_version != "cilium.io/v2" {
        return Err(err(format!(
            "apiVersion: `{}` is not supported (expected cilium.io/v2)",
            doc.api_version
        )));
    }
    for (k, v) in doc.metadata.labels.iter().flatten() {
        if let Some(why) = label_problem(k, v) {
            return Err(err(format!(
                "metadata.labels: `{k}: {v}`: {why} (the API server would refuse it)"
            )));
        }
    }
    let _ = (doc.metadata.annotations, doc.status);
    if !is_dns_subdomain(&doc.metadata.name) {
        return Err(err(format!(
            "metadata.name: `{}` is not a valid name: Kubernetes requires lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters (the API server would refuse it)",
            doc.metadata.name
        )));
    }
    if let Some(ns) = &doc.metadata.namespace
        && !is_dns_label(ns)
    {
        return Err(err(format!(
            "metadata.namespace: `{ns}` is not a valid namespace name: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters"
        )));
    }
    let namespace = match doc.kind {
        PolicyKind::CiliumNetworkPolicy => Some(doc.metadata.namespace.ok_or_else(|| {
            err(format!(
                "metadata.namespace: CiliumNetworkPolicy `{}` has no namespace; the harness does not guess one (kubectl would use the current context's)",
                doc.metadata.name
            ))
        })?),
        PolicyKind::CiliumClusterwideNetworkPolicy => {
            if doc.metadata.namespace.is_some() {
                return Err(err(format!(
                    "metadata.namespace: CiliumClusterwideNetworkPolicy `{}` is cluster-scoped and takes no namespace",
                    doc.metadata.name
                )));
            }
            None
        }
    };
    let mut rules = Vec::new();
    rules.extend(doc.spec);
    rules.extend(doc.specs.unwrap_or_default());
    if rules.is_empty() {
        return Err(err(format!(
            "spec: policy `{}` has neither `spec` nor `specs`",
            doc.metadata.name
        )));
    }
    for (i, r) in rules.iter().enumerate() {
        match (&r.endpoint_selector, &r.node_selector) {
            (Some(_), Some(_)) => {
                return Err(err(format!(
                    "spec (rule {i}): endpointSelector and nodeSelector are mutually exclusive"
                )));
            }
            (None, None) => {
                return Err(err(format!(
                    "spec (rule {i}): one of endpointSelector or nodeSelector is required"
                )));
            }
            _ => {}
        }
        if r.node_selector.is_some() && doc.kind == PolicyKind::CiliumNetworkPolicy {
            return Err(err(format!(
                "spec (rule {i}): nodeSelector is only valid in a CiliumClusterwideNetworkPolicy"
            )));
        }
    }
    Ok(Policy {
        kind: doc.kind,
        name: doc.metadata.name,
        namespace,
        rules,
        file: path.to_path_buf(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Policy>, InputError> {
        parse_policies(Path::new("p.yaml"), text)
    }

    const HEAD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn typo_in_a_rule_field_is_rejected_with_line_and_field() {
        let err = parse(&format!("{HEAD}  ingress:\n  - fromEndpoint: [{{}}]\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.yaml:9:"), "{text}");
        assert!(text.contains("fromEndpoint"), "{text}");
    }

    #[test]
    fn invalid_cidr_is_rejected_with_line() {
        let err = parse(&format!("{HEAD}  ingress:\n  - fromCIDR: [10.0.0.0/33]\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.yaml:9:"), "{text}");
        assert!(text.contains("10.0.0.0/33"), "{text}");
    }

    #[test]
    fn invalid_http_regex_is_rejected() {
        let err = parse(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports: [{{port: \"80\"}}]\n      rules:\n        http:\n        - path: \"/api/(\"\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn kafka_role_and_api_key_together_are_rejected() {
        let err = parse(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports: [{{port: \"9092\"}}]\n      rules:\n        kafka:\n        - role: produce\n          apiKey: fetch\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("mutually exclusive"), "{err}");
    }

    #[test]
    fn cnp_without_namespace_is_rejected() {
        let err = parse("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\nspec:\n  endpointSelector: {}\n").unwrap_err();
        assert!(err.to_string().contains("metadata.namespace"), "{err}");
    }

    #[test]
    fn named_and_numbered_ports_parse() {
        let p = parse(&format!(
            "{HEAD}  ingress:\n  - toPorts:\n    - ports: [{{port: \"443\"}}, {{port: https, protocol: TCP}}]\n"
        ))
        .unwrap();
        let ports = p[0].rules[0].ingress.as_ref().unwrap()[0]
            .to_ports
            .as_ref()
            .unwrap()[0]
            .ports
            .clone()
            .unwrap();
        assert_eq!(ports[0].port, Some(PortSpec::Number(443)));
        assert_eq!(ports[1].port, Some(PortSpec::Named("https".into())));
    }

    #[test]
    fn policy_regex_is_a_full_match() {
        let r = PolicyRegex::new("/api/v1/.*").unwrap();
        assert!(r.full_match("/api/v1/orders"));
        assert!(!r.full_match("/x/api/v1/orders"));
        let r = PolicyRegex::new("/public").unwrap();
        assert!(!r.full_match("/public/x"));
    }

    #[test]
    fn multi_document_files_give_several_policies() {
        let two = format!(
            "{HEAD}  ingress: [{{}}]\n---\n{}",
            HEAD.replace("name: p", "name: q")
        );
        let ps = parse(&format!("{two}  egress: [{{}}]\n")).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1].line, 10);
    }
}
