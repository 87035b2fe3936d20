//! The live suite: one test per scenario against the kind test bed (nextest profile `kind`).
//!
//! Each test fails, never passes, when no cluster was prepared (`harness up` + `harness apply`, which the
//! `kind` profile's setup script runs).

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() {
    let args = Arguments::from_args();
    let root = root();
    let stack = match harness::stack::Stack::load(&root.join("fixtures/stack.yaml")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load the stack: {e}");
            std::process::exit(2);
        }
    };
    let scenarios = match harness::scenario::load_scenarios(&root.join("fixtures/scenarios"), &stack) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load the scenarios: {e}");
            std::process::exit(2);
        }
    };
    let trials = scenarios
        .into_iter()
        .map(|s| {
            let name = format!("{}::{}", s.phase, s.id);
            Trial::test(name, move || -> Result<(), Failed> {
                let state = root_state();
                if !state.is_file() {
                    return Err(format!(
                        "no test bed: {} is missing; run `harness up` and `harness apply --posture NAME` (the kind profile's setup script does)",
                        state.display()
                    )
                    .into());
                }
                Err(format!("scenario {}: the live runner is not wired yet", s.id).into())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn root_state() -> PathBuf {
    root().join(".harness/state.json")
}
