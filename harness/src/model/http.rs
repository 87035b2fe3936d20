//! HTTP rules as Cilium's Envoy filter applies them (cilium-semantics.md §5).

use serde::{Deserialize, Serialize};

use crate::policy::{HttpRule, Mismatch};

/// One HTTP request as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (`:path`, including any query string).
    pub path: String,
    /// The `:authority` (Host header), when the client sends one. A `Host` entry of `headers` counts when
    /// this is absent (an HTTP/1.1 proxy takes the authority from the Host header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Headers as (name, value) pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The authority the proxy sees: `host`, else the first `Host` header; `None` when the client sends
    /// neither or an empty one.
    pub fn authority(&self) -> Option<&str> {
        self.host
            .as_deref()
            .or_else(|| self.header_values("host").next())
            .filter(|a| !a.is_empty())
    }
}

/// A `headers:` entry as Cilium translates it: split on the first space; a trailing `:` is trimmed from the
/// name; the rest is an exact literal value. Without a space the entry is a presence check on a header
/// named by the whole string (§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderCheck {
    pub name: String,
    /// `None`: presence only.
    pub value: Option<String>,
}

pub fn parse_header_entry(entry: &str) -> HeaderCheck {
    match entry.split_once(' ') {
        Some((name, value)) => HeaderCheck {
            name: name.strip_suffix(':').unwrap_or(name).to_string(),
            value: Some(value.to_string()),
        },
        None => HeaderCheck {
            name: entry.strip_suffix(':').unwrap_or(entry).to_string(),
            value: None,
        },
    }
}

/// Characters that make a header value look like a regular expression although Cilium compares it
/// literally.
pub fn looks_like_regex(value: &str) -> bool {
    value.contains(".*")
        || value.contains(".+")
        || value.starts_with('^')
        || value.ends_with('$')
        || value.contains("\\")
}

/// Whether one HTTP rule matches a request. All fields given in the rule must match (AND).
pub fn rule_matches(rule: &HttpRule, req: &HttpRequest) -> bool {
    if let Some(m) = &rule.method
        && !m.full_match(&req.method)
    {
        return false;
    }
    if let Some(p) = &rule.path
        && !p.full_match(&req.path)
    {
        return false;
    }
    // A request without an authority has no `:authority` header to match: a `host:` rule never matches
    // it, not even `.*`.
    if let Some(h) = &rule.host
        && !req.authority().is_some_and(|a| h.full_match(a))
    {
        return false;
    }
    for entry in rule.headers.iter().flatten() {
        let check = parse_header_entry(entry);
        let ok = match &check.value {
            None => req.header_values(&check.name).next().is_some(),
            Some(v) => req.header_values(&check.name).any(|x| x == v),
        };
        if !ok {
            return false;
        }
    }
    for hm in rule.header_matches.iter().flatten() {
        if hm.mismatch.is_some_and(|m| {
            matches!(
                m,
                Mismatch::Log | Mismatch::Add | Mismatch::Delete | Mismatch::Replace
            )
        }) {
            // LOG/ADD/DELETE/REPLACE never deny; they only log or rewrite.
            continue;
        }
        let ok = match (&hm.value, &hm.secret) {
            (Some(v), _) => req.header_values(&hm.name).any(|x| x == v),
            // A secret the model cannot read: Cilium denies when the secret is unreadable; with a readable
            // secret the result depends on its content, which the model does not know.
            (None, Some(_)) => false,
            (None, None) => req.header_values(&hm.name).next().is_some(),
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HeaderMatch, PolicyRegex};

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            host: None,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn rule(method: &str, path: &str, headers: &[&str]) -> HttpRule {
        HttpRule {
            method: Some(PolicyRegex::new(method).unwrap()),
            path: Some(PolicyRegex::new(path).unwrap()),
            headers: if headers.is_empty() {
                None
            } else {
                Some(headers.iter().map(|s| s.to_string()).collect())
            },
            ..HttpRule::default()
        }
    }

    // §5: `host` is an RE2 full match on the authority, which an HTTP/1.1 client sends as its Host header.
    #[test]
    fn host_rule_matches_the_authority_from_host_or_the_host_header() {
        let r = HttpRule {
            host: Some(PolicyRegex::new("api\\.example\\.com").unwrap()),
            ..HttpRule::default()
        };
        let mut q = req("GET", "/", &[]);
        q.host = Some("api.example.com".into());
        assert!(rule_matches(&r, &q));
        q.host = Some("api.example.com.evil".into());
        assert!(!rule_matches(&r, &q));
        assert!(rule_matches(
            &r,
            &req("GET", "/", &[("HOST", "api.example.com")])
        ));
    }

    // Envoy: a header matcher on an absent header fails, so without an authority even `host: .*` refuses.
    #[test]
    fn host_rule_never_matches_a_request_without_an_authority() {
        let r = HttpRule {
            host: Some(PolicyRegex::new(".*").unwrap()),
            ..HttpRule::default()
        };
        assert!(!rule_matches(&r, &req("GET", "/", &[])));
        let mut q = req("GET", "/", &[]);
        q.host = Some(String::new());
        assert!(!rule_matches(&r, &q), "an empty authority is none");
        q.host = Some("anything:8080".into());
        assert!(rule_matches(&r, &q));
    }

    // §5: path and method are RE2 full matches.
    #[test]
    fn path_and_method_are_anchored_regexes() {
        let r = rule("GET", "/api/v1/.*", &[]);
        assert!(rule_matches(&r, &req("GET", "/api/v1/orders", &[])));
        assert!(!rule_matches(&r, &req("GET", "/admin/api/v1/x", &[])));
        assert!(!rule_matches(&r, &req("GETX", "/api/v1/x", &[])));
        assert!(!rule_matches(&r, &req("DELETE", "/api/v1/orders/1", &[])));
    }

    // §5 [inference]: `:path` carries the query string, so `/api` does not match `/api?x=1`.
    #[test]
    fn query_string_is_part_of_the_matched_path() {
        let r = rule("GET", "/api", &[]);
        assert!(!rule_matches(&r, &req("GET", "/api?x=1", &[])));
    }

    // §5: `headers: ["Authorization: .*"]` requires the literal value `.*`.
    #[test]
    fn header_value_is_an_exact_literal_not_a_regex() {
        let r = rule("GET", "/.*", &["Authorization: .*"]);
        assert!(!rule_matches(
            &r,
            &req("GET", "/x", &[("Authorization", "Bearer abc")])
        ));
        assert!(rule_matches(
            &r,
            &req("GET", "/x", &[("Authorization", ".*")])
        ));
    }

    // §5: a header entry without a space is a presence check; names are case-insensitive.
    #[test]
    fn header_without_value_is_presence_only() {
        let r = rule("GET", "/.*", &["Authorization"]);
        assert!(rule_matches(
            &r,
            &req("GET", "/x", &[("authorization", "Bearer abc")])
        ));
        assert!(!rule_matches(&r, &req("GET", "/x", &[])));
        let odd = rule("GET", "/.*", &["X-Foo:bar"]);
        assert!(!rule_matches(&odd, &req("GET", "/x", &[("X-Foo", "bar")])));
    }

    // §5: headerMatches with a value is exact; a LOG mismatch never denies.
    #[test]
    fn header_matches_exact_and_log_mismatch() {
        let mut r = rule("GET", "/.*", &[]);
        r.header_matches = Some(vec![HeaderMatch {
            name: "X-Env".into(),
            value: Some("prod".into()),
            secret: None,
            mismatch: None,
        }]);
        assert!(rule_matches(&r, &req("GET", "/", &[("x-env", "prod")])));
        assert!(!rule_matches(&r, &req("GET", "/", &[("x-env", "dev")])));
        r.header_matches = Some(vec![HeaderMatch {
            name: "X-Env".into(),
            value: Some("prod".into()),
            secret: None,
            mismatch: Some(Mismatch::Log),
        }]);
        assert!(rule_matches(&r, &req("GET", "/", &[])));
    }

    #[test]
    fn header_entry_parsing_follows_cilium() {
        assert_eq!(
            parse_header_entry("Authorization: .*"),
            HeaderCheck {
                name: "Authorization".into(),
                value: Some(".*".into())
            }
        );
        assert_eq!(
            parse_header_entry("X-Foo"),
            HeaderCheck {
                name: "X-Foo".into(),
                value: None
            }
        );
        assert_eq!(
            parse_header_entry("a: b c"),
            HeaderCheck {
                name: "a".into(),
                value: Some("b c".into())
            }
        );
    }
}
