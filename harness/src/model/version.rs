//! Cilium versions and the behaviour that changes between them.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A Cilium minor version (`1.19`); a patch number, if given, is kept for display only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CiliumVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: Option<u16>,
}

/// The version the model assumes when none is given.
pub const DEFAULT_VERSION: CiliumVersion = CiliumVersion {
    major: 1,
    minor: 19,
    patch: None,
};

/// Oldest and newest versions whose semantics the model knows.
pub const OLDEST: CiliumVersion = CiliumVersion {
    major: 1,
    minor: 16,
    patch: None,
};
pub const NEWEST: CiliumVersion = CiliumVersion {
    major: 1,
    minor: 20,
    patch: None,
};

impl CiliumVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        CiliumVersion {
            major,
            minor,
            patch: None,
        }
    }

    fn at_least(self, major: u16, minor: u16) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Kafka-aware rules (and proxylib `l7proto`/`l7`) were removed from the CRD in 1.20; a strict apply of a
    /// policy that uses them fails (docs/semantics.md#kafka-rules).
    pub fn has_kafka_rules(self) -> bool {
        !self.at_least(1, 20)
    }

    /// Since 1.18 a rule with no ingress, ingressDeny, egress or egressDeny element is rejected by the agent
    /// (docs/semantics.md#empty-sections-and-default-deny, commit 4af386d181).
    pub fn rejects_rules_without_sections(self) -> bool {
        self.at_least(1, 18)
    }

    /// Since 1.18, L7 rules of a default-allow direction (`enableDefaultDeny: false`) get an allow-all L7
    /// rule appended: they add visibility and never block (docs/semantics.md#l7-rules-in-a-default-allow-direction).
    pub fn default_allow_l7_is_wildcarded(self) -> bool {
        self.at_least(1, 18)
    }

    /// From 1.20 an egress named port resolves per destination identity (the destination's own port of
    /// that name); before, cluster-wide (one number for the name across every pod, or none). Found by
    /// the 1.20 oracle (docs/semantics.md#named-ports).
    pub fn egress_named_ports_per_destination(self) -> bool {
        self.at_least(1, 20)
    }

    /// From 1.20 the local host passes the proxy with every request allowed, also when a rule names the
    /// `host` entity with L7 rules (before, such a rule filtered the host's requests). Found by the 1.20
    /// oracle (docs/semantics.md#default-enforcement).
    pub fn host_always_wildcarded_at_l7(self) -> bool {
        self.at_least(1, 20)
    }

    /// Kafka-aware policy is deprecated from 1.19 (still enforced).
    pub fn kafka_deprecated(self) -> bool {
        self.at_least(1, 19)
    }

    /// Whether the model knows this version's semantics exactly.
    pub fn is_modelled(self) -> bool {
        self >= OLDEST && (self.major, self.minor) <= (NEWEST.major, NEWEST.minor)
    }
}

/// The minor versions whose semantics the model knows, oldest first.
pub fn covered() -> Vec<CiliumVersion> {
    (OLDEST.minor..=NEWEST.minor)
        .map(|m| CiliumVersion::new(1, m))
        .collect()
}

/// Parse a version the model covers (the value parser of `--cilium-version`, `--from`, `--to`).
///
/// # Errors
/// Not a version, or a version outside [`covered`]: the message lists the covered versions.
pub fn parse_covered(s: &str) -> Result<CiliumVersion, String> {
    let v: CiliumVersion = s.parse().map_err(|e: BadVersion| e.to_string())?;
    if v.is_modelled() {
        return Ok(v);
    }
    Err(format!(
        "Cilium {}.{} is not covered by the model; covered versions: {} (docs/semantics.md#cilium-versions)",
        v.major,
        v.minor,
        covered()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl fmt::Display for CiliumVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

impl Serialize for CiliumVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a Cilium version (expected MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.19 or 1.19.6)"
)]
pub struct BadVersion(String);

impl FromStr for CiliumVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, BadVersion> {
        // Pre-releases such as 1.20.0-pre.4 count as their version.
        let t = s.trim().trim_start_matches('v');
        let t = t.split('-').next().unwrap_or(t);
        let parts: Vec<&str> = t.split('.').collect();
        let num = |p: &str| p.parse::<u16>().map_err(|_| BadVersion(s.to_string()));
        match parts.as_slice() {
            [a, b] => Ok(CiliumVersion {
                major: num(a)?,
                minor: num(b)?,
                patch: None,
            }),
            [a, b, c] => Ok(CiliumVersion {
                major: num(a)?,
                minor: num(b)?,
                patch: Some(num(c)?),
            }),
            _ => Err(BadVersion(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_and_without_patch() {
        assert_eq!(
            "1.19".parse::<CiliumVersion>().unwrap(),
            CiliumVersion::new(1, 19)
        );
        let v: CiliumVersion = "v1.20.0-pre.4".parse().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 20, Some(0)));
        assert!("1".parse::<CiliumVersion>().is_err());
        assert!("1.x".parse::<CiliumVersion>().is_err());
    }

    #[test]
    fn versions_outside_the_model_are_refused_with_the_covered_list() {
        for bad in ["1.15", "1.21", "2.0"] {
            let err = parse_covered(bad).expect_err(bad);
            assert!(err.contains("not covered by the model"), "{err}");
            assert!(err.contains("1.16, 1.17, 1.18, 1.19, 1.20"), "{err}");
        }
        assert_eq!(parse_covered("1.20.3").map(|v| v.minor), Ok(20));
    }

    #[test]
    fn kafka_rules_exist_until_1_19() {
        assert!(CiliumVersion::new(1, 19).has_kafka_rules());
        assert!(!CiliumVersion::new(1, 20).has_kafka_rules());
        assert!(CiliumVersion::new(1, 17).has_kafka_rules());
    }

    #[test]
    fn empty_rules_are_rejected_from_1_18() {
        assert!(!CiliumVersion::new(1, 17).rejects_rules_without_sections());
        assert!(CiliumVersion::new(1, 18).rejects_rules_without_sections());
    }
}
