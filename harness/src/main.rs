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
        /// Cilium version whose semantics to apply (MAJOR.MINOR[.PATCH]; 1.16 to 1.20).
        #[arg(long, default_value = "1.19", value_parser = harness::model::version::parse_covered)]
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
        /// The directory of scenario files to judge (every *.yaml in it).
        #[arg(long, default_value = "fixtures/scenarios")]
        scenarios: PathBuf,
        /// Also ask Cilium's own policy engine (the Go program in oracle/, Cilium 1.19) every scenario and
        /// print whether it agrees with the model. Needs Go the first time (the oracle is built once and
        /// cached); 1.19 only. Exit 1 when it disagrees.
        #[arg(long)]
        oracle: bool,
    },
    /// Set up the test bed: Docker network, kind cluster, Cilium + Hubble, the stack, the outside hosts.
    ///
    /// Idempotent. Shows each step with its elapsed time and writes .harness/state.json, which the other
    /// live commands read. With --existing, uses the current kube context's cluster (which must already run
    /// Cilium): deploys only the stack, never installs Cilium, and records exactly what it created.
    Up {
        /// Where to build the test bed: `kind` (a kind cluster in Docker) or `lab` (a real Cilium agent,
        /// control plane and the stack's pods as processes and network namespaces on this Linux host, no
        /// Docker; needs root, BPF with BTF, VXLAN and clang >= 18; builds its binaries from Go modules
        /// the first time, about 30 minutes). The lab's Cilium version is the one lab/cilium/go.mod pins.
        #[arg(
            long,
            env = "HARNESS_BACKEND",
            value_enum,
            default_value = "kind",
            conflicts_with = "existing"
        )]
        backend: live_cmd::Backend,
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
    /// The main job in one command: bring up a live test bed (kept if it is already up), apply the
    /// posture, run every scenario with real traffic and Hubble evidence, write the results.
    ///
    /// The backend is chosen by itself unless --backend says: kind when a Docker engine answers, else the
    /// lab when this host can run it (Linux, root, BPF with BTF, VXLAN, clang >= 18; its first build takes
    /// about 30 minutes), else no live run at all: the offline check, labelled a prediction.
    Conform {
        /// kind or lab; default: chosen as described above.
        #[arg(long, env = "HARNESS_BACKEND", value_enum)]
        backend: Option<live_cmd::Backend>,
        /// A posture name under policies/ (seed, hardened) or a directory of policy files.
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
        /// Where to write the results document.
        #[arg(long, default_value = ".harness/results.json")]
        results: PathBuf,
        /// What makes the run a success: every intent met, or every observation as the model predicted.
        #[arg(long, value_enum, default_value_t = live_cmd::Expect::Intent)]
        expect: live_cmd::Expect,
    },
    /// Apply a posture: strict server-side apply, removal of the other posture's policies, then wait until
    /// every Cilium agent enforces it.
    ///
    /// The posture is first checked by the harness's own parser: a bad file is exit 2 and nothing is
    /// applied. A policy the API server rejects (for example `kafka` rules on Cilium 1.20) is reported with
    /// the server's message.
    Apply {
        /// A posture name under policies/ (seed, hardened) or a directory of policy files.
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
        /// The posture the cluster enforces (applied with `apply`): a name under policies/ or a directory;
        /// the model's predictions are computed from it.
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
        /// Only scenarios whose id (or phase::id) matches this regular expression.
        #[arg(long)]
        filter: Option<String>,
        /// The directory of scenario files to run (every *.yaml in it).
        #[arg(long, default_value = "fixtures/scenarios")]
        scenarios: PathBuf,
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
        /// When a probe's client has finished and Hubble has not decided within this many milliseconds,
        /// send a nudge: a TCP connect from the same source to the destination's port 9. Hubble serves an
        /// event only once the next one is written, so on a quiet node a probe's last event (such as the
        /// DNS proxy's record of a refused query) otherwise waits for other traffic. 0: never nudge.
        #[arg(long, default_value_t = 100)]
        hubble_nudge_ms: u64,
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
        /// The Cilium version the test bed runs now (MAJOR.MINOR[.PATCH]; 1.16 to 1.20).
        #[arg(long, value_parser = harness::model::version::parse_covered)]
        from: CiliumVersion,
        /// The Cilium version to upgrade to (MAJOR.MINOR[.PATCH]; 1.16 to 1.20).
        #[arg(long, value_parser = harness::model::version::parse_covered)]
        to: CiliumVersion,
        /// The chart version to upgrade to, if --to is only MAJOR.MINOR (e.g. 1.20.2).
        #[arg(long)]
        to_chart: Option<String>,
        /// A posture name under policies/ (seed, hardened) or a directory of policy files.
        #[arg(long, env = "HARNESS_POSTURE", default_value = "hardened")]
        posture: String,
        /// Only the offline prediction.
        #[arg(long)]
        predict_only: bool,
        /// Do not fail (exit 1) on a widening against the intent; it is still reported.
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
        /// The earlier results document (JSON from `check --output` or `run --results`).
        before: PathBuf,
        /// The later results document, compared with BEFORE.
        after: PathBuf,
        /// Do not fail (exit 1) on a widening against the intent; it is still reported.
        #[arg(long)]
        allow_widening: bool,
        /// Markdown instead of plain text.
        #[arg(long)]
        markdown: bool,
    },
    /// Would the scenarios notice a realistic mistake in the posture? Mutation analysis, offline.
    ///
    /// Makes single-mistake variants of every policy (operators: label-drop, label-value, selector-empty,
    /// match-expressions, rule-drop, to-ports-drop, l7-drop, port-change, protocol-any, http-method,
    /// http-path, http-header-drop, kafka-topic, kafka-role, kafka-client-id, cidr-widen, cidr-except-drop,
    /// peer-entities, deny-rule-drop, policy-delete), keeps those the policy parser and the Cilium version
    /// accept, and judges each against the scenarios: killed, survived, or equivalent (no flow of the stack
    /// gets another verdict, proven by comparing every flow). For each survivor: the change, whether it
    /// widens or narrows, and a scenario that kills it. Exit 0: no non-equivalent mutant survives; 1: one
    /// does; 2: bad input.
    Mutate {
        /// A posture name under policies/ (seed, hardened) or a directory of policy files.
        #[arg(long, default_value = "hardened")]
        posture: String,
        /// Cilium version whose semantics to apply (MAJOR.MINOR[.PATCH]).
        #[arg(long, default_value = "1.19")]
        cilium_version: CiliumVersion,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = MutateFormat::Table)]
        format: MutateFormat,
        /// Comma-separated operator names (default: all).
        #[arg(long)]
        operators: Option<String>,
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
        /// Cilium version whose semantics to apply (MAJOR.MINOR[.PATCH]; 1.16 to 1.20).
        #[arg(long, default_value = "1.19", value_parser = harness::model::version::parse_covered)]
        cilium_version: CiliumVersion,
        /// Also write the identities the queries are decided over (stack, query workloads, addresses) to
        /// this file, in the JSON form the oracle reads (oracle/README.md).
        #[arg(long)]
        dump_identities: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum MutateFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

/// `harness check`: every scenario against the model, offline.
/// Options of `harness check`.
struct CheckArgs {
    posture: String,
    cilium_version: harness::model::CiliumVersion,
    format: Format,
    out_file: Option<PathBuf>,
    filter: Option<String>,
    scenarios: PathBuf,
    oracle: bool,
}

fn check_command(root: &Path, a: CheckArgs) -> Result<ExitCode, InputError> {
    let CheckArgs {
        posture,
        cilium_version,
        format,
        out_file,
        filter,
        scenarios,
        oracle,
    } = a;
    let posture = posture.as_str();
    if oracle && harness::oracle::release_for(cilium_version).is_none() {
        return Err(InputError::Invalid(format!(
            "--oracle: the oracle is built for Cilium {} only; it cannot check --cilium-version {cilium_version}",
            harness::oracle::minors()
        )));
    }
    let dir = posture_dir(root, posture)?;
    let inputs = Inputs {
        policies: vec![dir.clone()],
        posture: posture.to_string(),
        stack_file: root.join("fixtures/stack.yaml"),
        scenarios: scenarios.clone(),
        helm_values: Some(root.join("kind/cilium-values.yaml")),
        version: cilium_version,
    };
    let loaded = check::load(&inputs)?;
    for n in &loaded.notes {
        eprintln!("note: {n}");
    }
    let mut results = check::check_loaded(&inputs, &loaded);
    if let Some(f) = filter {
        check::apply_filter(&mut results, &f)?;
    }
    let json =
        serde_json::to_string_pretty(&results).map_err(|e| InputError::Invalid(e.to_string()))?;
    if let Some(path) = out_file {
        harness::load::write_text(&path, &json)?;
    }
    let mut stdout = std::io::stdout().lock();
    let text = match format {
        Format::Json => json,
        Format::Table => harness::report::render(
            &results,
            harness::report::ReportFormat::Table,
            output::use_colour(),
        ),
    };
    let _ = writeln!(stdout, "{text}");
    drop(stdout);
    let mut agrees = true;
    if oracle {
        let ids: std::collections::BTreeSet<&str> =
            results.scenarios.iter().map(|s| s.id.as_str()).collect();
        let asked: Vec<harness::scenario::Scenario> = loaded
            .scenarios
            .iter()
            .filter(|s| ids.contains(s.id.as_str()))
            .cloned()
            .collect();
        agrees = match oracle_check(root, &loaded.stack, &asked, &dir, cilium_version) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: --oracle: {e}");
                false
            }
        };
    }
    Ok(if results.summary.gaps == 0 && agrees {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `check --oracle`: the scenarios asked of Cilium's own engine; prints the agreement on stderr (stdout
/// keeps the table or the JSON document). True when every field both decide agrees.
fn oracle_check(
    root: &Path,
    stack: &harness::stack::Stack,
    scenarios: &[harness::scenario::Scenario],
    posture_dir: &Path,
    version: harness::model::CiliumVersion,
) -> Result<bool, harness::oracle::OracleError> {
    use harness::oracle;
    let release = oracle::release_for(version).unwrap_or(&oracle::RELEASES[0]);
    eprintln!(
        "oracle: asking Cilium {}'s policy engine (oracle/; built with Go on first use, then cached in {})",
        release.release,
        oracle::cache_dir().display()
    );
    let d = oracle::differential(
        &oracle::Oracle::build(root, release)?,
        stack,
        scenarios,
        posture_dir,
        version,
    )?;
    let skipped = scenarios.len() - d.asked.len();
    eprintln!(
        "Cilium {}'s engine: {} of {} flow scenario(s) agree with the model{}",
        release.release,
        d.agreeing(),
        d.asked.len(),
        if skipped > 0 {
            format!(" ({skipped} configuration check(s) have no flow to ask)")
        } else {
            String::new()
        }
    );
    for p in &d.policies {
        eprintln!("  disagrees: {p}");
    }
    for (id, fields) in &d.scenarios {
        for f in fields {
            eprintln!("  disagrees: {id}: {f}");
        }
    }
    Ok(d.policies.is_empty() && d.scenarios.is_empty())
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

/// A path from the command line: as given when it exists from the current directory, otherwise under the
/// project root (so that the defaults work from any directory of the checkout).
fn relative_to(root: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.exists() {
        path
    } else {
        root.join(path)
    }
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
            scenarios,
            oracle,
        } => check_command(
            &root,
            CheckArgs {
                posture,
                cilium_version,
                format,
                out_file,
                filter,
                scenarios: relative_to(&root, scenarios),
                oracle,
            },
        ),
        Command::Conform {
            backend,
            posture,
            results,
            expect,
        } => {
            let dir = posture_dir(&root, &posture)?;
            let results = if results.is_absolute() {
                results
            } else {
                root.join(results)
            };
            match live_cmd::conform_choice(&root, backend) {
                live_cmd::Choice::Live(b) => live(live_cmd::conform(
                    &root,
                    b,
                    live_cmd::ConformArgs {
                        posture,
                        posture_dir: dir,
                        results,
                        expect,
                    },
                )),
                live_cmd::Choice::Offline { kind, lab } => {
                    eprintln!(
                        "no live test bed can run on this machine:\n  kind: {kind}\n  lab: {lab}\nrunning the offline check instead. What follows is a PREDICTION of the model, not live evidence."
                    );
                    check_command(
                        &root,
                        CheckArgs {
                            posture,
                            cilium_version: harness::model::DEFAULT_VERSION,
                            format: Format::Table,
                            out_file: None,
                            filter: None,
                            scenarios: root.join("fixtures/scenarios"),
                            oracle: false,
                        },
                    )
                }
            }
        }
        Command::Up {
            backend,
            cilium_version,
            reuse,
            existing,
            context,
            agent_image,
        } => live(live_cmd::up(
            &root,
            live_cmd::UpArgs {
                backend,
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
            scenarios,
            results,
            concurrency,
            relay,
            expect,
            connect_timeout_ms,
            timeout_ms,
            hubble_nudge_ms,
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
                    scenarios: relative_to(&root, scenarios),
                    filter,
                    results,
                    concurrency,
                    relay,
                    expect,
                    connect_timeout_ms,
                    timeout_ms,
                    nudge_after: (hubble_nudge_ms > 0)
                        .then(|| std::time::Duration::from_millis(hubble_nudge_ms)),
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
                Some(path) => harness::load::write_text(&path, &text)?,
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
        Command::Mutate {
            posture,
            cilium_version,
            format,
            operators,
        } => {
            let dir = posture_dir(&root, &posture)?;
            let opts = harness::mutate::Options {
                inputs: harness::mutate::inputs_for(&root, &posture, dir, cilium_version),
                operators: harness::mutate::parse_operators(operators.as_deref())?,
            };
            let report = harness::mutate::run(&opts)?;
            let text = match format {
                MutateFormat::Json => serde_json::to_string_pretty(&report)
                    .map_err(|e| InputError::Invalid(e.to_string()))?,
                MutateFormat::Table => harness::mutate::render::table(&report),
                MutateFormat::Markdown => harness::mutate::render::markdown(&report),
            };
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            Ok(if report.summary.survived == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval {
            policies,
            stack,
            queries,
            cilium_version,
            dump_identities,
        } => {
            let stack = Stack::load(&stack.unwrap_or_else(|| root.join("fixtures/stack.yaml")))?;
            if let Some(path) = dump_identities {
                let ids = eval::read_query_identities(&stack, &queries)?;
                let json = serde_json::to_string_pretty(&harness::oracle::dump_identities(&ids))
                    .map_err(|e| InputError::Invalid(e.to_string()))?;
                harness::load::write_text(&path, &json)?;
            }
            let loaded = policy::load_policies(&policies)?;
            let mut files = Vec::new();
            for p in &policies {
                files.extend(harness::load::yaml_files(p)?);
            }
            for n in harness::schema::validate_policy_files(&files, cilium_version)? {
                eprintln!("note: {n}");
            }
            let out = eval::run(&loaded, &stack, &queries, cilium_version)?;
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
