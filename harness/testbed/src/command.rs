//! External commands (`docker`, `kind`, `helm`) behind one small interface.
//!
//! Everything the test bed does outside Kubernetes goes through [`CommandRunner`], so that tests can
//! substitute [`fake::FakeRunner`] and assert the exact commands of a plan without Docker.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use crate::BoxFuture;

/// One command line: program, arguments, extra environment and working directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl CommandSpec {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The program's file name followed by the arguments (what tests and messages compare).
    pub fn argv(&self) -> Vec<String> {
        let program = Path::new(&self.program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.clone());
        std::iter::once(program)
            .chain(self.args.iter().cloned())
            .collect()
    }
}

impl fmt::Display for CommandSpec {
    /// A shell-like rendering for messages (not meant to be pasted into a shell verbatim).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={v} ")?;
        }
        write!(f, "{}", self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains([' ', '\'', '"', '$', '{', '}']) {
                write!(f, " '{}'", a.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// What a finished command printed and how it exited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when the process was ended by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            code: Some(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    pub fn failed(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Errors from running an external command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "could not start `{program}` (is it installed? run scripts/install-tools.sh or put it on PATH): {source}"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {after:?} and was stopped")]
    TimedOut { command: String, after: Duration },
    #[error("`{command}` failed with {}:\n{output_tail}", exit_text(*code))]
    Failed {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "a signal".to_string(),
    }
}

/// Runs external commands.
///
/// # Caveats
/// A non-zero exit is not an error here (callers decide, see [`run_checked`]). When `deadline` passes the
/// local process is killed; for `docker exec` that does not stop the process inside the container.
pub trait CommandRunner: Send + Sync {
    fn run<'a>(
        &'a self,
        cmd: &'a CommandSpec,
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>>;
}

/// Runs `cmd` and turns a non-zero exit into [`CommandError::Failed`] with the tail of its output.
pub async fn run_checked(
    runner: &dyn CommandRunner,
    cmd: &CommandSpec,
    deadline: Option<Instant>,
) -> Result<CommandOutput, CommandError> {
    let out = runner.run(cmd, deadline).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(CommandError::Failed {
            command: cmd.to_string(),
            code: out.code,
            output_tail: output_tail(&out, 40),
        })
    }
}

/// The last `lines` lines of stderr, then of stdout (tools print their errors to either).
pub fn output_tail(out: &CommandOutput, lines: usize) -> String {
    let mut text = String::new();
    for stream in [out.stderr_text(), out.stdout_text()] {
        let all: Vec<&str> = stream.lines().collect();
        let start = all.len().saturating_sub(lines);
        for l in &all[start..] {
            text.push_str("  ");
            text.push_str(l);
            text.push('\n');
        }
    }
    text
}

/// Runs commands as local processes (stdin closed, output captured, killed when dropped).
#[derive(Clone, Debug, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run<'a>(
        &'a self,
        cmd: &'a CommandSpec,
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut command = tokio::process::Command::new(&cmd.program);
            command
                .args(&cmd.args)
                .envs(cmd.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if let Some(dir) = &cmd.cwd {
                command.current_dir(dir);
            }
            let child = command.spawn().map_err(|source| CommandError::Spawn {
                program: cmd.program.clone(),
                source,
            })?;
            let wait = child.wait_with_output();
            let output =
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, wait).await.map_err(|_| {
                        CommandError::TimedOut {
                            command: cmd.to_string(),
                            after: started.elapsed(),
                        }
                    })?,
                    None => wait.await,
                }
                .map_err(|source| CommandError::Spawn {
                    program: cmd.program.clone(),
                    source,
                })?;
            Ok(CommandOutput {
                code: output.status.code(),
                stdout: output.stdout,
                stderr: output.stderr,
            })
        })
    }
}

/// Where the pinned tools live: `.tools/bin/<name>` when present (scripts/install-tools.sh), else `PATH`.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    pub bin_dir: Option<PathBuf>,
}

impl Tools {
    /// Tools from `<repo>/.tools/bin` when that directory exists.
    pub fn for_repo(root: &Path) -> Self {
        let dir = root.join(".tools").join("bin");
        Self {
            bin_dir: dir.is_dir().then_some(dir),
        }
    }

    /// The program to run for `name`: the project-local binary if installed, else the bare name.
    pub fn program(&self, name: &str) -> String {
        if let Some(dir) = &self.bin_dir {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate.to_string_lossy().into_owned();
            }
        }
        name.to_string()
    }

    pub fn docker(&self) -> String {
        self.program("docker")
    }
    pub fn kind(&self) -> String {
        self.program("kind")
    }
    pub fn helm(&self) -> String {
        self.program("helm")
    }
}

/// An in-process runner for tests: answers from rules and records every command it was asked to run.
pub mod fake {
    use std::sync::Mutex;

    use super::*;

    struct Rule {
        prefix: Vec<String>,
        output: CommandOutput,
        remaining: Option<usize>,
    }

    /// Answers each command with the output of the first rule whose argv prefix matches (program file name
    /// then arguments); commands matching no rule succeed with empty output.
    #[derive(Default)]
    pub struct FakeRunner {
        rules: Mutex<Vec<Rule>>,
        log: Mutex<Vec<CommandSpec>>,
    }

    impl FakeRunner {
        pub fn new() -> Self {
            Self::default()
        }

        /// Every command starting with `prefix` gets `output`.
        pub fn on(&self, prefix: &[&str], output: CommandOutput) -> &Self {
            self.push(prefix, output, None)
        }

        /// The next command starting with `prefix` gets `output` (once); later ones fall through.
        pub fn once(&self, prefix: &[&str], output: CommandOutput) -> &Self {
            self.push(prefix, output, Some(1))
        }

        fn push(&self, prefix: &[&str], output: CommandOutput, remaining: Option<usize>) -> &Self {
            let rule = Rule {
                prefix: prefix.iter().map(|s| s.to_string()).collect(),
                output,
                remaining,
            };
            self.rules
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(rule);
            self
        }

        /// The commands run so far, in order.
        pub fn commands(&self) -> Vec<CommandSpec> {
            self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        /// The argv (program file name + arguments) of every command run so far.
        pub fn argvs(&self) -> Vec<Vec<String>> {
            self.commands().iter().map(CommandSpec::argv).collect()
        }
    }

    impl CommandRunner for FakeRunner {
        fn run<'a>(
            &'a self,
            cmd: &'a CommandSpec,
            _deadline: Option<Instant>,
        ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cmd.clone());
            let argv = cmd.argv();
            let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
            let hit = rules.iter_mut().find(|r| {
                r.remaining != Some(0)
                    && argv.len() >= r.prefix.len()
                    && argv[..r.prefix.len()] == r.prefix[..]
            });
            let output = match hit {
                Some(rule) => {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    rule.output.clone()
                }
                None => CommandOutput::ok(Vec::new()),
            };
            Box::pin(async move { Ok(output) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn system_runner_reports_exit_code_and_output() {
        let out = SystemRunner
            .run(
                &CommandSpec::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
    }

    #[tokio::test]
    async fn system_runner_stops_a_command_at_its_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let err = SystemRunner
            .run(&CommandSpec::new("sleep").arg("30"), Some(deadline))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn run_checked_turns_nonzero_exit_into_error_with_output_tail() {
        let err = run_checked(
            &SystemRunner,
            &CommandSpec::new("sh").args(["-c", "echo boom >&2; exit 1"]),
            None,
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit code 1") && text.contains("boom"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error_naming_it() {
        let err = SystemRunner
            .run(&CommandSpec::new("definitely-not-a-tool-xyz"), None)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("definitely-not-a-tool-xyz"),
            "{err}"
        );
    }

    #[test]
    fn tools_fall_back_to_path_names_without_a_tools_dir() {
        let dir = tempfile::tempdir().unwrap();
        let tools = Tools::for_repo(dir.path());
        assert_eq!(tools.kind(), "kind");
        std::fs::create_dir_all(dir.path().join(".tools/bin")).unwrap();
        std::fs::write(dir.path().join(".tools/bin/kind"), "").unwrap();
        let tools = Tools::for_repo(dir.path());
        assert!(tools.kind().ends_with(".tools/bin/kind"));
        assert_eq!(tools.helm(), "helm");
    }

    #[tokio::test]
    async fn fake_runner_matches_prefixes_and_counts_once_rules() {
        let fake = fake::FakeRunner::new();
        fake.once(
            &["docker", "network", "inspect"],
            CommandOutput::failed(1, "no such network"),
        );
        let cmd = CommandSpec::new("/x/docker").args(["network", "inspect", "n"]);
        assert_eq!(fake.run(&cmd, None).await.unwrap().code, Some(1));
        assert_eq!(fake.run(&cmd, None).await.unwrap().code, Some(0));
        assert_eq!(fake.argvs()[0], vec!["docker", "network", "inspect", "n"]);
    }
}
