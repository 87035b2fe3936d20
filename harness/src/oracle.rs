//! The differential oracle: Cilium's own policy engine (the Go program in `oracle/`), asked the same
//! questions as the model.
//!
//! - [`IdentitiesDump`] is the documented JSON form of the identities both sides decide over (written by
//!   `harness eval --dump-identities FILE`), so that the oracle sees exactly the model's labels,
//!   namespaces, named ports and outside addresses.
//! - [`ensure_built_release`] builds the oracle with Go once and caches the binary outside the
//!   repository, keyed by the pinned Cilium release and a hash of the oracle's sources.
//! - [`Oracle`] runs it (one query file, or a stream of cases with `--batch`).
//! - [`compare`] names every field both sides decide on which they disagree.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::model::{
    CLUSTER_NAME, Decision, Direction, DropReason, Identity, IdentityKind, Layer, Verdict,
};
use crate::stack::NamedPort;

/// The Cilium release the oracle is built against by default (`oracle/go.mod`).
pub const CILIUM_RELEASE: &str = "v1.19.7";
/// The MAJOR.MINOR the default oracle answers for.
pub const CILIUM_MINOR: &str = "1.19";

/// One build of the oracle: a Cilium release, the module file that pins it and the build tag that picks
/// its release-specific sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub release: &'static str,
    pub minor: &'static str,
    /// The `-modfile` (relative to `oracle/`); `go.mod` is the default build.
    pub modfile: &'static str,
    /// The `-tags` value, empty for none.
    pub tags: &'static str,
}

/// Every release the oracle can be built for, the default first. 1.20 and 1.18 are built from the same
/// sources with their own module files and the files tagged `cilium_v1_20` / `cilium_v1_18` (their engine
/// APIs differ; 1.20 also resolves egress named ports per destination and has no Kafka rules). 1.18 is
/// pinned at v1.18.3, the newest 1.18 patch whose dependencies the Go module proxy serves.
pub const RELEASES: [Release; 3] = [
    Release {
        release: CILIUM_RELEASE,
        minor: CILIUM_MINOR,
        modfile: "go.mod",
        tags: "",
    },
    Release {
        release: "v1.20.2",
        minor: "1.20",
        modfile: "go.v1.20.mod",
        tags: "cilium_v1_20",
    },
    Release {
        release: "v1.18.3",
        minor: "1.18",
        modfile: "go.v1.18.mod",
        tags: "cilium_v1_18",
    },
];

/// The oracle build that answers for `version` (MAJOR.MINOR), if there is one.
pub fn release_for(version: crate::model::CiliumVersion) -> Option<&'static Release> {
    let minor = format!("{}.{}", version.major, version.minor);
    RELEASES.iter().find(|r| r.minor == minor)
}

/// The MAJOR.MINOR versions the oracle can answer for, for messages.
pub fn minors() -> String {
    let mut m: Vec<crate::model::CiliumVersion> = RELEASES
        .iter()
        .filter_map(|r| r.minor.parse().ok())
        .collect();
    m.sort();
    m.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The identities file: what `harness eval --dump-identities` writes and `oracle --identities` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentitiesDump {
    /// The cluster name (`io.cilium.k8s.policy.cluster` of every pod).
    pub cluster: String,
    pub identities: Vec<IdentityDump>,
}

/// One identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityDump {
    /// `namespace/name` of a pod, the host name of an outside host (or the address itself), or `host`,
    /// `remote-node`, `kube-apiserver`.
    pub name: String,
    /// pod, world, host, remote-node or kube-apiserver.
    pub kind: String,
    /// `source:key=value` (or `source:key` without a value), as Cilium prints labels. For a world
    /// identity the oracle uses Cilium's own CIDR labels of `ip` instead.
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Named container ports of a pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NamedPort>,
}

/// The identities of the model in their documented JSON form.
pub fn dump_identities(ids: &[Identity]) -> IdentitiesDump {
    IdentitiesDump {
        cluster: CLUSTER_NAME.to_string(),
        identities: ids
            .iter()
            .map(|i| IdentityDump {
                name: i.name.clone(),
                kind: match i.kind {
                    IdentityKind::Pod => "pod",
                    IdentityKind::World => "world",
                    IdentityKind::Host => "host",
                    IdentityKind::RemoteNode => "remote-node",
                    IdentityKind::KubeApiserver => "kube-apiserver",
                }
                .to_string(),
                labels: i.labels.display(),
                ip: i.ip.map(|ip| ip.to_string()),
                ports: i.ports.clone(),
            })
            .collect(),
    }
}

/// Why the oracle could not answer.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error(
        "Go is not installed (`go version` failed: {0}). The differential tests build the oracle (oracle/, \
         Cilium {CILIUM_RELEASE}'s policy engine) with Go >= 1.25: install it from https://go.dev/dl and make sure \
         `go` is on PATH, or point HARNESS_ORACLE_BIN at a built oracle"
    )]
    NoGo(String),
    #[error("building the oracle failed (`go build` in {dir}):\n{stderr}")]
    Build { dir: PathBuf, stderr: String },
    #[error("{0}")]
    Io(String),
    #[error("the oracle failed: {0}")]
    Run(String),
}

/// Where built oracles are cached: `$HARNESS_ORACLE_CACHE`, else `$XDG_CACHE_HOME/cnp-harness`, else
/// `$HOME/.cache/cnp-harness`, else the system's temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HARNESS_ORACLE_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("cnp-harness");
    }
    if let Some(d) = std::env::var_os("HOME") {
        return PathBuf::from(d).join(".cache/cnp-harness");
    }
    std::env::temp_dir().join("cnp-harness")
}

/// A hash of the oracle's sources (`*.go`, and every `go*.mod`/`go*.sum`), so that an edited oracle is
/// rebuilt.
fn source_hash(dir: &Path) -> Result<u64, OracleError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| OracleError::Io(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.ends_with(".go")
                        || (n.starts_with("go") && (n.ends_with(".mod") || n.ends_with(".sum")))
                })
        })
        .collect();
    files.sort();
    let mut h = DefaultHasher::new();
    for f in files {
        let bytes =
            std::fs::read(&f).map_err(|e| OracleError::Io(format!("{}: {e}", f.display())))?;
        f.file_name().hash(&mut h);
        bytes.hash(&mut h);
    }
    Ok(h.finish())
}

/// The oracle binary of one release: `$HARNESS_ORACLE_BIN_<MAJOR>_<MINOR>` (for example
/// `HARNESS_ORACLE_BIN_1_20`) if set, or `$HARNESS_ORACLE_BIN` for the default release, else the cached
/// build for the current sources, building it first (with `nice`, it competes with other builds) when it
/// is missing.
///
/// # Errors
/// Go is missing, or the build fails.
pub fn ensure_built_release(repo_root: &Path, r: &Release) -> Result<PathBuf, OracleError> {
    let env = format!("HARNESS_ORACLE_BIN_{}", r.minor.replace('.', "_"));
    if let Some(b) = std::env::var_os(&env) {
        return Ok(PathBuf::from(b));
    }
    if *r == RELEASES[0]
        && let Some(b) = std::env::var_os("HARNESS_ORACLE_BIN")
    {
        return Ok(PathBuf::from(b));
    }
    let release = r.release;
    let dir = repo_root.join("oracle");
    let hash = source_hash(&dir)?;
    let cache = cache_dir();
    let bin = cache.join(format!("oracle-{release}-{hash:016x}"));
    if bin.is_file() {
        return Ok(bin);
    }
    let go = Command::new("go")
        .arg("version")
        .output()
        .map_err(|e| OracleError::NoGo(e.to_string()))?;
    if !go.status.success() {
        return Err(OracleError::NoGo(
            String::from_utf8_lossy(&go.stderr).into(),
        ));
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| OracleError::Io(format!("{}: {e}", cache.display())))?;
    // One build at a time (test binaries run in parallel): the others wait for its result.
    let lock = cache.join(format!("oracle-{release}-{hash:016x}.lock"));
    let _guard = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break LockGuard(lock.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if bin.is_file() {
                    return Ok(bin);
                }
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 30 * 60);
                if stale {
                    let _ = std::fs::remove_file(&lock);
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            Err(e) => return Err(OracleError::Io(format!("{}: {e}", lock.display()))),
        }
    };
    if bin.is_file() {
        return Ok(bin);
    }
    let tmp = cache.join(format!(
        "oracle-{release}-{hash:016x}.{}.tmp",
        std::process::id()
    ));
    let build = |nice: bool| {
        let mut c = if nice {
            let mut c = Command::new("nice");
            c.args(["-n", "10", "go"]);
            c
        } else {
            Command::new("go")
        };
        c.arg("build");
        if r.modfile != "go.mod" {
            c.arg(format!("-modfile={}", r.modfile));
        }
        if !r.tags.is_empty() {
            c.arg(format!("-tags={}", r.tags));
        }
        c.arg("-o").arg(&tmp).arg(".").current_dir(&dir).output()
    };
    let out = match build(true) {
        Ok(o) => o,
        Err(_) => build(false).map_err(|e| OracleError::Io(format!("go build: {e}")))?,
    };
    if !out.status.success() {
        return Err(OracleError::Build {
            dir,
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        });
    }
    std::fs::rename(&tmp, &bin).map_err(|e| OracleError::Io(format!("{}: {e}", bin.display())))?;
    prune_old_builds(&cache, release, KEEP_BUILDS);
    Ok(bin)
}

/// How many builds of one release the cache keeps (each is about 115 MB; older sources' builds are only
/// needed by other checkouts of older commits).
const KEEP_BUILDS: usize = 3;

/// Removes all but the `keep` newest cached builds of `release` (best effort: a build another process is
/// running keeps working, its file is only unlinked).
fn prune_old_builds(cache: &Path, release: &str, keep: usize) {
    let prefix = format!("oracle-{release}-");
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut builds: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
            })
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    builds.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (_, p) in builds.into_iter().skip(keep) {
        let _ = std::fs::remove_file(p);
    }
}

/// Removes the build lock when the build ends, however it ends.
struct LockGuard(PathBuf);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The oracle's verdict: the fields Cilium's engine decides.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct OracleVerdict {
    pub decision: Decision,
    #[serde(default)]
    pub layer: Option<Layer>,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub drop_reason: Option<DropReason>,
    #[serde(default)]
    pub expected_outcome: Option<probe_wire::Outcome>,
    pub proxied: bool,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub l7_rules: Vec<serde_json::Value>,
    #[serde(default)]
    pub denied_kafka_api_key: Option<i16>,
    /// Only when the query carried the frames a client sent (`request.kafka.wire`): each frame as
    /// Cilium's Kafka parser (proxylib's `kafkalib.ReadRequest`) read it.
    #[serde(default)]
    pub kafka_wire: Vec<WireRequest>,
}

/// One Kafka request frame as Cilium's Kafka parser read it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct WireRequest {
    pub api_key: i16,
    pub api_version: i16,
    pub client_id: String,
    pub topics: Vec<String>,
}

/// One answer of the oracle.
#[derive(Debug, Clone, Deserialize)]
pub struct OracleResult {
    pub id: String,
    /// `None` when Cilium cannot compute the policy of an endpoint of the flow (see `error`).
    #[serde(default)]
    pub verdict: Option<OracleVerdict>,
    /// Why there is no verdict: Cilium refuses to compute the endpoint's policy (for example two L7
    /// parsers for one peer and port); the agent then cannot regenerate that endpoint.
    #[serde(default)]
    pub error: Option<String>,
}

/// Whether Cilium accepted a policy.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct OraclePolicy {
    pub name: String,
    pub file: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The oracle's answer for one set of policies and queries.
#[derive(Debug, Clone, Deserialize)]
pub struct OracleAnswer {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub policies: Vec<OraclePolicy>,
    #[serde(default)]
    pub results: Vec<OracleResult>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One case of a batch: policy files as text, and queries (the query-file format).
#[derive(Debug, Clone, Serialize)]
pub struct BatchCase {
    pub id: String,
    pub policies: Vec<PolicyText>,
    pub queries: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyText {
    pub file: String,
    pub text: String,
}

/// A built oracle.
pub struct Oracle {
    pub bin: PathBuf,
}

impl Oracle {
    /// The oracle of one release, built first when it is not cached ([`ensure_built_release`]).
    ///
    /// # Errors
    /// Go is missing, or the build fails.
    pub fn build(repo_root: &Path, release: &Release) -> Result<Oracle, OracleError> {
        ensure_built_release(repo_root, release).map(|bin| Oracle { bin })
    }

    /// Decide a query file (`oracle --policies ... --queries ... --identities ...`).
    ///
    /// # Errors
    /// The oracle failed or printed something that is not its JSON.
    pub fn eval(
        &self,
        policies: &[PathBuf],
        queries: &Path,
        identities: &Path,
    ) -> Result<OracleAnswer, OracleError> {
        let out = Command::new(&self.bin)
            .arg("--policies")
            .args(policies)
            .arg("--queries")
            .arg(queries)
            .arg("--identities")
            .arg(identities)
            .output()
            .map_err(|e| OracleError::Run(format!("{}: {e}", self.bin.display())))?;
        if !out.status.success() {
            return Err(OracleError::Run(
                String::from_utf8_lossy(&out.stderr).into(),
            ));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| OracleError::Run(format!("its output: {e}")))
    }

    /// Decide many cases in one process (`--batch`): one JSON line per case in, one answer per line out.
    ///
    /// # Errors
    /// The oracle failed, or answered a case with an error.
    pub fn batch(
        &self,
        identities: &Path,
        cases: &[BatchCase],
    ) -> Result<Vec<OracleAnswer>, OracleError> {
        let mut child = Command::new(&self.bin)
            .arg("--identities")
            .arg(identities)
            .arg("--batch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| OracleError::Run(format!("{}: {e}", self.bin.display())))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| OracleError::Run("no stdin".into()))?;
        let lines: Vec<String> = cases
            .iter()
            .map(|c| serde_json::to_string(c).unwrap_or_default())
            .collect();
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(&mut stdin);
            for l in lines {
                w.write_all(l.as_bytes())?;
                w.write_all(b"\n")?;
            }
            w.flush()
        });
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| OracleError::Run("no stdout".into()))?;
        let mut answers = Vec::with_capacity(cases.len());
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| OracleError::Run(e.to_string()))?;
            let a: OracleAnswer = serde_json::from_str(&line)
                .map_err(|e| OracleError::Run(format!("an answer: {e}: {line}")))?;
            answers.push(a);
        }
        let _ = writer.join();
        let out = child
            .wait_with_output()
            .map_err(|e| OracleError::Run(e.to_string()))?;
        if !out.status.success() || answers.len() != cases.len() {
            return Err(OracleError::Run(format!(
                "{} answers for {} cases: {}",
                answers.len(),
                cases.len(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(answers)
    }
}

/// What Cilium's Kafka parser made of one request frame (`oracle --kafka-parse`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KafkaParse {
    /// Whether proxylib's parser reads it; a frame it refuses makes the proxy close the connection.
    pub ok: bool,
    #[serde(default)]
    pub request: Option<WireRequest>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Oracle {
    /// Reads Kafka request frames (each with its 4-byte size) with Cilium's Kafka parser, one answer per
    /// frame.
    ///
    /// # Errors
    /// The oracle failed or answered something else than one line per frame.
    pub fn kafka_parse(&self, frames: &[Vec<u8>]) -> Result<Vec<KafkaParse>, OracleError> {
        let mut child = Command::new(&self.bin)
            .arg("--kafka-parse")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| OracleError::Run(format!("{}: {e}", self.bin.display())))?;
        let input = wire_hex(frames).join("\n") + "\n";
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| OracleError::Run("no stdin".into()))?;
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| OracleError::Run(e.to_string()))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(OracleError::Run(
                String::from_utf8_lossy(&out.stderr).into(),
            ));
        }
        let answers: Vec<KafkaParse> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| OracleError::Run(format!("its --kafka-parse output: {e}")))?;
        if answers.len() != frames.len() {
            return Err(OracleError::Run(format!(
                "{} answers for {} frames",
                answers.len(),
                frames.len()
            )));
        }
        Ok(answers)
    }
}

/// The fields both sides decide on which the model and Cilium's engine disagree (empty: they agree).
///
/// Compared: the decision; for a deny its layer and direction; for an L3/L4 deny the drop reason (no
/// allow rule, 133, or an explicit deny rule, 181); for an L7 deny what the proxy does and, for Kafka, which
/// request it refuses; for an allow whether the flow passes the proxy.
pub fn compare(model: &Verdict, oracle: &OracleVerdict) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(e) = &model.endpoint_policy_error {
        d.push(format!(
            "endpoint policy: model says {e}, Cilium computed it"
        ));
        return d;
    }
    let mut field = |name: &str, m: String, o: String| {
        if m != o {
            d.push(format!("{name}: model {m}, Cilium {o}"));
        }
    };
    let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
    field("decision", show(&model.decision), show(&oracle.decision));
    if model.decision != oracle.decision {
        return d;
    }
    match model.decision {
        Decision::Deny => {
            field("layer", show(&model.layer), show(&oracle.layer));
            field("direction", show(&model.direction), show(&oracle.direction));
            if model.layer == Some(Layer::L4) && oracle.layer == Some(Layer::L4) {
                field(
                    "drop_reason",
                    show(&model.drop_reason),
                    show(&oracle.drop_reason),
                );
            }
            if model.layer == Some(Layer::L7) && oracle.layer == Some(Layer::L7) {
                field(
                    "expected_outcome",
                    show(&Some(model.expected_outcome)),
                    show(&oracle.expected_outcome),
                );
                let mk = model
                    .denied_kafka_key
                    .as_deref()
                    .and_then(crate::model::kafka::api_key_by_name);
                if mk.is_some() || oracle.denied_kafka_api_key.is_some() {
                    field(
                        "denied_kafka_key",
                        show(&mk),
                        show(&oracle.denied_kafka_api_key),
                    );
                }
            }
        }
        Decision::Allow => field("proxied", show(&model.proxied), show(&oracle.proxied)),
    }
    d
}

/// What Cilium's engine says when it cannot compute the policy of an endpoint of the flow.
pub const NO_ENDPOINT_POLICY: &str = "Cilium cannot compute the endpoint's policy";

/// Compares the model's verdict with an oracle that gave no verdict (`error`): they agree when both say
/// Cilium cannot compute the policy of an endpoint of the flow.
pub fn compare_unanswered(model: &Verdict, error: &str) -> Vec<String> {
    match &model.endpoint_policy_error {
        Some(_) if error.contains(NO_ENDPOINT_POLICY) => Vec::new(),
        Some(e) => vec![format!(
            "endpoint policy: model says {e}; Cilium's engine could not answer: {error}"
        )],
        None => vec![format!("Cilium's engine could not answer: {error}")],
    }
}

/// How the model and Cilium's engine compare on one posture's scenarios (see [`differential`]).
#[derive(Debug, Default)]
pub struct Differential {
    /// Scenarios asked (flow scenarios only: configuration checks have no flow to decide).
    pub asked: Vec<String>,
    /// Policies whose status (accepted or rejected) differs: `policy: model ..., Cilium ...`.
    pub policies: Vec<String>,
    /// Per scenario id, the fields on which the two disagree (absent: they agree).
    pub scenarios: std::collections::BTreeMap<String, Vec<String>>,
    /// Per scenario asked with Kafka wire frames, the requests as Cilium's Kafka parser read them.
    pub wire: std::collections::BTreeMap<String, Vec<WireRequest>>,
}

impl Differential {
    /// Number of asked scenarios on which both sides agree.
    pub fn agreeing(&self) -> usize {
        self.asked.len() - self.scenarios.len()
    }
}

/// Asks the model and the oracle the flow of every scenario, with the policies of `posture_dir`, and
/// compares them field by field ([`compare`]) and policy by policy (accepted or rejected).
///
/// # Errors
/// The inputs cannot be read, or the oracle failed.
pub fn differential(
    oracle: &Oracle,
    stack: &crate::stack::Stack,
    scenarios: &[crate::scenario::Scenario],
    posture_dir: &Path,
    version: crate::model::CiliumVersion,
) -> Result<Differential, OracleError> {
    differential_on_wire(
        oracle,
        stack,
        scenarios,
        posture_dir,
        version,
        &std::collections::BTreeMap::new(),
    )
}

/// Encodes request frames for the oracle's `request.kafka.wire`: hex, one string per frame.
pub fn wire_hex(frames: &[Vec<u8>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// Like [`differential`], but the Kafka scenarios named in `wire` are decided by the oracle on the
/// request frames a client really sent (scenario id → frames, each with its 4-byte size): Cilium's Kafka
/// parser reads every frame, and its rule matching decides on what it read.
///
/// # Errors
/// The inputs cannot be read, or the oracle failed (a frame Cilium's parser refuses is bad input).
pub fn differential_on_wire(
    oracle: &Oracle,
    stack: &crate::stack::Stack,
    scenarios: &[crate::scenario::Scenario],
    posture_dir: &Path,
    version: crate::model::CiliumVersion,
    wire: &std::collections::BTreeMap<String, Vec<Vec<u8>>>,
) -> Result<Differential, OracleError> {
    use crate::eval::{self, Query};
    let io = |e: &dyn std::fmt::Display| OracleError::Io(e.to_string());
    let queries: Vec<Query> = scenarios
        .iter()
        .filter_map(|s| {
            Some(Query {
                id: s.id.clone(),
                from: s.from.clone()?,
                to: s.to.clone()?,
                port: s.port?,
                protocol: s.protocol,
                request: s.request.clone(),
            })
        })
        .collect();
    let scratch = tempfile::tempdir().map_err(|e| io(&e))?;
    let qpath = scratch.path().join("queries.json");
    std::fs::write(
        &qpath,
        serde_json::json!({ "queries": queries }).to_string(),
    )
    .map_err(|e| io(&e))?;
    // The oracle's query file: the same queries, with the Kafka frames a client sent where given.
    let mut oracle_queries = serde_json::to_value(&queries).map_err(|e| io(&e))?;
    if let Some(list) = oracle_queries.as_array_mut() {
        for q in list {
            let id = q
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let Some(frames) = wire.get(&id) else {
                continue;
            };
            let kafka = q
                .get_mut("request")
                .and_then(|r| r.get_mut("kafka"))
                .and_then(|k| k.as_object_mut())
                .ok_or_else(|| {
                    OracleError::Io(format!(
                        "scenario {id}: wire frames given, but no Kafka request"
                    ))
                })?;
            kafka.insert("wire".into(), serde_json::json!(wire_hex(frames)));
        }
    }
    let oracle_qpath = scratch.path().join("oracle-queries.json");
    std::fs::write(
        &oracle_qpath,
        serde_json::json!({ "queries": oracle_queries }).to_string(),
    )
    .map_err(|e| io(&e))?;
    let policies =
        crate::policy::load_policies(&[posture_dir.to_path_buf()]).map_err(|e| io(&e))?;
    let model = eval::run(&policies, stack, &qpath, version).map_err(|e| io(&e))?;
    let ids = eval::read_query_identities(stack, &qpath).map_err(|e| io(&e))?;
    let idpath = scratch.path().join("identities.json");
    let dump = serde_json::to_string(&dump_identities(&ids)).map_err(|e| io(&e))?;
    std::fs::write(&idpath, dump).map_err(|e| io(&e))?;
    let answer = oracle.eval(&[posture_dir.to_path_buf()], &oracle_qpath, &idpath)?;

    let mut out = Differential {
        asked: model.results.iter().map(|r| r.query.id.clone()).collect(),
        ..Differential::default()
    };
    for p in &model.policies {
        let model_rejected = matches!(p.status, crate::model::PolicyStatus::Rejected { .. });
        match answer.policies.iter().find(|o| o.name == p.name) {
            None => out
                .policies
                .push(format!("policy {}: not answered by the oracle", p.name)),
            Some(t) if (t.status == "rejected") != model_rejected => out.policies.push(format!(
                "policy {}: model {:?}, Cilium {} {}",
                p.name,
                p.status,
                t.status,
                t.reason.clone().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    for r in &model.results {
        let theirs = answer.results.iter().find(|o| o.id == r.query.id);
        if let Some(v) = theirs.and_then(|o| o.verdict.as_ref())
            && !v.kafka_wire.is_empty()
        {
            out.wire.insert(r.query.id.clone(), v.kafka_wire.clone());
        }
        let found = match theirs.map(|o| (&o.verdict, &o.error)) {
            Some((Some(v), _)) => compare(&r.verdict, v),
            Some((None, e)) => compare_unanswered(&r.verdict, e.as_deref().unwrap_or_default()),
            None => vec!["not answered by the oracle".to_string()],
        };
        if !found.is_empty() {
            out.scenarios.insert(r.query.id.clone(), found);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::prune_old_builds;
    use std::time::{Duration, SystemTime};

    #[test]
    fn pruning_keeps_the_newest_builds_of_a_release_and_leaves_others_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let names = [
            "oracle-v1.19.7-0000000000000001",
            "oracle-v1.19.7-0000000000000002",
            "oracle-v1.19.7-0000000000000003",
            "oracle-v1.19.7-0000000000000004",
            "oracle-v1.20.2-0000000000000001",
            "oracle-v1.19.7-0000000000000005.lock",
        ];
        for (age, name) in (0u64..).zip(names.iter().rev()) {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(now - Duration::from_secs(60 * (age + 1)))
                .expect("mtime");
        }
        prune_old_builds(dir.path(), "v1.19.7", 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "oracle-v1.19.7-0000000000000003",
                "oracle-v1.19.7-0000000000000004",
                "oracle-v1.19.7-0000000000000005.lock",
                "oracle-v1.20.2-0000000000000001",
            ]
        );
    }
}
