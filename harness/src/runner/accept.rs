//! Not applicable is never a pass: which not-applicable scenarios a live run accepts, and how one
//! scenario's result ends a live test.
//!
//! A scenario is not applicable when the test bed cannot run it (no outside hosts on an existing cluster,
//! peers the model cannot place, traffic for Envoy on a bed without one). Unless the user accepts it, by
//! name or by the missing Envoy, in [`ACCEPT_ENV`], such a scenario fails its live test and makes
//! `harness run` exit 1, with the reason. An accepted one is still reported, never counted as passed.

use std::collections::BTreeSet;

use crate::results::{ScenarioResult, Status};

/// The environment variable listing the not-applicable scenarios a live run accepts, separated by commas:
/// scenario ids (`edge-outsider-https,edge-partner-https`), `no-envoy` for those whose traffic the model
/// sends to Envoy on a test bed without one (the lab), or `*` for every scenario.
pub const ACCEPT_ENV: &str = "HARNESS_ACCEPT_NOT_APPLICABLE";

/// The not-applicable scenarios a run accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptNotApplicable {
    all: bool,
    no_envoy: bool,
    ids: BTreeSet<String>,
}

/// The word of [`ACCEPT_ENV`] that accepts the scenarios not applicable for want of Envoy.
pub const NO_ENVOY: &str = "no-envoy";

impl AcceptNotApplicable {
    /// Accepts none.
    pub fn none() -> Self {
        Self::default()
    }

    /// From a list of ids separated by commas (blanks around them ignored); `*` accepts every scenario,
    /// [`NO_ENVOY`] those that need Envoy on a bed without one.
    pub fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for id in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match id {
                "*" => out.all = true,
                NO_ENVOY => out.no_envoy = true,
                _ => {
                    out.ids.insert(id.to_string());
                }
            }
        }
        out
    }

    /// From [`ACCEPT_ENV`]; none when it is unset.
    pub fn from_env() -> Self {
        std::env::var(ACCEPT_ENV)
            .map(|v| Self::parse(&v))
            .unwrap_or_default()
    }

    /// Whether the scenario of this result may be not applicable.
    pub fn accepts(&self, r: &ScenarioResult) -> bool {
        self.all || self.ids.contains(&r.id) || (self.no_envoy && r.needs_envoy)
    }
}

/// How one scenario's live test ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// The scenario passed (or, judged on the model, behaved as the model predicted).
    Passed,
    /// Not applicable and accepted in [`ACCEPT_ENV`]: not a failure, and not a pass either. The text is
    /// the line to show.
    AcceptedNotApplicable(String),
    /// The test fails, for this reason.
    Failed(String),
}

/// The outcome of a scenario's live test. `expect_model`: success is "the observations match the model"
/// (a failure the model predicted passes) instead of "the intent is met".
pub fn test_outcome(
    r: &ScenarioResult,
    expect_model: bool,
    accept: &AcceptNotApplicable,
) -> TestOutcome {
    let ok = match r.status {
        Status::NotApplicable => {
            return if accept.accepts(r) {
                TestOutcome::AcceptedNotApplicable(format!(
                    "NOT APPLICABLE (accepted in {ACCEPT_ENV}), not passed: {}: {}",
                    r.id, r.reason
                ))
            } else {
                TestOutcome::Failed(format!(
                    "not applicable: {}\n  The scenario could not run on this test bed, so nothing was proven. Fix the test bed, or accept it explicitly with {ACCEPT_ENV}={} (ids separated by commas, {NO_ENVOY} for every scenario that needs Envoy, or *).",
                    r.reason,
                    if r.needs_envoy { NO_ENVOY } else { &r.id }
                ))
            };
        }
        Status::Pass => !expect_model || !r.model_divergence,
        Status::Fail => expect_model && !r.model_divergence,
        Status::Inconclusive | Status::Met | Status::Gap => false,
    };
    if ok {
        TestOutcome::Passed
    } else {
        TestOutcome::Failed(describe(r))
    }
}

/// Whether a run's scenarios all succeeded: passed (or matched the model with `expect_model`), or not
/// applicable and accepted. Inconclusive never succeeds.
pub fn run_succeeded(
    scenarios: &[ScenarioResult],
    expect_model: bool,
    accept: &AcceptNotApplicable,
) -> bool {
    scenarios.iter().all(|s| match s.status {
        Status::NotApplicable => accept.accepts(s),
        Status::Inconclusive => false,
        _ if expect_model => !s.model_divergence,
        status => status == Status::Pass,
    })
}

/// The not-applicable scenarios a run does not accept.
pub fn unaccepted<'a>(
    scenarios: &'a [ScenarioResult],
    accept: &AcceptNotApplicable,
) -> Vec<&'a ScenarioResult> {
    scenarios
        .iter()
        .filter(|s| s.status == Status::NotApplicable && !accept.accepts(s))
        .collect()
}

/// A scenario's result in a few lines: status and reason, then each column, then Hubble's flows.
pub fn describe(r: &ScenarioResult) -> String {
    let client = r.client.as_ref().map_or("not collected".to_string(), |c| {
        format!("{} ({})", c.outcome, c.detail)
    });
    let hubble = r.hubble.as_ref().map_or("not collected".to_string(), |h| {
        format!("{} ({})", h.verdict, h.detail)
    });
    let mut s = format!(
        "{} [{}]: {}\n  intent: {}\n  client: {client}\n  hubble: {hubble}\n  model:  {} — {}",
        r.id,
        r.status.as_str(),
        r.reason,
        r.intent,
        crate::output::verdict_short(&r.model),
        r.model.explanation
    );
    if let Some(h) = &r.hubble {
        for f in &h.flows {
            s.push_str(&format!(
                "\n  flow: {}",
                f["flow"].as_str().unwrap_or_default()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decision, Verdict};
    use crate::results::Intent;

    fn result(id: &str, status: Status, divergence: bool) -> ScenarioResult {
        let model = Verdict {
            decision: Decision::Allow,
            layer: None,
            direction: None,
            drop_reason: None,
            expected_outcome: probe_wire::Outcome::Completed,
            proxied: false,
            policies: vec![],
            explanation: "x".into(),
            notes: vec![],
            denied_kafka_key: None,
            endpoint_policy_error: None,
        };
        let scenario: crate::scenario::Scenario = serde_json::from_value(serde_json::json!({
            "id": id,
            "description": "a scenario",
            "intent": "allow",
        }))
        .expect("scenario");
        let mut r = ScenarioResult::unobserved(
            &scenario,
            model,
            true,
            status,
            "outside host outsider: existing cluster".into(),
        );
        r.intent = Intent {
            decision: Decision::Allow,
            layer: None,
            direction: None,
        };
        r.model_divergence = divergence;
        r
    }

    #[test]
    fn the_accept_list_takes_ids_or_a_star() {
        let na = |id: &str| result(id, Status::NotApplicable, false);
        let a = AcceptNotApplicable::parse(" edge-outsider-https , edge-partner-https,");
        assert!(a.accepts(&na("edge-outsider-https")) && a.accepts(&na("edge-partner-https")));
        assert!(!a.accepts(&na("edge-lb-https")));
        assert!(AcceptNotApplicable::parse("*").accepts(&na("anything")));
        assert!(!AcceptNotApplicable::none().accepts(&na("edge-outsider-https")));
        assert!(!AcceptNotApplicable::parse("").accepts(&na("")));
    }

    #[test]
    fn no_envoy_accepts_exactly_the_scenarios_that_need_envoy() {
        let a = AcceptNotApplicable::parse("no-envoy");
        let mut l7 = result("api-delete-order", Status::NotApplicable, false);
        l7.needs_envoy = true;
        assert!(a.accepts(&l7));
        assert!(matches!(
            test_outcome(&l7, false, &a),
            TestOutcome::AcceptedNotApplicable(_)
        ));
        // Not applicable for another reason (no outside hosts): not accepted by `no-envoy`.
        let outside = result("edge-outsider-https", Status::NotApplicable, false);
        assert!(!a.accepts(&outside));
        assert!(!run_succeeded(&[l7.clone(), outside], false, &a));
        assert!(run_succeeded(&[l7], false, &a));
    }

    #[test]
    fn not_applicable_fails_its_test_unless_accepted_and_is_never_a_pass() {
        let r = result("edge-outsider-https", Status::NotApplicable, false);
        for expect_model in [false, true] {
            match test_outcome(&r, expect_model, &AcceptNotApplicable::none()) {
                TestOutcome::Failed(why) => {
                    assert!(why.contains("existing cluster"), "{why}");
                    assert!(
                        why.contains("HARNESS_ACCEPT_NOT_APPLICABLE=edge-outsider-https"),
                        "{why}"
                    );
                }
                other => panic!("{other:?}"),
            }
            match test_outcome(
                &r,
                expect_model,
                &AcceptNotApplicable::parse("edge-outsider-https"),
            ) {
                TestOutcome::AcceptedNotApplicable(line) => {
                    assert!(line.contains("NOT APPLICABLE") && line.contains("not passed"))
                }
                other => panic!("{other:?}"),
            }
        }
        let other = AcceptNotApplicable::parse("edge-partner-https");
        assert!(matches!(
            test_outcome(&r, false, &other),
            TestOutcome::Failed(_)
        ));
    }

    #[test]
    fn live_tests_pass_on_pass_and_with_expect_model_on_predicted_failures_only() {
        let none = AcceptNotApplicable::none();
        let all = AcceptNotApplicable::parse("*");
        let pass = result("a", Status::Pass, false);
        let fail = result("a", Status::Fail, false);
        let diverging_fail = result("a", Status::Fail, true);
        let inconclusive = result("a", Status::Inconclusive, false);
        assert_eq!(test_outcome(&pass, false, &none), TestOutcome::Passed);
        assert!(matches!(
            test_outcome(&fail, false, &all),
            TestOutcome::Failed(_)
        ));
        assert_eq!(test_outcome(&fail, true, &none), TestOutcome::Passed);
        assert!(matches!(
            test_outcome(&diverging_fail, true, &all),
            TestOutcome::Failed(_)
        ));
        for expect_model in [false, true] {
            assert!(matches!(
                test_outcome(&inconclusive, expect_model, &all),
                TestOutcome::Failed(_)
            ));
        }
    }

    #[test]
    fn a_run_with_a_not_applicable_scenario_succeeds_only_when_it_is_accepted() {
        let rs = vec![
            result("a", Status::Pass, false),
            result("edge-outsider-https", Status::NotApplicable, false),
        ];
        for expect_model in [false, true] {
            assert!(!run_succeeded(
                &rs,
                expect_model,
                &AcceptNotApplicable::none()
            ));
            assert!(run_succeeded(
                &rs,
                expect_model,
                &AcceptNotApplicable::parse("edge-outsider-https")
            ));
        }
        assert_eq!(
            unaccepted(&rs, &AcceptNotApplicable::none())
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["edge-outsider-https"]
        );
        let mut with_inconclusive = rs.clone();
        with_inconclusive.push(result("b", Status::Inconclusive, false));
        assert!(!run_succeeded(
            &with_inconclusive,
            true,
            &AcceptNotApplicable::parse("*")
        ));
    }
}
