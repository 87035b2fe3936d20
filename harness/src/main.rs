//! The `harness` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use harness::check::{self, Inputs};
use harness::load::InputError;
use harness::model::CiliumVersion;
use harness::{eval, output, policy, stack::Stack};

mod live_cmd;

/// Conformance harness for Cilium network policy.
///
/// Scenarios (fixtures/scenarios) state the security contract; postures (policies/) are sets of
/// CiliumNetworkPolicies. The model predicts and explains every verdict offline (`check`, `eval`).
///
/// The live commands (`up`, `apply`, `run`, `down`, `upgrade`) need Docker and the tools of
/// scripts/install-tools.sh; they stand up a kind cluster with Cilium and Hubble, deploy the stack, apply a
/// posture and prove every scenario with real traffic and Hubble's flows.
///
/// Exit codes: 0 every intent met, 1 a gap or failure, 2 bad input (file, line and field are named).
#[derive(Parser, Debug)]
#[command(name = "harness", version, about, long_about)]
struct Cli {
    /// Repository root (default: the nearest parent directory holding fixtures/stack.yaml).
    #[arg(long, global = true, env = "HARNESS_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a posture against every scenario with the policy model, offline.
    ///
    /// Prints each scenario's intent, the model's verdict and why. A deny at another layer or direction
    /// than the intent names counts as a gap ("right verdict, wrong reason"). Policies that the chosen
    /// Cilium version rejects (Kafka rules on 1.20, rules without sections on 1.18+) are reported and left
    /// out, as the cluster would.
    Check {
        /// A posture name under policies/ (seed, hardened) or a directory of policy files.
        #[arg(long, default_value = "hardened")]
        posture: String,
        /// Cilium version whose semantics to apply (MAJOR.MINOR[.PATCH]).
        #[arg(long, default_value = "1.19")]
        cilium_version: CiliumVersion,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also write the results document (JSON) to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only scenarios whose id matches this regular expression.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Set up the test bed: Docker network, kind cluster, Cilium + Hubble, the stack, the outside hosts.
    ///
    /// Idempotent. Shows each step with its elapsed time and writes .harness/state.json, which the other
    /// live commands read. With --existing, uses the current kube context's cluster (which must already run
    /// Cilium): deploys only the stack, never installs Cilium, and records exactly what it created.
    Up {
        /// Cilium chart version to install (kind only).
        #[arg(long, env = "HARNESS_CILIUM_VERSION", default_value = testbed::DEFAULT_CILIUM_VERSION)]
        cilium_version: String,
        /// Keep an existing kind cluster of the same name.
        #[arg(long)]
        reuse: bool,
        /// Use the existing cluster of the current (or --context) kube context instead of kind.
        #[arg(long)]
        existing: bool,
        /// Kube context (with --existing).
        #[arg(long, requires = "existing")]
        context: Option<String>,
        /// The agent image as the existing cluster can pull it (with --existing).
        #[arg(long, requires = "existing")]
        agent_image: Option<String>,
    },
    /// Apply a posture: strict server-side apply, removal of the other posture's policies, then wait until
    /// every Cilium agent enforces it.
    ///
    /// The posture is first checked by the harness's own parser: a bad file is exit 2 and nothing is
    /// applied. A policy the API server rejects (for example `kafka` rules on Cilium 1.20) is reported with
    /// the server's message.
    Apply {
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
    },
    /// Run every scenario on the test bed with real traffic and Hubble evidence.
    ///
    /// Each scenario is judged on four columns: intent, model, client outcome, Hubble verdict. Deny probes
    /// stop as soon as Hubble reports the drop. Writes the results document (also when set-up failed) and
    /// prints the table. Exit 0 when every scenario passed (or, with --expect model, when every observation
    /// matched the model).
    Run {
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
        /// Only scenarios whose id (or phase::id) matches this regular expression.
        #[arg(long)]
        filter: Option<String>,
        /// Where to write the results document.
        #[arg(long, default_value = ".harness/results.json")]
        results: PathBuf,
        /// Scenarios in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Hubble Relay address (default: the test bed's, 127.0.0.1:4245 on kind).
        #[arg(long)]
        relay: Option<String>,
        /// What counts as success.
        #[arg(long, value_enum, default_value_t = live_cmd::Expect::Intent)]
        expect: live_cmd::Expect,
        /// Probe connect deadline in milliseconds.
        #[arg(long, default_value_t = probe_wire::DEFAULT_CONNECT_TIMEOUT_MS)]
        connect_timeout_ms: u64,
        /// Probe overall deadline in milliseconds.
        #[arg(long, default_value_t = probe_wire::DEFAULT_TIMEOUT_MS)]
        timeout_ms: u64,
    },
    /// Remove the test bed (cluster, outside hosts, network; on an existing cluster exactly what `up`
    /// created) and check that nothing is left.
    Down,
    /// Predict a Cilium upgrade offline, then run the suite before and after upgrading in place.
    ///
    /// The prediction checks the posture with the model at both versions and diffs the results (1.19 ->
    /// 1.20 shows the Kafka rules going). Without --predict-only, the test bed must run --from: the suite
    /// runs, Cilium is upgraded with Helm, the posture is re-applied strictly, the suite runs again, and the
    /// two results are diffed. Exit 1 on a widening (deny became allow) the model did not predict (with
    /// --predict-only: on any predicted widening), unless --allow-widening. Files go to .harness/.
    Upgrade {
        #[arg(long)]
        from: CiliumVersion,
        #[arg(long)]
        to: CiliumVersion,
        /// The chart version to upgrade to, if --to is only MAJOR.MINOR (e.g. 1.20.2).
        #[arg(long)]
        to_chart: Option<String>,
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
        /// Only the offline prediction.
        #[arg(long)]
        predict_only: bool,
        #[arg(long)]
        allow_widening: bool,
    },
    /// Render a results document (from `check` or `run`) for people.
    Report {
        /// The results file (JSON).
        file: PathBuf,
        /// table: for a terminal (colour when stdout is a terminal); markdown: for $GITHUB_STEP_SUMMARY;
        /// html: a self-contained page.
        #[arg(long, value_enum, default_value_t = harness::report::ReportFormat::Table)]
        format: harness::report::ReportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Compare two results documents scenario by scenario.
    ///
    /// Classifies every change: widening (deny became allow: the dangerous one), narrowing (allow became
    /// deny), evidence-only changes, new and removed scenarios. Exits 1 when anything widened, unless
    /// --allow-widening.
    Diff {
        before: PathBuf,
        after: PathBuf,
        /// Do not fail on widening.
        #[arg(long)]
        allow_widening: bool,
        /// Markdown instead of plain text.
        #[arg(long)]
        markdown: bool,
    },
    /// Decide ad-hoc flows from a query file against any policies; JSON on stdout.
    ///
    /// See the README ("Query format") for the file format.
    Eval {
        /// Policy files or directories.
        #[arg(long, num_args = 1.., required = true)]
        policies: Vec<PathBuf>,
        /// The stack description (default: fixtures/stack.yaml).
        #[arg(long)]
        stack: Option<PathBuf>,
        /// The query file.
        #[arg(long)]
        queries: PathBuf,
        /// Cilium version whose semantics to apply.
        #[arg(long, default_value = "1.19")]
        cilium_version: CiliumVersion,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

fn find_root(explicit: Option<PathBuf>) -> Result<PathBuf, InputError> {
    if let Some(r) = explicit {
        if r.join("fixtures/stack.yaml").is_file() {
            return Ok(r);
        }
        return Err(InputError::Invalid(format!(
            "--root {}: no fixtures/stack.yaml there",
            r.display()
        )));
    }
    let mut dir = std::env::current_dir()
        .map_err(|e| InputError::Invalid(format!("cannot read the current directory: {e}")))?;
    loop {
        if dir.join("fixtures/stack.yaml").is_file() {
            return Ok(dir);
        }
        if !dir.pop() {
            break;
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("fixtures/stack.yaml").is_file() {
        return Ok(built);
    }
    Err(InputError::Invalid(
        "cannot find the repository (a directory holding fixtures/stack.yaml): run inside it or pass --root".into(),
    ))
}

fn posture_dir(root: &Path, posture: &str) -> Result<PathBuf, InputError> {
    let as_path = PathBuf::from(posture);
    if as_path.is_dir() {
        return Ok(as_path);
    }
    let named = root.join("policies").join(posture);
    if named.is_dir() {
        return Ok(named);
    }
    let known: Vec<String> = std::fs::read_dir(root.join("policies"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Err(InputError::Invalid(format!(
        "--posture {posture}: neither a directory nor a posture under policies/ (known: {})",
        known.join(", ")
    )))
}

fn run(cli: Cli) -> Result<ExitCode, InputError> {
    let root = find_root(cli.root)?;
    match cli.command {
        Command::Check {
            posture,
            cilium_version,
            format,
            output: out_file,
            filter,
        } => {
            let dir = posture_dir(&root, &posture)?;
            let inputs = Inputs {
                policies: vec![dir],
                posture: posture.clone(),
                stack_file: root.join("fixtures/stack.yaml"),
                scenarios: root.join("fixtures/scenarios"),
                helm_values: Some(root.join("kind/cilium-values.yaml")),
                version: cilium_version,
            };
            let mut results = check::run(&inputs)?;
            if let Some(f) = filter {
                let re = regex::Regex::new(&f)
                    .map_err(|e| InputError::Invalid(format!("--filter: {e}")))?;
                results.scenarios.retain(|s| re.is_match(&s.id));
                results.summary = harness::results::Summary::of(&results.scenarios);
            }
            let json = serde_json::to_string_pretty(&results)
                .map_err(|e| InputError::Invalid(e.to_string()))?;
            if let Some(path) = out_file {
                std::fs::write(&path, &json).map_err(|source| InputError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            let mut stdout = std::io::stdout().lock();
            let text = match format {
                Format::Json => json,
                Format::Table => output::check_table(&results, output::use_colour()),
            };
            let _ = writeln!(stdout, "{text}");
            Ok(if results.summary.gaps == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Up {
            cilium_version,
            reuse,
            existing,
            context,
            agent_image,
        } => live(live_cmd::up(
            &root,
            live_cmd::UpArgs {
                cilium_version,
                reuse,
                existing,
                context,
                agent_image,
            },
        )),
        Command::Apply { posture } => {
            let dir = posture_dir(&root, &posture)?;
            live(live_cmd::apply(&root, &posture, &dir))
        }
        Command::Run {
            posture,
            filter,
            results,
            concurrency,
            relay,
            expect,
            connect_timeout_ms,
            timeout_ms,
        } => {
            let posture_dir = posture_dir(&root, &posture)?;
            let results = if results.is_absolute() {
                results
            } else {
                root.join(results)
            };
            live(live_cmd::run(
                &root,
                live_cmd::RunArgs {
                    posture,
                    posture_dir,
                    filter,
                    results,
                    concurrency,
                    relay,
                    expect,
                    connect_timeout_ms,
                    timeout_ms,
                },
            ))
        }
        Command::Down => live(live_cmd::down(&root)),
        Command::Upgrade {
            from,
            to,
            to_chart,
            posture,
            predict_only,
            allow_widening,
        } => {
            let posture_dir = posture_dir(&root, &posture)?;
            live(live_cmd::upgrade(
                &root,
                live_cmd::UpgradeArgs {
                    from,
                    to,
                    to_chart,
                    posture,
                    posture_dir,
                    predict_only,
                    allow_widening,
                },
            ))
        }
        Command::Report {
            file,
            format,
            output: out_file,
        } => {
            let results = harness::results::Results::read(&file)?;
            let colour = out_file.is_none() && output::use_colour();
            let text = harness::report::render(&results, format, colour);
            match out_file {
                Some(path) => std::fs::write(&path, text).map_err(|source| InputError::Io {
                    path: path.clone(),
                    source,
                })?,
                None => {
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            before,
            after,
            allow_widening,
            markdown,
        } => {
            let b = harness::results::Results::read(&before)?;
            let a = harness::results::Results::read(&after)?;
            let d = harness::diff::diff(&b, &a);
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                harness::diff::render(&d, markdown)
            );
            Ok(if d.has_widening() && !allow_widening {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Eval {
            policies,
            stack,
            queries,
            cilium_version,
        } => {
            let stack = Stack::load(&stack.unwrap_or_else(|| root.join("fixtures/stack.yaml")))?;
            let policies = policy::load_policies(&policies)?;
            let out = eval::run(&policies, &stack, &queries, cilium_version)?;
            let json = serde_json::to_string_pretty(&out)
                .map_err(|e| InputError::Invalid(e.to_string()))?;
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Map a live command's failure: bad input is exit 2 (via the caller), a test bed failure exit 1.
fn live(r: live_cmd::Outcome) -> Result<ExitCode, InputError> {
    match r {
        Ok(code) => Ok(code),
        Err(live_cmd::Failure::Input(e)) => Err(e),
        Err(live_cmd::Failure::Bed(why)) => {
            eprintln!("error: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
