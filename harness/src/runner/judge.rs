//! The judgement of one scenario on four columns: intent, model, client, Hubble.
//!
//! Each kind of evidence is judged on its own. A column that contradicts the intent fails the scenario; a
//! column that is missing or says nothing certain makes it inconclusive (never a pass); the scenario passes
//! only when the client and Hubble both agree with the intent. A disagreement between the model and what was
//! observed is reported as a model divergence, whatever the status.

use probe_wire::{NetworkMeaning, Outcome};

use crate::model::{Decision, Direction, Layer, Verdict};
use crate::results::{Intent, Status};

/// What one kind of evidence says about the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Allow,
    /// Denied in the datapath; the direction when the evidence names it.
    DenyL4(Option<Direction>),
    /// Denied by the L7 proxy.
    DenyL7,
    /// Nothing certain: why.
    Unclear(String),
}

impl Reading {
    fn label(&self) -> String {
        match self {
            Reading::Allow => "allow".into(),
            Reading::DenyL4(Some(Direction::Egress)) => "deny l4 at egress".into(),
            Reading::DenyL4(Some(Direction::Ingress)) => "deny l4 at ingress".into(),
            Reading::DenyL4(None) => "deny l4".into(),
            Reading::DenyL7 => "deny l7".into(),
            Reading::Unclear(why) => format!("unclear ({why})"),
        }
    }

    fn decision(&self) -> Option<(Decision, Option<Layer>)> {
        match self {
            Reading::Allow => Some((Decision::Allow, None)),
            Reading::DenyL4(_) => Some((Decision::Deny, Some(Layer::L4))),
            Reading::DenyL7 => Some((Decision::Deny, Some(Layer::L7))),
            Reading::Unclear(_) => None,
        }
    }
}

/// The client's reading of a probe outcome.
pub fn client_reading(outcome: Outcome) -> Reading {
    match outcome.network() {
        NetworkMeaning::Allowed => Reading::Allow,
        NetworkMeaning::DeniedL4 => Reading::DenyL4(None),
        NetworkMeaning::DeniedL7 => Reading::DenyL7,
        NetworkMeaning::Unclear => Reading::Unclear(format!(
            "client outcome {outcome} says nothing certain about policy"
        )),
    }
}

/// Whether a reading agrees with the intent. `None`: the reading is unclear.
fn agrees(intent: &Intent, r: &Reading, check_direction: bool) -> Option<Result<(), String>> {
    let (decision, layer) = r.decision()?;
    if decision != intent.decision {
        return Some(Err(format!("intent {intent}, observed {}", r.label())));
    }
    if let (Some(want), Some(got)) = (intent.layer, layer)
        && want != got
    {
        return Some(Err(format!(
            "right verdict, wrong reason: intent {intent}, observed {}",
            r.label()
        )));
    }
    if check_direction
        && let (Some(want), Reading::DenyL4(Some(got))) = (intent.direction, r)
        && want != *got
    {
        return Some(Err(format!(
            "right verdict, wrong reason: intent {intent}, observed {}",
            r.label()
        )));
    }
    Some(Ok(()))
}

/// The judgement of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub status: Status,
    pub reason: String,
    pub model_divergence: bool,
}

/// Judge the observed columns of one scenario.
///
/// `client`/`hubble` are `None` when that evidence could not be collected at all (the caller passes the
/// reason as `Reading::Unclear` when it knows it).
pub fn judge(
    intent: &Intent,
    model: &Verdict,
    client: Option<&Reading>,
    hubble: Option<&Reading>,
) -> Judgement {
    let missing = Reading::Unclear("not collected".into());
    let client = client.unwrap_or(&missing);
    let hubble = hubble.unwrap_or(&missing);
    let mut failures = Vec::new();
    let mut unclear = Vec::new();
    for (name, reading, direction) in [("client", client, false), ("hubble", hubble, true)] {
        match agrees(intent, reading, direction) {
            Some(Ok(())) => {}
            Some(Err(why)) => failures.push(format!("{name}: {why}")),
            None => unclear.push(format!("{name}: {}", reading.label())),
        }
    }
    // The model diverges when a conclusive observation differs from its prediction.
    let predicted = (
        model.decision,
        if model.decision == Decision::Deny {
            model.layer
        } else {
            None
        },
    );
    let model_divergence = [client, hubble]
        .iter()
        .filter_map(|r| r.decision())
        .any(|observed| observed != predicted);
    let (status, reason) = if !failures.is_empty() {
        (Status::Fail, failures.join("; "))
    } else if !unclear.is_empty() {
        (
            Status::Inconclusive,
            format!("evidence missing or unclear: {}", unclear.join("; ")),
        )
    } else {
        (
            Status::Pass,
            format!("client and Hubble agree with the intent ({intent})"),
        )
    };
    let reason = if model_divergence {
        format!(
            "{reason}; the model predicted {} ({})",
            crate::output::verdict_short(model),
            model.explanation
        )
    } else {
        reason
    };
    Judgement {
        status,
        reason,
        model_divergence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(decision: Decision, layer: Option<Layer>) -> Verdict {
        Verdict {
            decision,
            layer,
            direction: None,
            drop_reason: None,
            expected_outcome: Outcome::Completed,
            proxied: false,
            policies: vec![],
            explanation: "x".into(),
            notes: vec![],
            denied_kafka_key: None,
            endpoint_policy_error: None,
        }
    }

    fn deny(layer: Option<Layer>) -> Intent {
        Intent {
            decision: Decision::Deny,
            layer,
            direction: None,
        }
    }

    const ALLOW: Intent = Intent {
        decision: Decision::Allow,
        layer: None,
        direction: None,
    };

    #[test]
    fn both_columns_agreeing_with_the_intent_pass() {
        let j = judge(
            &deny(Some(Layer::L4)),
            &verdict(Decision::Deny, Some(Layer::L4)),
            Some(&client_reading(Outcome::ConnectTimeout)),
            Some(&Reading::DenyL4(Some(Direction::Ingress))),
        );
        assert_eq!(j.status, Status::Pass);
        assert!(!j.model_divergence);
    }

    #[test]
    fn missing_hubble_evidence_is_inconclusive_never_a_pass() {
        let j = judge(
            &ALLOW,
            &verdict(Decision::Allow, None),
            Some(&Reading::Allow),
            None,
        );
        assert_eq!(j.status, Status::Inconclusive);
        let j = judge(
            &ALLOW,
            &verdict(Decision::Allow, None),
            Some(&Reading::Allow),
            Some(&Reading::Unclear("lost events".into())),
        );
        assert_eq!(j.status, Status::Inconclusive);
        assert!(j.reason.contains("lost events"), "{}", j.reason);
    }

    #[test]
    fn one_contradicting_column_fails_even_if_the_other_is_missing() {
        let j = judge(
            &deny(None),
            &verdict(Decision::Deny, Some(Layer::L4)),
            Some(&Reading::Allow),
            None,
        );
        assert_eq!(j.status, Status::Fail);
        assert!(j.reason.starts_with("client:"), "{}", j.reason);
        assert!(j.model_divergence);
    }

    #[test]
    fn evidence_that_disagrees_fails() {
        let j = judge(
            &deny(Some(Layer::L4)),
            &verdict(Decision::Deny, Some(Layer::L4)),
            Some(&Reading::DenyL4(None)),
            Some(&Reading::Allow),
        );
        assert_eq!(j.status, Status::Fail);
        assert!(j.reason.contains("hubble"), "{}", j.reason);
    }

    #[test]
    fn deny_at_the_wrong_layer_is_a_failure() {
        let j = judge(
            &deny(Some(Layer::L7)),
            &verdict(Decision::Deny, Some(Layer::L7)),
            Some(&Reading::DenyL4(None)),
            Some(&Reading::DenyL4(Some(Direction::Ingress))),
        );
        assert_eq!(j.status, Status::Fail);
        assert!(j.reason.contains("wrong reason"), "{}", j.reason);
    }

    #[test]
    fn hubble_direction_must_match_an_egress_intent() {
        let intent = Intent {
            decision: Decision::Deny,
            layer: Some(Layer::L4),
            direction: Some(Direction::Egress),
        };
        let j = judge(
            &intent,
            &verdict(Decision::Deny, Some(Layer::L4)),
            Some(&Reading::DenyL4(None)),
            Some(&Reading::DenyL4(Some(Direction::Ingress))),
        );
        assert_eq!(j.status, Status::Fail);
    }

    #[test]
    fn observation_unlike_the_model_is_a_divergence_even_when_it_passes() {
        let j = judge(
            &ALLOW,
            &verdict(Decision::Deny, Some(Layer::L4)),
            Some(&Reading::Allow),
            Some(&Reading::Allow),
        );
        assert_eq!(j.status, Status::Pass);
        assert!(j.model_divergence);
    }

    #[test]
    fn client_outcomes_read_as_network_meanings() {
        assert_eq!(client_reading(Outcome::Refused), Reading::Allow);
        assert_eq!(client_reading(Outcome::ProxyDenied), Reading::DenyL7);
        assert!(matches!(
            client_reading(Outcome::Timeout),
            Reading::Unclear(_)
        ));
    }
}
