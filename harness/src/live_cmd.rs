//! The live commands of the CLI: `up`, `apply`, `run`, `down`, `upgrade`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use harness::check::{self, Inputs};
use harness::load::InputError;
use harness::model::CiliumVersion;
use harness::results::Results;
use harness::runner::accept::AcceptNotApplicable;
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
    testbed::State::load(&path).map_err(|e| Failure::Bed(state_problem(&e)))
}

/// One statement of why the state file cannot be used; `Missing` already names the remedy.
fn state_problem(e: &testbed::state::StateError) -> String {
    match e {
        testbed::state::StateError::Missing { .. } => e.to_string(),
        other => format!("{other}: no usable test bed, run `harness up` first"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Bed(format!("cannot start the async runtime: {e}")))
}

/// Which test bed `harness up` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A kind cluster in Docker, Cilium installed by Helm.
    Kind,
    /// The lab: a real Cilium agent and control plane on this Linux host, pods as network namespaces.
    Lab,
}

/// Options of `harness up`.
pub struct UpArgs {
    pub backend: Backend,
    pub cilium_version: String,
    pub reuse: bool,
    pub existing: bool,
    pub context: Option<String>,
    pub agent_image: Option<String>,
}

pub fn up(root: &Path, a: UpArgs) -> Outcome {
    if a.backend == Backend::Lab {
        return up_lab(root);
    }
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
        testbed::Target::Lab(_) => {}
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
/// The Kafka topics the scenarios use (the lab's broker creates none on first use).
fn scenario_kafka_topics(root: &Path) -> Result<Vec<String>, Failure> {
    let stack = harness::stack::Stack::load(&root.join("fixtures/stack.yaml"))?;
    let scenarios = harness::scenario::load_scenarios(&root.join("fixtures/scenarios"), &stack)?;
    Ok(testbed::lab::topics_of(scenarios.iter().filter_map(
        |s| match &s.request {
            Some(harness::scenario::Request::Kafka(k)) => Some(k.topic.clone()),
            _ => None,
        },
    )))
}

/// Builds the in-pod agent for this host (`cargo build -p agent`, the profile the tests share) and returns
/// its path; `HARNESS_AGENT_BIN` names a binary to use instead.
fn build_agent(root: &Path) -> Result<PathBuf, Failure> {
    if let Some(bin) = std::env::var_os("HARNESS_AGENT_BIN").map(PathBuf::from) {
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Failure::Bed(format!(
                "HARNESS_AGENT_BIN={} is not a file",
                bin.display()
            )))
        };
    }
    eprintln!("building the in-pod agent for this host: cargo build --locked -p agent");
    let mut cargo =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--locked", "-p", "agent"])
        .current_dir(root);
    // Under `cargo run`, cargo's variables for the running package (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...)
    // are in the environment; a build script that reruns when one changes (ring's, on
    // CARGO_MANIFEST_DIR) would then be rebuilt, with everything above it, on every `up` and again by the
    // next plain `cargo build`. The child gets the environment of a plain cargo command.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_cargo_run_variable) {
            cargo.env_remove(&key);
        }
    }
    let status = cargo
        .status()
        .map_err(|e| Failure::Bed(format!("cannot run cargo to build the agent: {e}")))?;
    if !status.success() {
        return Err(Failure::Bed(
            "cargo build -p agent failed (see above)".into(),
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/agent");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Failure::Bed(format!(
            "the agent was built but {} is missing",
            bin.display()
        )))
    }
}

/// The variables cargo sets for the package it runs (not the user's configuration of cargo).
fn is_cargo_run_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "CARGO_TARGET_TMPDIR"
        )
}

/// Where `harness conform` runs the suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Live, on this backend.
    Live(Backend),
    /// No live test bed can run here: the offline check, labelled a prediction, with why each backend
    /// cannot run.
    Offline { kind: String, lab: String },
}

/// The backend `conform` uses: the one asked for; else kind when a Docker engine answers; else the lab
/// when this host can run it; else the offline check.
pub fn choose_backend(
    asked: Option<Backend>,
    docker: &Result<(), String>,
    lab: &Result<(), String>,
) -> Choice {
    match (asked, docker, lab) {
        (Some(b), _, _) => Choice::Live(b),
        (None, Ok(()), _) => Choice::Live(Backend::Kind),
        (None, Err(_), Ok(())) => Choice::Live(Backend::Lab),
        (None, Err(k), Err(l)) => Choice::Offline {
            kind: k.clone(),
            lab: l.clone(),
        },
    }
}

/// Whether a Docker engine answers (`docker info`).
fn docker_answers() -> Result<(), String> {
    match std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(
            "Docker is installed but `docker info` fails (no engine running, or no access)".into(),
        ),
        Err(_) => Err("Docker is not installed".into()),
    }
}

/// Whether this host can run the lab (`scripts/lab.sh preflight`: Linux, root, BPF, BTF, VXLAN; the Debian
/// packages it lacks, such as clang, count as present when `up` can install them).
fn lab_possible(root: &Path) -> Result<(), String> {
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/lab.sh"))
        .args(["preflight", "--allow-installable"])
        .output()
        .map_err(|e| format!("cannot run scripts/lab.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stderr);
        Err(text
            .lines()
            .map(|l| l.trim_start_matches("lab: "))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// The backend `harness conform` uses on this machine (see [`choose_backend`]).
pub fn conform_choice(root: &Path, asked: Option<Backend>) -> Choice {
    match asked {
        Some(b) => Choice::Live(b),
        None => choose_backend(None, &docker_answers(), &lab_possible(root)),
    }
}

/// Options of `harness conform`.
pub struct ConformArgs {
    pub posture: String,
    pub posture_dir: PathBuf,
    pub results: PathBuf,
    pub expect: Expect,
}

/// `harness conform` on a live backend: brings the test bed up (kept when it is already up), applies the
/// posture, runs every scenario and writes the results.
pub fn conform(root: &Path, backend: Backend, a: ConformArgs) -> Outcome {
    eprintln!("conform: backend {backend:?}, posture {}", a.posture);
    match backend {
        Backend::Lab => {
            up_lab(root)?;
        }
        Backend::Kind => {
            up(
                root,
                UpArgs {
                    backend,
                    cilium_version: testbed::DEFAULT_CILIUM_VERSION.into(),
                    reuse: true,
                    existing: false,
                    context: None,
                    agent_image: None,
                },
            )?;
        }
    }
    apply(root, &a.posture, &a.posture_dir)?;
    run(
        root,
        RunArgs {
            posture: a.posture,
            posture_dir: a.posture_dir,
            scenarios: root.join("fixtures/scenarios"),
            filter: None,
            results: a.results,
            concurrency: 8,
            relay: None,
            expect: a.expect,
            connect_timeout_ms: probe_wire::DEFAULT_CONNECT_TIMEOUT_MS,
            timeout_ms: probe_wire::DEFAULT_TIMEOUT_MS,
            nudge_after: RunOptions::default().nudge_after,
        },
    )
}

/// `harness up --backend lab`.
fn up_lab(root: &Path) -> Outcome {
    let lab = testbed::lab::LabOptions {
        agent_bin: build_agent(root)?,
        kafka_topics: scenario_kafka_topics(root)?,
        skip_build: false,
    };
    let mut opts = testbed::UpOptions::kind(root);
    opts.state_file = state_file(root);
    opts.target = testbed::Target::Lab(lab);
    let progress = testbed::TerminalProgress::stderr();
    let state = runtime()?
        .block_on(testbed::up(&opts, &progress))
        .map_err(|e| {
            Failure::Bed(format!(
                "{e}\n(`harness down` removes whatever was created)"
            ))
        })?;
    eprintln!(
        "lab ready: Cilium {}, kubeconfig {}, Hubble Relay {}, state in {}",
        state.cilium_version.as_deref().unwrap_or("unknown"),
        state
            .kubeconfig
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        state.relay_address.as_deref().unwrap_or_default(),
        opts.state_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn apply(root: &Path, posture: &str, dir: &Path) -> Outcome {
    let files = harness::load::yaml_files(dir)?;
    let policies = harness::policy::load_policies(&files)?;
    let state = load_state(root)?;
    // The same CRD-schema check as `check`: a posture the API server would refuse is refused here, before
    // anything reaches the cluster (exit 2).
    let schema_version: CiliumVersion = state
        .cilium_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(harness::model::DEFAULT_VERSION);
    for note in harness::schema::validate_policy_files(&files, schema_version)? {
        eprintln!("note: {note}");
    }
    // The policies the API server accepts but Cilium's agent refuses (the model knows which, for the
    // test bed's version): the wait must not expect them in the agent's repository.
    let version: CiliumVersion = state
        .cilium_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(harness::model::DEFAULT_VERSION);
    let stack = harness::stack::Stack::load(&root.join("fixtures/stack.yaml"))?;
    let model = harness::model::Model::build(
        &policies,
        harness::model::Model::identities_of(&stack),
        version,
    );
    let mut options = testbed::ApplyOptions::default();
    for p in &model.policies {
        if let harness::model::PolicyStatus::Rejected { reason } = &p.status {
            options.agent_refuses.insert(p.name.clone(), reason.clone());
        }
    }
    let progress = testbed::TerminalProgress::stderr();
    let report = runtime()?
        .block_on(testbed::apply_posture(
            &state, posture, &files, &options, &progress,
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
    /// The directory of scenario files (fixtures/scenarios by default).
    pub scenarios: PathBuf,
    pub filter: Option<String>,
    pub results: PathBuf,
    pub concurrency: usize,
    pub relay: Option<String>,
    pub expect: Expect,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    /// The runner's nudge (`RunOptions::nudge_after`).
    pub nudge_after: Option<std::time::Duration>,
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
        scenarios: a.scenarios.clone(),
        helm_values: Some(root.join("kind/cilium-values.yaml")),
        version,
    };
    let loaded = check::load(&inputs)?;
    let mut scenarios = loaded.scenarios.clone();
    if let Some(f) = &a.filter {
        let re = regex::Regex::new(f).map_err(|e| InputError::Invalid(format!("--filter: {e}")))?;
        let all = scenarios.len();
        scenarios.retain(|s| re.is_match(&s.id) || re.is_match(&format!("{}::{}", s.phase, s.id)));
        // A typo'd filter must not pass a run with nothing in it.
        if scenarios.is_empty() {
            return Err(InputError::Invalid(format!(
                "--filter `{f}` matches none of the {all} scenarios; ids look like `{}`",
                loaded
                    .scenarios
                    .first()
                    .map(|s| s.id.as_str())
                    .unwrap_or("edge-lb-https")
            ))
            .into());
        }
    }
    let env = runner::environment(&version.to_string(), &a.posture);
    let results = match state {
        Err(Failure::Bed(why)) => {
            return not_run(
                &a.results,
                runner::setup_failed(env, &loaded.model, &scenarios, &why),
                why,
            );
        }
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
                nudge_after: a.nudge_after,
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
                    Err(why) => Err((
                        runner::setup_failed(env, &loaded.model, &scenarios, &why),
                        why,
                    )),
                    Ok(bed) => {
                        progress.step_started(&format!("Run {} scenario(s)", scenarios.len()));
                        let started = std::time::Instant::now();
                        let before = bed.hubble_stats().await;
                        let rs = runner::run(&bed, &loaded.model, &scenarios, &opts).await;
                        if let (Some(b), Some(a)) = (before, bed.hubble_stats().await) {
                            let elapsed = started.elapsed();
                            let flows = a.flows.saturating_sub(b.flows);
                            eprintln!(
                                "Hubble: {flows} flow(s) of the probes seen during the {} ms of scenarios ({:.0} flows/s), {} event(s) reported lost",
                                elapsed.as_millis(),
                                flows as f64 / elapsed.as_secs_f64().max(0.001),
                                a.lost_events.saturating_sub(b.lost_events)
                            );
                        }
                        let mut env = env;
                        env.cilium = state.cilium_version.clone().unwrap_or(env.cilium);
                        env.kubernetes = bed.kubernetes_version().await;
                        if state.mode == testbed::Mode::Kind {
                            env.kind = kind_node_image(root);
                        }
                        Ok(runner::results(env, &loaded.model, rs))
                    }
                }
            })
        }
    };
    let results = match results {
        Ok(r) => r,
        Err((r, why)) => return not_run(&a.results, r, why),
    };
    write_results(&a.results, &results)?;
    let text = harness::report::render(
        &results,
        harness::report::ReportFormat::Table,
        harness::output::use_colour(),
    );
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    eprintln!("results written to {}", a.results.display());
    let accept = AcceptNotApplicable::from_env();
    let refused = harness::runner::accept::unaccepted(&results.scenarios, &accept);
    if !refused.is_empty() {
        eprintln!(
            "{} scenario(s) not applicable on this test bed, which fails the run (accept them explicitly with {}=id,id, no-envoy for those that need Envoy, or *):",
            refused.len(),
            harness::runner::accept::ACCEPT_ENV
        );
        for s in refused {
            eprintln!("  {}: {}", s.id, s.reason);
        }
    }
    Ok(if run_succeeded(&results, a.expect, &accept) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A run whose set-up failed: nothing was run, so no table is printed. The results document is written with
/// the cause as its `setup_error` (every scenario inconclusive), and the cause is the one error the command
/// states (exit 1).
fn not_run(path: &Path, mut results: Results, why: String) -> Outcome {
    results.setup_error = Some(why.clone());
    write_results(path, &results)?;
    Err(Failure::Bed(format!(
        "{why}\n(no scenario was run; {} scenario(s) recorded as inconclusive in {})",
        results.scenarios.len(),
        path.display()
    )))
}

/// The kind node image of kind/cluster.yaml (`kindest/node:v1.34.11@sha256:...`), for the results.
fn kind_node_image(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("kind/cluster.yaml")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(|i| i.trim().to_string())
}

/// Whether a run meets what was expected of it. Not applicable is never a pass: such a scenario fails the
/// run unless `accept` names it; inconclusive always fails it.
pub fn run_succeeded(r: &Results, expect: Expect, accept: &AcceptNotApplicable) -> bool {
    harness::runner::accept::run_succeeded(&r.scenarios, matches!(expect, Expect::Model), accept)
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

/// The test bed of a live upgrade: it must exist and run Cilium `from` (major.minor).
fn upgrade_bed(root: &Path, from: CiliumVersion) -> Result<testbed::State, Failure> {
    let state = load_state(root)?;
    let installed: Option<CiliumVersion> =
        state.cilium_version.as_deref().and_then(|v| v.parse().ok());
    if installed.map(|v| (v.major, v.minor)) != Some((from.major, from.minor)) {
        return Err(Failure::Bed(format!(
            "the test bed runs Cilium {}, not {from}: run `harness up --cilium-version {from}` first",
            state.cilium_version.as_deref().unwrap_or("unknown"),
        )));
    }
    Ok(state)
}

/// Predict the upgrade offline (check at both versions, diff), then, unless `predict_only`, run the suite on
/// the test bed, upgrade Cilium with Helm, re-apply the posture, run again and diff.
pub fn upgrade(root: &Path, a: UpgradeArgs) -> Outcome {
    let out_dir = root.join(".harness");
    // The test bed first: without one, a live upgrade cannot run, and the prediction would only bury that.
    let bed = if a.predict_only {
        None
    } else {
        Some(upgrade_bed(root, a.from)?)
    };
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
    let Some(mut state) = bed else {
        return Err(Failure::Bed(
            "internal: no test bed state for a live upgrade".into(),
        ));
    };
    let run_args = |results: PathBuf| RunArgs {
        posture: a.posture.clone(),
        posture_dir: a.posture_dir.clone(),
        scenarios: root.join("fixtures/scenarios"),
        filter: None,
        results,
        concurrency: 8,
        relay: None,
        expect: Expect::Intent,
        connect_timeout_ms: probe_wire::DEFAULT_CONNECT_TIMEOUT_MS,
        timeout_ms: probe_wire::DEFAULT_TIMEOUT_MS,
        nudge_after: RunOptions::default().nudge_after,
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
    #[test]
    fn the_agent_build_drops_the_variables_of_the_running_package_and_keeps_cargos_configuration() {
        use super::is_cargo_run_variable as run_var;
        for k in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_BIN_NAME",
        ] {
            assert!(run_var(k), "{k}");
        }
        for k in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_INCREMENTAL",
        ] {
            assert!(!run_var(k), "{k}");
        }
    }

    #[test]
    fn conform_picks_kind_with_docker_the_lab_without_and_offline_when_neither_can_run() {
        use super::{Backend, Choice, choose_backend};
        let yes = Ok(());
        let no = |why: &str| Err(why.to_string());
        assert_eq!(
            choose_backend(None, &yes, &yes),
            Choice::Live(Backend::Kind)
        );
        assert_eq!(
            choose_backend(None, &yes, &no("not root")),
            Choice::Live(Backend::Kind)
        );
        assert_eq!(
            choose_backend(None, &no("no docker"), &yes),
            Choice::Live(Backend::Lab)
        );
        assert_eq!(
            choose_backend(None, &no("no docker"), &no("not root")),
            Choice::Offline {
                kind: "no docker".into(),
                lab: "not root".into()
            }
        );
        // --backend wins over what the machine offers.
        assert_eq!(
            choose_backend(Some(Backend::Lab), &yes, &no("not root")),
            Choice::Live(Backend::Lab)
        );
    }

    use super::*;
    use harness::results::Status;

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
    fn a_run_succeeds_only_when_every_scenario_passes_or_is_accepted_as_not_applicable() {
        let none = AcceptNotApplicable::none();
        let accepted = AcceptNotApplicable::parse("edge-outsider-https");
        let mut r = run_doc();
        assert!(
            !run_succeeded(&r, Expect::Intent, &accepted),
            "the scripted run has failures"
        );
        for s in &mut r.scenarios {
            if s.status != Status::NotApplicable {
                s.status = Status::Pass;
            }
        }
        assert!(
            !run_succeeded(&r, Expect::Intent, &none),
            "edge-outsider-https is not applicable: never a pass by itself"
        );
        assert!(run_succeeded(&r, Expect::Intent, &accepted));
        r.scenarios[0].status = Status::Inconclusive;
        assert!(
            !run_succeeded(&r, Expect::Intent, &accepted),
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
        let accepted = AcceptNotApplicable::parse("edge-outsider-https");
        assert!(run_succeeded(&r, Expect::Model, &accepted));
        assert!(!run_succeeded(
            &r,
            Expect::Model,
            &AcceptNotApplicable::none()
        ));
        r.scenarios[1].model_divergence = true;
        assert!(!run_succeeded(&r, Expect::Model, &accepted));
    }
}
