//! Real PostgreSQL and Kafka-protocol servers for the probe tests.
//!
//! Which servers, by environment (`AGENT_TEST_SERVERS`):
//! - `local`: PostgreSQL from its server binaries (`PG_BIN_DIR`, else the newest
//!   `/usr/lib/postgresql/*/bin`), started with initdb/pg_ctl in a temp dir on a loopback port; the
//!   `tansu` broker (`TANSU_BIN`, else `tansu` on PATH, else `~/.cargo/bin/tansu`) with in-memory storage.
//! - `docker`: the real images through testcontainers (postgres:16, apache/kafka:3.9.1).
//! - unset: `local` when its binaries are found, else `docker` when a Docker socket is, else the test
//!   fails with a message saying what to install. It never skips.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::runners::SyncRunner;

use super::{Guard, free_port, wait_for_port};

/// Which kind of servers to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    Docker,
}

fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists()
}

fn backend(local_found: bool, what: &str, install: &str) -> Backend {
    match std::env::var("AGENT_TEST_SERVERS").as_deref() {
        Ok("local") => {
            assert!(
                local_found,
                "AGENT_TEST_SERVERS=local but no local {what}: {install}"
            );
            Backend::Local
        }
        Ok("docker") => Backend::Docker,
        Ok(other) => panic!("AGENT_TEST_SERVERS={other:?}: expected local or docker"),
        Err(_) if local_found => Backend::Local,
        Err(_) if docker_available() => Backend::Docker,
        Err(_) => panic!(
            "no {what} for this test: {install}, or make a Docker engine available for testcontainers \
             (run .ci/setup-agent.sh to install the local servers)"
        ),
    }
}

/// A running PostgreSQL that accepts user `postgres` without a password.
pub struct Postgres {
    pub addr: SocketAddr,
    _keep: PgKeep,
}

enum PgKeep {
    Local {
        _dir: tempfile::TempDir,
        pg_ctl: PathBuf,
        data: PathBuf,
        as_user: Option<String>,
    },
    Docker(
        Box<
            testcontainers_modules::testcontainers::Container<
                testcontainers_modules::postgres::Postgres,
            >,
        >,
    ),
}

impl Drop for PgKeep {
    fn drop(&mut self) {
        if let PgKeep::Local {
            pg_ctl,
            data,
            as_user,
            ..
        } = self
        {
            let _ = pg_command(pg_ctl, as_user.as_deref())
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&*data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// PostgreSQL refuses to run as root: as root, run its tools as `nobody` (the temp dir is handed over).
fn pg_command(tool: &Path, as_user: Option<&str>) -> Command {
    match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(tool);
            c
        }
        None => Command::new(tool),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a throw-away PostgreSQL (see the module doc for which).
    pub fn start() -> Postgres {
        let bin = pg_bin_dir();
        match backend(
            bin.is_some(),
            "PostgreSQL server binaries",
            "apt-get install postgresql (or set PG_BIN_DIR)",
        ) {
            Backend::Local => Self::local(&bin.expect("checked")),
            Backend::Docker => Self::docker(),
        }
    }

    fn local(bin: &Path) -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_user = is_root().then(|| "nobody".to_owned());
        if as_user.is_some() {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL temp dir");
        }
        let data = dir.path().join("data");
        let out = pg_command(&bin.join("initdb"), as_user.as_deref())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off",
            dir.path().display()
        );
        let pg_ctl = bin.join("pg_ctl");
        let out = pg_command(&pg_ctl, as_user.as_deref())
            .args(["start", "-w", "-t", "30", "-l"])
            .arg(dir.path().join("log"))
            .args(["-o", &opts, "-D"])
            .arg(&data)
            .output()
            .expect("run pg_ctl");
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for_port(addr, Duration::from_secs(30), "PostgreSQL");
        Postgres {
            addr,
            _keep: PgKeep::Local {
                _dir: dir,
                pg_ctl,
                data,
                as_user,
            },
        }
    }

    fn docker() -> Postgres {
        let container = testcontainers_modules::postgres::Postgres::default()
            .with_host_auth()
            .with_tag("16.6-bookworm")
            .start()
            .expect("start the postgres container (testcontainers)");
        let port = container.get_host_port_ipv4(5432).expect("mapped port");
        Postgres {
            addr: ([127, 0, 0, 1], port).into(),
            _keep: PgKeep::Docker(Box::new(container)),
        }
    }
}

/// A running Kafka-protocol broker on loopback, auto-creating topics.
pub struct Kafka {
    pub addr: SocketAddr,
    /// Which broker: `tansu` or `apache/kafka:3.9.1`.
    pub flavour: &'static str,
    _keep: KafkaKeep,
}

enum KafkaKeep {
    Local(Guard),
    Docker(
        Box<
            testcontainers_modules::testcontainers::Container<
                testcontainers_modules::kafka::apache::Kafka,
            >,
        >,
    ),
}

fn tansu_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = PathBuf::from(home).join(".cargo/bin/tansu");
        p.is_file().then_some(p)
    })
}

impl Kafka {
    /// Starts a broker (see the module doc for which).
    pub fn start() -> Kafka {
        let bin = tansu_bin();
        match backend(
            bin.is_some(),
            "tansu broker",
            "cargo install tansu --features dynostore --locked (or set TANSU_BIN)",
        ) {
            Backend::Local => Self::tansu(&bin.expect("checked")),
            Backend::Docker => Self::docker(),
        }
    }

    /// Makes sure `topic` exists with one partition: tansu does not auto-create topics, so it is created
    /// with `tansu topic create`; Apache Kafka creates it on first use (auto.create.topics.enable).
    pub fn create_topic(&self, topic: &str) {
        let KafkaKeep::Local(_) = &self._keep else {
            return;
        };
        let bin = tansu_bin().expect("tansu was found at start");
        let out = Command::new(bin)
            .args(["topic", "create", topic, "--partitions", "1", "--broker"])
            .arg(format!("tcp://{}", self.addr))
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {topic} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn tansu(bin: &Path) -> Kafka {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let guard = Guard(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for_port(addr, Duration::from_secs(30), "tansu");
        Kafka {
            addr,
            flavour: "tansu",
            _keep: KafkaKeep::Local(guard),
        }
    }

    fn docker() -> Kafka {
        use testcontainers_modules::kafka::apache;
        let container = apache::Kafka::default()
            .with_jvm_image()
            .with_tag("3.9.1")
            .start()
            .expect("start the apache/kafka container (testcontainers)");
        let port = container
            .get_host_port_ipv4(apache::KAFKA_PORT)
            .expect("mapped port");
        Kafka {
            addr: ([127, 0, 0, 1], port).into(),
            flavour: "apache/kafka:3.9.1",
            _keep: KafkaKeep::Docker(Box::new(container)),
        }
    }
}
