//! The live commands of the CLI: `up`, `apply`, `run`, `down`, `upgrade`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use harness::check::{self, Inputs};
use harness::load::InputError;
use harness::model::CiliumVersion;
use harness::results::{Results, Status};
use harness::runner::{self, ProbeTimeouts, RunOptions};
use testbed::Progress as _;

/// A failure of a live command: bad input (exit 2, nothing changed) or a failure of the test bed (exit 1).
pub enum Failure {
    Input(InputError),
    Bed(String),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(e)
    }
}

pub type Outcome = Result<ExitCode, Failure>;

fn state_file(root: &Path) -> PathBuf {
    std::env::var_os("HARNESS_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".harness/state.json"))
}

fn load_state(root: &Path) -> Result<testbed::State, Failure> {
    let path = state_file(root);
    testbed::State::load(&path).map_err(|e| {
        Failure::Bed(format!(
            "{e}\nno test bed: run `harness up` first (state file {})",
            path.display()
        ))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Bed(format!("cannot start the async runtime: {e}")))
}

/// Options of `harness up`.
pub struct UpArgs {
    pub cilium_version: String,
    pub reuse: bool,
    pub existing: bool,
    pub context: Option<String>,
    pub agent_image: Option<String>,
}

pub fn up(root: &Path, a: UpArgs) -> Outcome {
    let mut opts = if a.existing {
        testbed::UpOptions::existing(root, a.context)
    } else {
        testbed::UpOptions::kind(root)
    };
    opts.state_file = state_file(root);
    match &mut opts.target {
        testbed::Target::Kind(k) => {
            k.cilium_version = a.cilium_version.trim_start_matches('v').to_string();
            k.reuse = a.reuse;
        }
        testbed::Target::Existing(e) => e.agent_image = a.agent_image,
    }
    let progress = testbed::TerminalProgress::stderr();
    let state = runtime()?
        .block_on(testbed::up(&opts, &progress))
        .map_err(|e| Failure::Bed(e.to_string()))?;
    eprintln!(
        "test bed ready: context {}, Cilium {}, state in {}",
        state.kube_context,
        state.cilium_version.as_deref().unwrap_or("unknown"),
        opts.state_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Validates a posture with the harness's own parser (bad input: exit 2, nothing applied), then applies it.
pub fn apply(root: &Path, posture: &str, dir: &Path) -> Outcome {
    let files = harness::load::yaml_files(dir)?;
    harness::policy::load_policies(&files)?;
    let state = load_state(root)?;
    let progress = testbed::TerminalProgress::stderr();
    let report = runtime()?
        .block_on(testbed::apply_posture(
            &state,
            posture,
            &files,
            &testbed::ApplyOptions::default(),
            &progress,
        ))
        .map_err(|e| Failure::Bed(e.to_string()))?;
    eprintln!(
        "posture {posture}: {} applied, {} removed, enforced by {} agent(s)",
        report.applied.len(),
        report.deleted.len(),
        report.agents.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// What makes a run successful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    /// Every scenario passes (client and Hubble agree with the intent).
    Intent,
    /// Every observation matches the model's prediction (for postures with known gaps, such as seed).
    Model,
}

/// Options of `harness run`.
pub struct RunArgs {
    pub posture: String,
    pub posture_dir: PathBuf,
    pub filter: Option<String>,
    pub results: PathBuf,
    pub concurrency: usize,
    pub relay: Option<String>,
    pub expect: Expect,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
}

/// Run the suite on the test bed; the results file is written even when set-up fails part way.
pub fn run(root: &Path, a: RunArgs) -> Outcome {
    let state = load_state(root);
    let version: CiliumVersion = match &state {
        Ok(s) => s
            .cilium_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(harness::model::DEFAULT_VERSION),
        Err(_) => harness::model::DEFAULT_VERSION,
    };
    let inputs = Inputs {
        policies: vec![a.posture_dir.clone()],
        posture: a.posture.clone(),
        stack_file: root.join("fixtures/stack.yaml"),
        scenarios: root.join("fixtures/scenarios"),
        helm_values: Some(root.join("kind/cilium-values.yaml")),
        version,
    };
    let loaded = check::load(&inputs)?;
    let mut scenarios = loaded.scenarios.clone();
    if let Some(f) = &a.filter {
        let re = regex::Regex::new(f).map_err(|e| InputError::Invalid(format!("--filter: {e}")))?;
        scenarios.retain(|s| re.is_match(&s.id) || re.is_match(&format!("{}::{}", s.phase, s.id)));
    }
    let env = runner::environment(&version.to_string(), &a.posture);
    let results = match state {
        Err(Failure::Bed(why)) => runner::setup_failed(env, &loaded.model, &scenarios, &why),
        Err(other) => return Err(other),
        Ok(state) => {
            let rt = runtime()?;
            let progress = testbed::TerminalProgress::stderr();
            let opts = RunOptions {
                timeouts: ProbeTimeouts {
                    connect_ms: a.connect_timeout_ms,
                    total_ms: a.timeout_ms,
                },
                concurrency: a.concurrency,
                ..RunOptions::default()
            };
            rt.block_on(async {
                match harness::live::LiveBed::connect(
                    root,
                    &state,
                    &loaded.stack,
                    a.relay.as_deref(),
                    &progress,
                )
                .await
                {
                    Err(why) => runner::setup_failed(env, &loaded.model, &scenarios, &why),
                    Ok(bed) => {
                        progress.step_started(&format!("Run {} scenario(s)", scenarios.len()));
                        let rs = runner::run(&bed, &loaded.model, &scenarios, &opts).await;
                        let mut env = env;
                        env.cilium = state.cilium_version.clone().unwrap_or(env.cilium);
                        env.kubernetes = bed.kubernetes_version().await;
                        if state.mode == testbed::Mode::Kind {
                            env.kind = kind_node_image(root);
                        }
                        runner::results(env, &loaded.model, rs)
                    }
                }
            })
        }
    };
    write_results(&a.results, &results)?;
    let text = harness::report::render(
        &results,
        harness::report::ReportFormat::Table,
        harness::output::use_colour(),
    );
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    eprintln!("results written to {}", a.results.display());
    Ok(if run_succeeded(&results, a.expect) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The kind node image of kind/cluster.yaml (`kindest/node:v1.34.11@sha256:...`), for the results.
fn kind_node_image(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("kind/cluster.yaml")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(|i| i.trim().to_string())
}

/// Whether a run meets what was expected of it.
pub fn run_succeeded(r: &Results, expect: Expect) -> bool {
    r.scenarios.iter().all(|s| match expect {
        Expect::Intent => matches!(s.status, Status::Pass | Status::NotApplicable),
        Expect::Model => {
            s.status == Status::NotApplicable
                || (s.status != Status::Inconclusive && !s.model_divergence)
        }
    })
}

fn write_results(path: &Path, r: &Results) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| InputError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let json = serde_json::to_string_pretty(r).map_err(|e| Failure::Bed(e.to_string()))?;
    std::fs::write(path, json).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

pub fn down(root: &Path) -> Outcome {
    let state = load_state(root)?;
    let progress = testbed::TerminalProgress::stderr();
    let report = runtime()?
        .block_on(testbed::down(&state, &state_file(root), root, &progress))
        .map_err(|e| Failure::Bed(e.to_string()))?;
    for r in &report.removed {
        eprintln!("removed {r}");
    }
    for r in &report.remaining {
        eprintln!("STILL PRESENT: {r}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Options of `harness upgrade`.
pub struct UpgradeArgs {
    pub from: CiliumVersion,
    pub to: CiliumVersion,
    pub to_chart: Option<String>,
    pub posture: String,
    pub posture_dir: PathBuf,
    pub predict_only: bool,
    pub allow_widening: bool,
}

fn check_at(
    root: &Path,
    posture: &str,
    dir: &Path,
    version: CiliumVersion,
) -> Result<Results, Failure> {
    Ok(check::run(&Inputs {
        policies: vec![dir.to_path_buf()],
        posture: posture.into(),
        stack_file: root.join("fixtures/stack.yaml"),
        scenarios: root.join("fixtures/scenarios"),
        helm_values: Some(root.join("kind/cilium-values.yaml")),
        version,
    })?)
}

/// Predict the upgrade offline (check at both versions, diff), then, unless `predict_only`, run the suite on
/// the test bed, upgrade Cilium with Helm, re-apply the posture, run again and diff.
pub fn upgrade(root: &Path, a: UpgradeArgs) -> Outcome {
    let out_dir = root.join(".harness");
    let before = check_at(root, &a.posture, &a.posture_dir, a.from)?;
    let after = check_at(root, &a.posture, &a.posture_dir, a.to)?;
    write_results(&out_dir.join("upgrade-predicted-before.json"), &before)?;
    write_results(&out_dir.join("upgrade-predicted-after.json"), &after)?;
    let predicted = harness::diff::diff(&before, &after);
    println!(
        "Predicted by the model ({} -> {}):\n{}",
        a.from,
        a.to,
        harness::diff::render(&predicted, false)
    );
    if a.predict_only {
        return Ok(if predicted.has_widening() && !a.allow_widening {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut state = load_state(root)?;
    let installed: Option<CiliumVersion> =
        state.cilium_version.as_deref().and_then(|v| v.parse().ok());
    if installed.map(|v| (v.major, v.minor)) != Some((a.from.major, a.from.minor)) {
        return Err(Failure::Bed(format!(
            "the test bed runs Cilium {}, not {}: run `harness up --cilium-version {}` first",
            state.cilium_version.as_deref().unwrap_or("unknown"),
            a.from,
            a.from
        )));
    }
    let run_args = |results: PathBuf| RunArgs {
        posture: a.posture.clone(),
        posture_dir: a.posture_dir.clone(),
        filter: None,
        results,
        concurrency: 8,
        relay: None,
        expect: Expect::Intent,
        connect_timeout_ms: probe_wire::DEFAULT_CONNECT_TIMEOUT_MS,
        timeout_ms: probe_wire::DEFAULT_TIMEOUT_MS,
    };
    apply(root, &a.posture, &a.posture_dir)?;
    let before_file = out_dir.join("upgrade-before.json");
    let _ = run(root, run_args(before_file.clone()))?;
    let to = a.to_chart.clone().unwrap_or_else(|| a.to.to_string());
    let progress = testbed::TerminalProgress::stderr();
    let mut opts = testbed::UpgradeOptions::new(root);
    opts.state_file = state_file(root);
    opts.wait_timeout = Duration::from_secs(900);
    runtime()?
        .block_on(testbed::upgrade_cilium(&mut state, &to, &opts, &progress))
        .map_err(|e| Failure::Bed(e.to_string()))?;
    // A strict re-apply on the new version reports what it no longer accepts (Kafka rules on 1.20).
    if let Err(f) = apply(root, &a.posture, &a.posture_dir) {
        match f {
            Failure::Bed(why) => eprintln!(
                "re-applying the posture on Cilium {to} failed (recorded, the run goes on):\n{why}"
            ),
            other => return Err(other),
        }
    }
    let after_file = out_dir.join("upgrade-after.json");
    let _ = run(root, run_args(after_file.clone()))?;
    let b = Results::read(&before_file)?;
    let af = Results::read(&after_file)?;
    let d = harness::diff::diff(&b, &af);
    let text = harness::diff::render(&d, false);
    std::fs::write(out_dir.join("upgrade-diff.txt"), &text).map_err(|source| InputError::Io {
        path: out_dir.join("upgrade-diff.txt"),
        source,
    })?;
    println!("Observed ({} -> {to}):\n{text}", a.from);
    let unexpected = harness::diff::unexpected_widening(&predicted, &d);
    if unexpected.is_empty() {
        if d.has_widening() {
            println!("Every observed widening was predicted by the model (see above).");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "Widening the model did not predict: {}",
            unexpected.join(", ")
        );
        Ok(if a.allow_widening {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn kind_node_image_comes_from_the_cluster_config() {
        let image = kind_node_image(&root()).expect("kind/cluster.yaml names an image");
        assert!(
            image.starts_with("kindest/node:v1.") && image.contains("@sha256:"),
            "{image}"
        );
    }

    fn run_doc() -> Results {
        Results::read(&root().join("harness/tests/data/run-hardened-1.19.json"))
            .expect("scripted run")
    }

    #[test]
    fn a_run_succeeds_only_when_every_scenario_passes_or_does_not_apply() {
        let mut r = run_doc();
        assert!(
            !run_succeeded(&r, Expect::Intent),
            "the scripted run has failures"
        );
        for s in &mut r.scenarios {
            if s.status != Status::NotApplicable {
                s.status = Status::Pass;
            }
        }
        assert!(run_succeeded(&r, Expect::Intent));
        r.scenarios[0].status = Status::Inconclusive;
        assert!(
            !run_succeeded(&r, Expect::Intent),
            "inconclusive is never a success"
        );
    }

    #[test]
    fn with_expect_model_failures_the_model_predicted_are_success_but_divergences_are_not() {
        let mut r = run_doc();
        for s in &mut r.scenarios {
            s.model_divergence = false;
            if s.status == Status::Inconclusive {
                s.status = Status::Fail;
            }
        }
        assert!(run_succeeded(&r, Expect::Model));
        r.scenarios[1].model_divergence = true;
        assert!(!run_succeeded(&r, Expect::Model));
    }
}
