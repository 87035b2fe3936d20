//! The live suite: one test per scenario against the test bed (nextest profile `kind`).
//!
//! Run with `cargo nextest run --profile kind`: its setup script prepares the test bed (`harness up
//! --reuse`, `harness apply --posture $HARNESS_POSTURE`). Each test runs its scenario's probe with real
//! traffic, watches Hubble for it, and passes only when the client and Hubble both agree with the intent.
//! With `HARNESS_EXPECT=model` (the seed posture's nightly run) a test passes when the observations match the
//! model's prediction instead. Without a test bed every test fails, naming what is missing.
//!
//! Tests of this target run one at a time (the kind profile sets test-threads for it): probes of separate
//! processes cannot coordinate, and Hubble could attribute one probe's flows to another.

use std::path::{Path, PathBuf};

use harness::check::{self, Inputs};
use harness::results::{ScenarioResult, Status};
use harness::runner::{self, RunOptions};
use libtest_mimic::{Arguments, Failed, Trial};

fn root() -> PathBuf {
    std::env::var_os("HARNESS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn state_file(root: &Path) -> PathBuf {
    std::env::var_os("HARNESS_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".harness/state.json"))
}

fn describe(r: &ScenarioResult) -> String {
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
        harness::output::verdict_short(&r.model),
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

fn run_scenario(id: &str, posture: &str, expect_model: bool) -> Result<(), Failed> {
    let root = root();
    let state_path = state_file(&root);
    let state = testbed::State::load(&state_path).map_err(|e| {
        format!("no test bed ({e}); run `harness up` and `harness apply --posture {posture}` (the kind profile's setup script does)")
    })?;
    let version = state
        .cilium_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(harness::model::DEFAULT_VERSION);
    let loaded = check::load(&Inputs {
        policies: vec![root.join("policies").join(posture)],
        posture: posture.into(),
        stack_file: root.join("fixtures/stack.yaml"),
        scenarios: root.join("fixtures/scenarios"),
        helm_values: Some(root.join("kind/cilium-values.yaml")),
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
        let bed = harness::live::LiveBed::connect(
            &root,
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
    let ok = match result.status {
        Status::Pass | Status::NotApplicable => !expect_model || !result.model_divergence,
        Status::Fail => expect_model && !result.model_divergence,
        _ => false,
    };
    if ok {
        if result.status == Status::NotApplicable {
            eprintln!("not applicable: {}", result.reason);
        }
        Ok(())
    } else {
        Err(describe(&result).into())
    }
}

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let root = root();
    let posture = std::env::var("HARNESS_POSTURE").unwrap_or_else(|_| "hardened".into());
    let expect_model = std::env::var("HARNESS_EXPECT").is_ok_and(|v| v == "model");
    let stack = match harness::stack::Stack::load(&root.join("fixtures/stack.yaml")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load the stack: {e}");
            std::process::exit(2);
        }
    };
    let scenarios =
        match harness::scenario::load_scenarios(&root.join("fixtures/scenarios"), &stack) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot load the scenarios: {e}");
                std::process::exit(2);
            }
        };
    let trials = scenarios
        .into_iter()
        .map(|s| {
            let posture = posture.clone();
            let id = s.id.clone();
            Trial::test(format!("{}::{}", s.phase, s.id), move || {
                run_scenario(&id, &posture, expect_model)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
