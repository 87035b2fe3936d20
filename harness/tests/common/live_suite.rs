//! The `main` of a backend's live test target: one test per scenario, run and judged by
//! [`harness::runner::suite::LiveSuite`].
//!
//! A scenario that cannot run on the test bed (not applicable) fails its test with the reason, unless it
//! is listed in `HARNESS_ACCEPT_NOT_APPLICABLE` (ids separated by commas, or `*`). An accepted one passes
//! the test but is printed as `NOT APPLICABLE ... not passed` on stdout, and all of them are listed again,
//! counted, on stderr at the end of the process. Set nextest's `success-output` to see them in the summary.

use std::sync::{Arc, Mutex};

use harness::runner::accept::TestOutcome;
use harness::runner::suite::LiveSuite;
use libtest_mimic::{Arguments, Trial};

/// Runs the live suite of `backend` (`kind`, `lab`) and exits.
pub fn main(backend: &str) -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let suite = Arc::new(LiveSuite::from_env(backend));
    let scenarios = match suite.scenarios() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let trials = scenarios
        .into_iter()
        .map(|s| {
            let (suite, accepted, id) = (Arc::clone(&suite), Arc::clone(&accepted), s.id.clone());
            Trial::test(format!("{}::{}", s.phase, s.id), move || {
                match suite.run_scenario(&id)? {
                    TestOutcome::AcceptedNotApplicable(line) => {
                        println!("{line}");
                        if let Ok(mut a) = accepted.lock() {
                            a.push(line);
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(a) = accepted.lock()
        && !a.is_empty()
    {
        eprintln!(
            "{} scenario(s) not applicable, accepted, not passed:",
            a.len()
        );
        for line in a.iter() {
            eprintln!("  {line}");
        }
    }
    conclusion.exit()
}
