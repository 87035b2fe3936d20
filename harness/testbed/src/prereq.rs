//! The prerequisites of a kind test bed, checked before `harness up` changes anything: a working Docker
//! engine, and kind, helm and kubectl at the versions `scripts/install-tools.sh` pins.

use std::path::Path;

use crate::command::{CommandOutput, CommandRunner, CommandSpec, Tools, output_tail};

/// The command that installs the pinned tools.
pub const INSTALL_TOOLS: &str = "bash scripts/install-tools.sh";

/// The tools `up` needs besides Docker, in the order they are checked.
pub const PINNED_TOOLS: [&str; 3] = ["kind", "helm", "kubectl"];

/// A pinned version of each tool, as scripts/install-tools.sh states it (`KIND_VERSION="v0.33.0"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    pub kind: String,
    pub helm: String,
    pub kubectl: String,
}

impl Pins {
    pub fn of(&self, tool: &str) -> Option<&str> {
        match tool {
            "kind" => Some(&self.kind),
            "helm" => Some(&self.helm),
            "kubectl" => Some(&self.kubectl),
            _ => None,
        }
    }

    /// Reads the pins from the installer script, so that the check and the installer never disagree.
    pub fn load(installer: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(installer)
            .map_err(|e| format!("{}: {e}", installer.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", installer.display()))
    }

    pub fn parse(script: &str) -> Result<Self, String> {
        let pin = |var: &str| {
            script
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(var)
                        .and_then(|rest| rest.strip_prefix('='))
                })
                .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("no {var}=\"vX.Y.Z\" line"))
        };
        Ok(Self {
            kind: pin("KIND_VERSION")?,
            helm: pin("HELM_VERSION")?,
            kubectl: pin("KUBECTL_VERSION")?,
        })
    }
}

/// The command printing a tool's own version.
pub fn version_command(tools: &Tools, tool: &str) -> CommandSpec {
    let spec = CommandSpec::new(tools.program(tool));
    match tool {
        "helm" => spec.args(["version", "--template", "{{.Version}}"]),
        "kubectl" => spec.args(["version", "--client"]),
        _ => spec.arg("version"),
    }
}

/// The first `vX.Y.Z` in a tool's version output, without a build suffix (`kind v0.33.0 go1.25 linux/amd64`,
/// `v4.3.0`, `Client Version: v1.34.11`).
pub fn parse_version(out: &CommandOutput) -> Option<String> {
    out.stdout_text()
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .find_map(|token| {
            let rest = token.strip_prefix('v')?;
            let core: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let parts: Vec<&str> = core.split('.').collect();
            (parts.len() == 3 && parts.iter().all(|p| !p.is_empty())).then(|| format!("v{core}"))
        })
}

/// The Docker engine's platform (`docker version --format {{.Server.Os}}/{{.Server.Arch}}`), which the
/// agent image is built for.
pub fn docker_platform_command(tools: &Tools) -> CommandSpec {
    CommandSpec::new(tools.docker()).args([
        "version",
        "--format",
        "{{.Server.Os}}/{{.Server.Arch}}",
    ])
}

/// `linux/amd64` from the engine's answer; the host's own platform when the answer is not one.
pub fn parse_platform(out: &CommandOutput) -> String {
    let text = out.stdout_text();
    let text = text.trim();
    match text.split_once('/') {
        Some((os, arch)) if out.success() && !os.is_empty() && !arch.is_empty() => text.to_string(),
        _ => host_platform(),
    }
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// What the checks found out that `up` uses later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prerequisites {
    /// The platform to build the agent image for (`linux/amd64`).
    pub platform: String,
}

/// Checks Docker and every pinned tool and returns every problem at once, each naming its remedy.
///
/// `docker_problem` is the result of the caller's `docker info` check (`None`: Docker works).
pub async fn check_tools(
    runner: &dyn CommandRunner,
    tools: &Tools,
    pins: &Pins,
    docker_problem: Option<String>,
) -> Result<Prerequisites, Vec<String>> {
    let mut problems: Vec<String> = docker_problem.into_iter().collect();
    for tool in PINNED_TOOLS {
        let wanted = pins.of(tool).unwrap_or_default();
        let cmd = version_command(tools, tool);
        let problem = match runner.run(&cmd, None).await {
            Err(_) => Some(format!(
                "{tool} {wanted} is not installed (neither in .tools/bin nor on PATH): run `{INSTALL_TOOLS}`"
            )),
            Ok(out) if !out.success() => Some(format!(
                "`{cmd}` failed: {}; run `{INSTALL_TOOLS}`",
                output_tail(&out, 3).trim()
            )),
            Ok(out) => match parse_version(&out) {
                Some(v) if v == wanted => None,
                Some(v) => Some(format!(
                    "{tool} is {v} ({}), but the harness is tested with {wanted}: run `{INSTALL_TOOLS}` (it installs into .tools/bin, which the harness uses first)",
                    cmd.program
                )),
                None => Some(format!("`{cmd}` printed no version: run `{INSTALL_TOOLS}`")),
            },
        };
        problems.extend(problem);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let platform = match runner.run(&docker_platform_command(tools), None).await {
        Ok(out) => parse_platform(&out),
        Err(_) => host_platform(),
    };
    Ok(Prerequisites { platform })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::fake::FakeRunner;

    fn pins() -> Pins {
        Pins {
            kind: "v0.33.0".into(),
            helm: "v4.3.0".into(),
            kubectl: "v1.34.11".into(),
        }
    }

    #[test]
    fn pins_come_from_the_installer_script() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let pins = Pins::load(&root.join("scripts/install-tools.sh")).unwrap();
        for tool in PINNED_TOOLS {
            let v = pins.of(tool).unwrap();
            assert!(
                v.starts_with('v') && v.matches('.').count() == 2,
                "{tool} {v}"
            );
        }
        assert!(
            Pins::parse("KIND_VERSION=\"v1.0.0\"\n")
                .unwrap_err()
                .contains("HELM_VERSION")
        );
    }

    #[test]
    fn versions_are_read_from_each_tools_own_output() {
        let v = |s: &str| parse_version(&CommandOutput::ok(s));
        assert_eq!(
            v("kind v0.33.0 go1.25.3 linux/amd64\n").as_deref(),
            Some("v0.33.0")
        );
        assert_eq!(v("v4.3.0").as_deref(), Some("v4.3.0"));
        assert_eq!(
            v("Client Version: v1.32.4-dispatcher\nKustomize Version: v5.5.0\n").as_deref(),
            Some("v1.32.4")
        );
        assert_eq!(v("version unknown"), None);
    }

    #[tokio::test]
    async fn every_missing_or_mispinned_tool_is_named_with_the_install_command() {
        let fake = FakeRunner::new();
        fake.on(
            &["kind", "version"],
            CommandOutput::ok("kind v0.33.0 go1.25 linux/amd64\n"),
        );
        fake.on(
            &["helm", "version"],
            CommandOutput::failed(127, "helm: not found"),
        );
        fake.on(
            &["kubectl", "version"],
            CommandOutput::ok("Client Version: v1.30.0\n"),
        );
        let problems = check_tools(
            &fake,
            &Tools::default(),
            &pins(),
            Some("Docker is not available: Cannot connect".into()),
        )
        .await
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("Docker"), "{}", problems[0]);
        assert!(problems[1].contains("helm"), "{}", problems[1]);
        assert!(
            problems[2].contains("v1.30.0") && problems[2].contains("v1.34.11"),
            "{}",
            problems[2]
        );
        assert!(problems[1..].iter().all(|p| p.contains(INSTALL_TOOLS)));
        // Nothing but version checks ran: no network, no cluster.
        assert!(
            fake.argvs().iter().all(|a| a[1] == "version"),
            "{:?}",
            fake.argvs()
        );
    }

    #[tokio::test]
    async fn tools_that_are_missing_or_at_another_version_are_each_reported() {
        let problems = check_tools(
            &crate::command::SystemRunner,
            &Tools::default(),
            &Pins {
                kind: "v0.0.1".into(),
                helm: "v0.0.1".into(),
                kubectl: "v0.0.1".into(),
            },
            None,
        )
        .await;
        // Whatever is installed on this machine (or not), v0.0.1 of a tool is not.
        let problems = problems.unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems.iter().all(|p| p.contains(INSTALL_TOOLS)));
    }

    #[tokio::test]
    async fn the_image_platform_is_the_docker_engines() {
        let fake = FakeRunner::new();
        fake.on(&["kind", "version"], CommandOutput::ok("kind v0.33.0\n"));
        fake.on(&["helm", "version"], CommandOutput::ok("v4.3.0"));
        fake.on(
            &["kubectl", "version"],
            CommandOutput::ok("Client Version: v1.34.11\n"),
        );
        fake.on(&["docker", "version"], CommandOutput::ok("linux/arm64\n"));
        let p = check_tools(&fake, &Tools::default(), &pins(), None)
            .await
            .unwrap();
        assert_eq!(p.platform, "linux/arm64");
        assert!(parse_platform(&CommandOutput::failed(1, "")).starts_with("linux/"));
    }
}
