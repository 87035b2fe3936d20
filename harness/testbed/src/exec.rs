//! Running a probe: in a workload's pod (Kubernetes exec) or in an outside host (`docker exec`).
//!
//! The runner talks to [`ProbeExecutor`]; [`LiveExecutor`] is the real one, and tests substitute their own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::BoxFuture;
use crate::client::ConnectError;
use crate::client::api_message;
use crate::command::{CommandError, CommandRunner, SystemRunner, Tools};
use crate::manifests::LABEL_WORKLOAD;
use crate::plan::outside_exec;
use crate::readiness::{pod_ready, pod_summary};
use crate::state::{OutsideHosts, State};

/// What a finished probe command left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// Why a probe command could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no Ready pod labelled {LABEL_WORKLOAD}={workload} in namespace {namespace}: {detail}")]
    NoPod {
        namespace: String,
        workload: String,
        detail: String,
    },
    #[error("pod {namespace}/{pod} has no container running the agent image {image}")]
    NoAgentContainer {
        namespace: String,
        pod: String,
        image: String,
    },
    /// The outside host does not exist on this test bed (e.g. an existing cluster); the scenario is not
    /// applicable, for this reason.
    #[error("outside host {host} is not available: {reason}")]
    NotApplicable { host: String, reason: String },
    #[error(
        "{target}: the command did not finish before its deadline ({after:.1?}) and was abandoned"
    )]
    DeadlineExceeded { target: String, after: Duration },
    #[error("{target}: could not run the command: {message}")]
    Failed { target: String, message: String },
}

/// Runs probe commands where the scenario's client lives.
pub trait ProbeExecutor: Send + Sync {
    /// Runs `args` in the agent container of the pod of workload `workload` (a Deployment whose pods carry
    /// `harness/workload=<workload>`) in `namespace`.
    fn exec_in_workload<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a str,
        args: &'a [String],
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>>;

    /// Runs `args` in the outside host called `host` (`lb`, `outsider`, `partner`).
    fn exec_in_outside_host<'a>(
        &'a self,
        host: &'a str,
        args: &'a [String],
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>>;
}

/// The exit code carried by the Kubernetes remote-command status: `Success` is 0; a `NonZeroExitCode`
/// failure carries it in a cause with reason `ExitCode`. Any other failure (e.g. the program does not exist)
/// is an error with the server's message.
pub fn exit_code_from_status(status: Option<&Status>) -> Result<i32, String> {
    let Some(status) = status else {
        return Err("the exec stream ended without an exit status".into());
    };
    match status.status.as_deref() {
        Some("Success") => Ok(0),
        Some("Failure") if status.reason.as_deref() == Some("NonZeroExitCode") => status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse().ok())
            .ok_or_else(|| "non-zero exit without a readable exit code".to_string()),
        _ => Err(status
            .message
            .clone()
            .unwrap_or_else(|| format!("exec failed ({:?})", status.reason))),
    }
}

/// The agent container of a pod: the one whose image is `image`.
pub fn agent_container<'a>(pod: &'a Pod, image: &str) -> Option<&'a str> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.image.as_deref() == Some(image))
        .map(|c| c.name.as_str())
}

/// Picks the pod to run in: a Ready one, the newest if several (during a rollout).
pub fn pick_pod(pods: &[Pod]) -> Result<&Pod, String> {
    let mut ready: Vec<&Pod> = pods.iter().filter(|p| pod_ready(p).is_ok()).collect();
    ready.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    match ready.last() {
        Some(p) => Ok(p),
        None if pods.is_empty() => Err("no pods".into()),
        None => Err(pods
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.metadata.name.as_deref().unwrap_or("?"),
                    pod_summary(p)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// Runs probes on the live test bed: Kubernetes exec in pods, `docker exec` in outside hosts.
pub struct LiveExecutor {
    client: Client,
    agent_image: String,
    outside: OutsideHosts,
    tools: Tools,
    runner: Arc<dyn CommandRunner>,
}

impl LiveExecutor {
    pub fn new(
        client: Client,
        state: &State,
        tools: Tools,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        Self {
            client,
            agent_image: state.agent_image.clone(),
            outside: state.outside.clone(),
            tools,
            runner,
        }
    }

    /// The executor for the test bed of `state`: its kube context, and Docker from `<root>/.tools/bin` or
    /// `PATH`.
    pub async fn connect(state: &State, root: &Path) -> Result<Self, ConnectError> {
        let (client, _) = crate::client::connect_state(state).await?;
        Ok(Self::new(
            client,
            state,
            Tools::for_repo(root),
            Arc::new(SystemRunner),
        ))
    }

    async fn exec_pod(
        &self,
        namespace: &str,
        workload: &str,
        args: &[String],
        deadline: Instant,
    ) -> Result<ExecOutput, ExecError> {
        let target = format!("{namespace}/{workload}");
        let started = Instant::now();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let no_pod = |detail: String| ExecError::NoPod {
            namespace: namespace.to_string(),
            workload: workload.to_string(),
            detail,
        };
        let work = async {
            let list = pods
                .list(&ListParams::default().labels(&format!("{LABEL_WORKLOAD}={workload}")))
                .await
                .map_err(|e| no_pod(api_message(&e)))?;
            let pod = pick_pod(&list.items).map_err(no_pod)?;
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let container = agent_container(pod, &self.agent_image).ok_or_else(|| {
                ExecError::NoAgentContainer {
                    namespace: namespace.to_string(),
                    pod: pod_name.clone(),
                    image: self.agent_image.clone(),
                }
            })?;
            run_in_pod(&pods, namespace, &pod_name, container, args).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(ExecError::DeadlineExceeded {
                target,
                after: started.elapsed(),
            }),
        }
    }

    /// The container of outside host `host`, or why it is not available on this test bed.
    fn outside_container(&self, host: &str) -> Result<String, ExecError> {
        match &self.outside {
            OutsideHosts::Started { hosts, .. } => hosts
                .iter()
                .find(|h| h.name == host)
                .map(|h| h.container.clone())
                .ok_or_else(|| ExecError::NotApplicable {
                    host: host.into(),
                    reason: "no outside host of that name".into(),
                }),
            OutsideHosts::NotAvailable { reason } => Err(ExecError::NotApplicable {
                host: host.into(),
                reason: reason.clone(),
            }),
            OutsideHosts::NotStarted => Err(ExecError::Failed {
                target: format!("outside host {host}"),
                message: crate::state::OUTSIDE_NOT_STARTED.into(),
            }),
        }
    }

    async fn exec_outside(
        &self,
        host: &str,
        args: &[String],
        deadline: Instant,
    ) -> Result<ExecOutput, ExecError> {
        let container = self.outside_container(host)?;
        run_docker_exec(
            self.runner.as_ref(),
            &self.tools,
            &container,
            args,
            deadline,
        )
        .await
    }
}

/// Runs `args` in container `container` of pod `namespace/pod` and collects its output and exit code.
///
/// # Caveats
/// No deadline of its own: wrap it in `tokio::time::timeout_at`. Abandoning it closes the stream; the
/// process in the container may keep running until it ends by itself.
pub async fn exec_in_pod(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    args: &[String],
) -> Result<ExecOutput, ExecError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    run_in_pod(&pods, namespace, pod, container, args).await
}

async fn run_in_pod(
    pods: &Api<Pod>,
    namespace: &str,
    pod: &str,
    container: &str,
    args: &[String],
) -> Result<ExecOutput, ExecError> {
    let failed = |message: String| ExecError::Failed {
        target: format!("pod {namespace}/{pod}"),
        message,
    };
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(pod, args.iter().cloned(), &params)
        .await
        .map_err(|e| failed(api_message(&e)))?;
    let status = process
        .take_status()
        .ok_or_else(|| failed("no status channel".into()))?;
    let (stdout, stderr) = (process.stdout(), process.stderr());
    let (out, err, status) = tokio::join!(read_all(stdout), read_all(stderr), status);
    let exit_code = exit_code_from_status(status.as_ref()).map_err(failed)?;
    process.join().await.map_err(|e| failed(e.to_string()))?;
    Ok(ExecOutput {
        stdout: out.map_err(|e| failed(e.to_string()))?,
        stderr: err.map_err(|e| failed(e.to_string()))?,
        exit_code,
    })
}

pub(crate) async fn read_all<R: tokio::io::AsyncRead + Unpin>(
    reader: Option<R>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = reader {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// `docker exec` in an outside host's container. Docker's own failures (container gone or stopped) are
/// errors, not exit codes of the probe.
pub async fn run_docker_exec(
    runner: &dyn CommandRunner,
    tools: &Tools,
    container: &str,
    args: &[String],
    deadline: Instant,
) -> Result<ExecOutput, ExecError> {
    let target = format!("outside host container {container}");
    let started = Instant::now();
    let cmd = outside_exec(tools, container, args);
    match runner.run(&cmd, Some(deadline)).await {
        Ok(out) => {
            let stderr = out.stderr_text();
            if out.code != Some(0) && stderr.starts_with("Error response from daemon") {
                return Err(ExecError::Failed {
                    target,
                    message: stderr.trim().to_string(),
                });
            }
            let exit_code = out.code.ok_or_else(|| ExecError::Failed {
                target: target.clone(),
                message: "docker exec was ended by a signal".into(),
            })?;
            Ok(ExecOutput {
                stdout: out.stdout,
                stderr: out.stderr,
                exit_code,
            })
        }
        Err(CommandError::TimedOut { .. }) => Err(ExecError::DeadlineExceeded {
            target,
            after: started.elapsed(),
        }),
        Err(e) => Err(ExecError::Failed {
            target,
            message: e.to_string(),
        }),
    }
}

/// A pod found for a workload: its name, address and the container that runs the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlace {
    pub pod: String,
    pub ip: std::net::IpAddr,
    pub container: Option<String>,
}

impl LiveExecutor {
    /// The Ready pod of `namespace` matching `selector` (a label selector such as
    /// `harness/workload=api` or `k8s-app=kube-dns`), with its IP.
    ///
    /// # Errors
    /// No Ready pod, no IP yet, or the API call failed.
    pub async fn pod_place(&self, namespace: &str, selector: &str) -> Result<PodPlace, ExecError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let no_pod = |detail: String| ExecError::NoPod {
            namespace: namespace.to_string(),
            workload: selector.to_string(),
            detail,
        };
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| no_pod(api_message(&e)))?;
        let pod = pick_pod(&list.items).map_err(no_pod)?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| no_pod("the pod has no IP yet".into()))?;
        Ok(PodPlace {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            ip,
            container: agent_container(pod, &self.agent_image).map(str::to_string),
        })
    }

    /// Runs `args` in the agent container of `namespace/pod` with standard input held open; when `cancel`
    /// fires, writes a line to it (the agent's signal to stop and report). Bounded by `deadline`.
    pub async fn exec_pod_cancellable(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        args: &[String],
        deadline: Instant,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<ExecOutput, ExecError> {
        let target = format!("pod {namespace}/{pod}");
        let started = Instant::now();
        let failed = |message: String| ExecError::Failed {
            target: target.clone(),
            message,
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let work = async {
            let params = cancellable_attach_params(container);
            let mut process = pods
                .exec(pod, args.iter().cloned(), &params)
                .await
                .map_err(|e| failed(api_message(&e)))?;
            let status = process
                .take_status()
                .ok_or_else(|| failed("no status channel".into()))?;
            let stdin = process.stdin();
            let (stdout, stderr) = (process.stdout(), process.stderr());
            let reading = async { tokio::join!(read_all(stdout), read_all(stderr), status) };
            let (out, err, status) = signal_on_cancel(reading, stdin, cancel).await;
            let exit_code = exit_code_from_status(status.as_ref()).map_err(failed)?;
            Ok(ExecOutput {
                stdout: out.map_err(|e| failed(e.to_string()))?,
                stderr: err.map_err(|e| failed(e.to_string()))?,
                exit_code,
            })
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ExecError::DeadlineExceeded {
                target,
                after: started.elapsed(),
            }),
        }
    }

    /// Runs `args` in the outside host `host` (`docker exec -i`), with the same stop signal on stdin.
    pub async fn exec_outside_cancellable(
        &self,
        host: &str,
        args: &[String],
        deadline: Instant,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<ExecOutput, ExecError> {
        let container = self.outside_container(host)?;
        let target = format!("outside host container {container}");
        let started = Instant::now();
        let failed = |message: String| ExecError::Failed {
            target: target.clone(),
            message,
        };
        let mut child = tokio::process::Command::new(self.tools.docker())
            .arg("exec")
            .arg("-i")
            .arg(&container)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start docker: {e}")))?;
        let stdin = child.stdin.take();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let work = async {
            let reading = async { tokio::join!(read_all(stdout), read_all(stderr), child.wait()) };
            let (out, err, status) = signal_on_cancel(reading, stdin, cancel).await;
            let status = status.map_err(|e| failed(e.to_string()))?;
            let stderr = err.map_err(|e| failed(e.to_string()))?;
            let text = String::from_utf8_lossy(&stderr).to_string();
            if !status.success() && text.starts_with("Error response from daemon") {
                return Err(failed(text.trim().to_string()));
            }
            Ok(ExecOutput {
                stdout: out.map_err(|e| failed(e.to_string()))?,
                stderr,
                exit_code: status
                    .code()
                    .ok_or_else(|| failed("docker exec was ended by a signal".into()))?,
            })
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ExecError::DeadlineExceeded {
                target,
                after: started.elapsed(),
            }),
        }
    }

    /// The Kubernetes client of this test bed.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// How a cancellable probe is attached to in a pod: standard input held open (the stop line is written
/// to it), standard output and error read, no TTY (a TTY would mix the two streams and echo the stop line).
pub fn cancellable_attach_params(container: &str) -> AttachParams {
    AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .tty(false)
}

/// The line written to a probe's standard input to stop it (the agent stops on any input).
pub const STOP_LINE: &[u8] = b"stop\n";

/// Drives `reading` to completion; when `cancel` fires first, writes [`STOP_LINE`] to `stdin` (once) and
/// keeps driving `reading`, so the agent's report of what it saw until then is collected.
///
/// This is the only way the live test bed stops a probe; the runner's in-process test bed uses it too, so
/// its tests go through the same signal.
pub async fn signal_on_cancel<F, W>(
    reading: F,
    mut stdin: Option<W>,
    cancel: tokio_util::sync::CancellationToken,
) -> F::Output
where
    F: std::future::Future,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    tokio::pin!(reading);
    let mut signalled = false;
    loop {
        tokio::select! {
            out = &mut reading => return out,
            () = cancel.cancelled(), if !signalled => {
                signalled = true;
                if let Some(w) = stdin.as_mut() {
                    let _ = w.write_all(STOP_LINE).await;
                    let _ = w.flush().await;
                }
            }
        }
    }
}

impl ProbeExecutor for LiveExecutor {
    fn exec_in_workload<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a str,
        args: &'a [String],
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        Box::pin(self.exec_pod(namespace, workload, args, deadline))
    }

    fn exec_in_outside_host<'a>(
        &'a self,
        host: &'a str,
        args: &'a [String],
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        Box::pin(self.exec_outside(host, args, deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandOutput, fake::FakeRunner};
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, StatusCause, StatusDetails};

    fn status(s: &str, reason: Option<&str>, code: Option<&str>) -> Status {
        Status {
            status: Some(s.into()),
            reason: reason.map(Into::into),
            message: Some("command terminated with non-zero exit code".into()),
            details: code.map(|c| StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some(c.into()),
                    field: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exit_code_is_read_from_the_remote_command_status() {
        assert_eq!(
            exit_code_from_status(Some(&status("Success", None, None))),
            Ok(0)
        );
        assert_eq!(
            exit_code_from_status(Some(&status(
                "Failure",
                Some("NonZeroExitCode"),
                Some("28")
            ))),
            Ok(28)
        );
        assert!(exit_code_from_status(None).is_err());
        let other = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Default::default()
        };
        assert_eq!(
            exit_code_from_status(Some(&other)),
            Err("executable file not found".into())
        );
    }

    fn pod(name: &str, ready: bool, images: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|(n, i)| Container {
                        name: n.to_string(),
                        image: Some(i.to_string()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn agent_container_is_the_one_running_the_agent_image() {
        let p = pod(
            "pg",
            true,
            &[("postgres", "postgres:16"), ("agent", "harness-agent:dev")],
        );
        assert_eq!(agent_container(&p, "harness-agent:dev"), Some("agent"));
        assert_eq!(agent_container(&p, "other:1"), None);
    }

    #[test]
    fn only_ready_pods_are_picked_and_unready_ones_are_explained() {
        let pods = [pod("a", false, &[]), pod("b", true, &[])];
        assert_eq!(pick_pod(&pods).unwrap().metadata.name.as_deref(), Some("b"));
        let err = pick_pod(&pods[..1]).unwrap_err();
        assert!(err.starts_with("a: "), "{err}");
    }

    #[tokio::test]
    async fn docker_exec_returns_the_probe_exit_code_and_output() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "exec", "c-lb"],
            CommandOutput {
                code: Some(7),
                stdout: b"{}".to_vec(),
                stderr: vec![],
            },
        );
        let args = vec!["agent".to_string(), "probe".into()];
        let out = run_docker_exec(
            &fake,
            &Tools::default(),
            "c-lb",
            &args,
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            (out.exit_code, out.stdout.as_slice()),
            (7, b"{}".as_slice())
        );
        assert_eq!(
            fake.argvs()[0],
            ["docker", "exec", "c-lb", "agent", "probe"]
        );
    }

    #[tokio::test]
    async fn docker_daemon_errors_are_not_mistaken_for_probe_exit_codes() {
        let fake = FakeRunner::new();
        fake.on(
            &["docker", "exec"],
            CommandOutput::failed(1, "Error response from daemon: container x is not running"),
        );
        let err = run_docker_exec(
            &fake,
            &Tools::default(),
            "x",
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExecError::Failed { .. }), "{err}");
    }

    #[test]
    fn probes_in_pods_are_attached_with_stdin_open_for_the_stop_line() {
        let p = cancellable_attach_params("agent");
        assert!(
            p.stdin,
            "without stdin the stop line cannot reach the agent"
        );
        assert!(p.stdout && p.stderr && !p.tty);
        assert_eq!(p.container.as_deref(), Some("agent"));
    }

    /// What the agent's side of the pipe receives: the stop line only once cancelled, and the command's
    /// output is still collected afterwards.
    #[tokio::test]
    async fn cancelling_writes_the_stop_line_and_still_collects_the_answer() {
        use tokio::io::AsyncBufReadExt as _;
        let (stdin, agent_end) = tokio::io::duplex(64);
        let cancel = tokio_util::sync::CancellationToken::new();
        let agent = async move {
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(agent_end);
            let _ = reader.read_line(&mut line).await;
            format!("answer after {line:?}")
        };
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            signal_on_cancel(agent, Some(stdin), cancel),
        )
        .await
        .expect("the agent got its stop line");
        assert_eq!(out, r#"answer after "stop\n""#);
    }

    struct Hangs;
    impl CommandRunner for Hangs {
        fn run<'a>(
            &'a self,
            cmd: &'a crate::command::CommandSpec,
            deadline: Option<Instant>,
        ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
            Box::pin(async move {
                if let Some(d) = deadline {
                    tokio::time::sleep_until(d).await;
                }
                Err(CommandError::TimedOut {
                    command: cmd.to_string(),
                    after: Duration::ZERO,
                })
            })
        }
    }

    #[tokio::test]
    async fn a_hanging_outside_probe_ends_at_its_deadline() {
        let started = Instant::now();
        let err = run_docker_exec(
            &Hangs,
            &Tools::default(),
            "c-lb",
            &[],
            started + Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExecError::DeadlineExceeded { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
