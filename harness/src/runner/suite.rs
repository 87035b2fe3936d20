//! One live test per scenario, shared by the nextest targets of every backend (`harness::kind` for the
//! `kind` profile, the lab's for the `lab` profile): load the posture and scenarios, connect to the test bed
//! of the state file, run one scenario, and turn its result into a test outcome ([`accept::test_outcome`]:
//! not applicable fails unless accepted in `HARNESS_ACCEPT_NOT_APPLICABLE`).
//!
//! # Caveats
//! A test process runs one scenario at a time; separate test processes cannot coordinate their probes, so
//! the profiles run one test at a time.

use std::path::{Path, PathBuf};

use crate::check::{self, Inputs};
use crate::runner::accept::{self, AcceptNotApplicable, TestOutcome};
use crate::runner::{self, RunOptions};
use crate::scenario::Scenario;

/// What a backend's live test target needs, read from the environment by [`LiveSuite::from_env`].
#[derive(Debug, Clone)]
pub struct LiveSuite {
    /// The backend's name (`kind`, `lab`), as the nextest profile is called; used in messages.
    pub backend: String,
    /// The repository root (`HARNESS_ROOT`, else the workspace of this crate).
    pub root: PathBuf,
    /// The test bed's state file (`HARNESS_STATE`, else `<root>/.harness/state.json`).
    pub state_file: PathBuf,
    /// The posture applied (`HARNESS_POSTURE`, default `hardened`).
    pub posture: String,
    /// Judge on the model instead of the intent (`HARNESS_EXPECT=model`).
    pub expect_model: bool,
    /// Not-applicable scenarios accepted (`HARNESS_ACCEPT_NOT_APPLICABLE`).
    pub accept: AcceptNotApplicable,
}

impl LiveSuite {
    /// The suite of `backend`, configured from the environment.
    pub fn from_env(backend: &str) -> LiveSuite {
        let root = std::env::var_os("HARNESS_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        let state_file = std::env::var_os("HARNESS_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".harness/state.json"));
        LiveSuite {
            backend: backend.to_string(),
            posture: std::env::var("HARNESS_POSTURE").unwrap_or_else(|_| "hardened".into()),
            expect_model: std::env::var("HARNESS_EXPECT").is_ok_and(|v| v == "model"),
            accept: AcceptNotApplicable::from_env(),
            root,
            state_file,
        }
    }

    /// The scenarios, one test each (named `phase::id`).
    ///
    /// # Errors
    /// The stack or the scenarios do not load (bad input).
    pub fn scenarios(&self) -> Result<Vec<Scenario>, String> {
        let stack = crate::stack::Stack::load(&self.root.join("fixtures/stack.yaml"))
            .map_err(|e| format!("cannot load the stack: {e}"))?;
        crate::scenario::load_scenarios(&self.root.join("fixtures/scenarios"), &stack)
            .map_err(|e| format!("cannot load the scenarios: {e}"))
    }

    /// Runs scenario `id` on the test bed and judges it. `Err` is the failure message of the test.
    ///
    /// # Errors
    /// No test bed, inputs that do not load, or a scenario that did not succeed (with its columns).
    pub fn run_scenario(&self, id: &str) -> Result<TestOutcome, String> {
        let state = testbed::State::load(&self.state_file).map_err(|e| {
            format!(
                "no test bed ({e}); run `harness up` and `harness apply --posture {}` (the `{}` profile's setup script does)",
                self.posture, self.backend
            )
        })?;
        let version = state
            .cilium_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::model::DEFAULT_VERSION);
        let loaded = check::load(&Inputs {
            policies: vec![self.root.join("policies").join(&self.posture)],
            posture: self.posture.clone(),
            stack_file: self.root.join("fixtures/stack.yaml"),
            scenarios: self.root.join("fixtures/scenarios"),
            helm_values: Some(self.root.join("kind/cilium-values.yaml")),
            version,
        })
        .map_err(|e| e.to_string())?;
        let scenario = loaded
            .scenarios
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("no scenario {id}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let result = rt.block_on(async {
            let bed = crate::live::LiveBed::connect(
                &self.root,
                &state,
                &loaded.stack,
                None,
                &testbed::NoProgress,
            )
            .await?;
            Ok::<_, String>(
                runner::run_one(&bed, &loaded.model, scenario, &RunOptions::default()).await,
            )
        })?;
        match accept::test_outcome(&result, self.expect_model, &self.accept) {
            TestOutcome::Failed(why) => Err(why),
            other => Ok(other),
        }
    }
}
