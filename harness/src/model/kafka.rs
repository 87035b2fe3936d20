//! Kafka-aware rules as Cilium's Kafka proxy (≤ 1.19) evaluates them (cilium-semantics.md §6, §7).

use serde::{Deserialize, Serialize};

use crate::policy::{KafkaRole, KafkaRule};

/// API key names Cilium accepts in `apiKey` (keys 0-33, `APIKeyMap` in cilium/proxy).
const API_KEY_NAMES: [&str; 34] = [
    "produce",
    "fetch",
    "offsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
];

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const LIST_OFFSETS: i16 = 2;
pub const METADATA: i16 = 3;
pub const API_VERSIONS: i16 = 18;

/// The API key with this (case-insensitive) name.
pub fn api_key_by_name(name: &str) -> Option<i16> {
    API_KEY_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .and_then(|i| i16::try_from(i).ok())
        // The names api_key_name gives keys Cilium has no name for.
        .or_else(|| name.strip_prefix("key")?.parse().ok())
}

/// The name of an API key, as Cilium spells it.
pub fn api_key_name(key: i16) -> String {
    usize::try_from(key)
        .ok()
        .and_then(|i| API_KEY_NAMES.get(i))
        .map_or_else(|| format!("key{key}"), |s| (*s).to_string())
}

/// The API keys a role allows (`GetAPIKeys`, cilium-semantics.md §7).
pub fn role_keys(role: KafkaRole) -> &'static [i16] {
    match role {
        KafkaRole::Produce => &[0, 3, 18],
        KafkaRole::Consume => &[1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18],
    }
}

/// API keys whose requests carry topics (`isTopicAPIKey` of Cilium's Kafka proxy); a rule's topic applies
/// only to them: produce, fetch, offsets, metadata, leaderandisr, stopreplica, updatemetadata,
/// offsetcommit, offsetfetch, createtopics, deletetopics, deleterecords, offsetforleaderepoch,
/// addpartitionstotxn, writetxnmarkers, txnoffsetcommit, alterreplicalogdirs (34), describelogdirs (35)
/// and createpartitions (37).
fn carries_topics(key: i16) -> bool {
    matches!(
        key,
        0 | 1 | 2 | 3 | 4 | 5 | 6 | 8 | 9 | 19 | 20 | 21 | 23 | 24 | 27 | 28 | 34 | 35 | 37
    )
}

/// API keys whose topics Cilium's Kafka parser reads: produce, fetch, offsets, metadata, offsetcommit and
/// offsetfetch. For the other topic-carrying keys it reads no topic, so a rule with a topic never allows
/// them, whatever topics they name (checked against Cilium's engine by the oracle).
fn topics_read(key: i16) -> bool {
    matches!(key, 0 | 1 | 2 | 3 | 8 | 9)
}

/// API keys for which the proxy can inject an error response on a deny; any other denied request is
/// dropped without an answer (cilium-semantics.md §6).
pub fn deny_is_answered(key: i16) -> bool {
    matches!(key, 0 | 1 | 2 | 3 | 8 | 9 | 10)
}

/// One Kafka request as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaRequest {
    pub api_key: i16,
    #[serde(default)]
    pub api_version: Option<i16>,
    pub client_id: String,
    #[serde(default)]
    pub topics: Vec<String>,
}

/// What a client does, in Kafka requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaAction {
    Produce,
    Consume,
}

/// The requests the agent's `exact` Kafka mode sends for an action, in order, at the versions it sends by
/// default (`probe_wire::ExactVersions::default()`, which the runner uses): it names the topic in Metadata
/// first, then produces (Produce) or reads (ListOffsets, then Fetch). It sends no ApiVersions.
/// `tests/kafka_wire.rs` checks these against what Cilium's parser reads from the agent's own bytes.
pub fn requests_for(action: KafkaAction, topic: &str, client_id: &str) -> Vec<KafkaRequest> {
    let v = probe_wire::ExactVersions::default();
    let keys: &[(i16, Option<i16>)] = match action {
        KafkaAction::Produce => &[(METADATA, v.metadata), (PRODUCE, Some(v.produce))],
        KafkaAction::Consume => &[
            (METADATA, v.metadata),
            (LIST_OFFSETS, Some(v.list_offsets)),
            (FETCH, Some(v.fetch)),
        ],
    };
    keys.iter()
        .map(|(k, version)| KafkaRequest {
            api_key: *k,
            api_version: *version,
            client_id: client_id.to_string(),
            topics: vec![topic.to_string()],
        })
        .collect()
}

/// Whether one rule matches the request's key, version and client id (topics are handled by
/// [`allows`]).
fn matches_header(rule: &KafkaRule, req: &KafkaRequest) -> bool {
    let key_ok = match (rule.role, rule.api_key) {
        (Some(role), _) => role_keys(role).contains(&req.api_key),
        (None, Some(k)) => k == req.api_key,
        (None, None) => true,
    };
    let version_ok = match (rule.api_version, req.api_version) {
        (None, _) => true,
        (Some(v), Some(rv)) => v == rv,
        // The request's version is not known: a version-pinned rule is assumed to match only if the
        // caller does not say otherwise; the model reports the request version as unknown.
        (Some(_), None) => false,
    };
    // Cilium's parser does not read the client id of a v0 request (it treats v0 as having none), so a
    // `clientID` rule never matches v0 (found by the differential oracle).
    let client = if req.api_version == Some(0) {
        ""
    } else {
        req.client_id.as_str()
    };
    let client_ok = rule.client_id.as_deref().is_none_or(|c| c == client);
    key_ok && version_ok && client_ok
}

/// Whether a set of rules (the union of every rule that applies to the peer and port) allows a request.
///
/// Every topic of a topic-carrying request must be allowed by some rule: each matching rule consumes the
/// topics it names, and the request passes when none is left (`Matches` in proxylib's policy.go). A rule
/// with a topic never allows a topic-carrying request that names no topic, nor one whose topics the parser
/// does not read (both checked against Cilium's engine with `kafkaRequests` queries).
pub fn allows(rules: &[&KafkaRule], req: &KafkaRequest) -> bool {
    if !carries_topics(req.api_key) {
        return rules.iter().any(|r| matches_header(r, req));
    }
    let named: &[String] = if topics_read(req.api_key) {
        &req.topics
    } else {
        &[]
    };
    let mut left: Vec<&str> = named.iter().map(String::as_str).collect();
    for r in rules.iter().filter(|r| matches_header(r, req)) {
        match &r.topic {
            None => return true,
            Some(t) => left.retain(|x| x != t),
        }
        if left.is_empty() && !named.is_empty() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(role: Option<KafkaRole>, topic: Option<&str>, client: Option<&str>) -> KafkaRule {
        KafkaRule {
            role,
            api_key: None,
            api_version: None,
            client_id: client.map(str::to_string),
            topic: topic.map(str::to_string),
        }
    }

    fn req(key: i16, topics: &[&str], client: &str) -> KafkaRequest {
        KafkaRequest {
            api_key: key,
            api_version: None,
            client_id: client.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    // §7: roles expand to fixed API key sets; produce includes Metadata, consume includes it too.
    #[test]
    fn roles_cover_their_api_keys() {
        let p = rule(Some(KafkaRole::Produce), Some("orders"), None);
        assert!(allows(&[&p], &req(PRODUCE, &["orders"], "x")));
        assert!(allows(&[&p], &req(METADATA, &["orders"], "x")));
        assert!(!allows(&[&p], &req(FETCH, &["orders"], "x")));
        let c = rule(Some(KafkaRole::Consume), Some("events"), None);
        assert!(allows(&[&c], &req(FETCH, &["events"], "x")));
        assert!(allows(&[&c], &req(METADATA, &["events"], "x")));
        assert!(!allows(&[&c], &req(PRODUCE, &["events"], "x")));
    }

    // §7: topic and clientID are exact strings.
    #[test]
    fn topic_and_client_id_are_exact() {
        let r = rule(
            Some(KafkaRole::Produce),
            Some("orders"),
            Some("payment-service"),
        );
        assert!(allows(&[&r], &req(PRODUCE, &["orders"], "payment-service")));
        assert!(!allows(&[&r], &req(PRODUCE, &["orders"], "rogue-service")));
        assert!(!allows(
            &[&r],
            &req(PRODUCE, &["orders2"], "payment-service")
        ));
        assert!(!allows(&[&r], &req(PRODUCE, &["order"], "payment-service")));
    }

    // §7: every topic of a multi-topic request must be allowed, possibly by different rules.
    #[test]
    fn every_topic_of_a_request_must_be_allowed() {
        let a = rule(Some(KafkaRole::Produce), Some("a"), None);
        let b = rule(Some(KafkaRole::Produce), Some("b"), None);
        assert!(!allows(&[&a], &req(PRODUCE, &["a", "b"], "x")));
        assert!(allows(&[&a, &b], &req(PRODUCE, &["a", "b"], "x")));
    }

    // §7 [inference]: a topic rule does not allow a topic-carrying request without topics.
    #[test]
    fn topic_rule_does_not_allow_all_topics_metadata() {
        let a = rule(Some(KafkaRole::Produce), Some("a"), None);
        assert!(!allows(&[&a], &req(METADATA, &[], "x")));
        let any = rule(Some(KafkaRole::Produce), None, None);
        assert!(allows(&[&any], &req(METADATA, &[], "x")));
    }

    // §7: the topic of a rule is ignored for keys that carry no topics (ApiVersions, JoinGroup, ...).
    #[test]
    fn topic_is_ignored_for_keys_without_topics() {
        let c = rule(Some(KafkaRole::Consume), Some("events"), None);
        assert!(allows(&[&c], &req(API_VERSIONS, &[], "x")));
        assert!(allows(&[&c], &req(11, &[], "x")));
    }

    #[test]
    fn api_version_is_an_exact_match() {
        let r = KafkaRule {
            api_version: Some(1),
            ..rule(None, None, None)
        };
        assert!(allows(
            &[&r],
            &KafkaRequest {
                api_version: Some(1),
                ..req(PRODUCE, &["t"], "x")
            }
        ));
        assert!(!allows(
            &[&r],
            &KafkaRequest {
                api_version: Some(2),
                ..req(PRODUCE, &["t"], "x")
            }
        ));
    }

    #[test]
    fn api_key_names_follow_cilium() {
        assert_eq!(api_key_by_name("Offsets"), Some(2));
        assert_eq!(api_key_by_name("alterconfigs"), Some(33));
        assert_eq!(api_key_by_name("saslauthenticate"), None);
        assert_eq!(api_key_name(18), "apiversions");
    }

    // §6: error 29 is injected only for some keys; others are dropped without a response.
    #[test]
    fn only_some_denied_keys_get_an_error_response() {
        assert!(deny_is_answered(PRODUCE) && deny_is_answered(METADATA) && deny_is_answered(10));
        assert!(!deny_is_answered(API_VERSIONS) && !deny_is_answered(11));
    }
}
