//! The lab test bed: a real Cilium agent, a real control plane and the reference stack on this Linux host,
//! without Docker.
//!
//! `scripts/lab.sh` does the host plumbing (network namespaces, veths, processes); this module does what
//! kubelet and the operator would do with the Kubernetes API: it installs Cilium's CRDs, registers the
//! node with its pod CIDR, turns every Deployment of the stack into one Pod bound to the node, asks the
//! script to give each pod a network namespace through `cilium-cni ADD` and to start its containers'
//! processes there, runs the pods' readiness probes and writes their status (`podIP`, `Ready`).
//!
//! # Caveats
//! - One node. The outside hosts are network namespaces on a bridge; they reach the pods through the node.
//! - No Envoy: HTTP and Kafka L7 rules cannot be enforced (the runner reports such scenarios as not
//!   applicable). DNS rules are enforced by the agent's own proxy.
//! - The lab needs Linux, root, BPF with BTF, VXLAN and clang >= 18 (`scripts/lab.sh preflight`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Node, Pod, Probe, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{api_message, is_conflict};
use crate::command::{CommandRunner, CommandSpec, run_checked};
use crate::config::{Layout, StackFixture};
use crate::lock::new_holder_identity;
use crate::manifests::{Manifest, load_dir};
use crate::policy::EndpointRevision;
use crate::progress::{Progress, step};
use crate::readiness::crd_established;
use crate::state::{Created, Mode, OutsideHostState, OutsideHosts, STATE_VERSION, State};
use crate::up::{UpError, UpOptions};
use crate::wait::{Backoff, Check, poll_until};
use crate::{AGENT_IMAGE, FIELD_MANAGER};

/// The node's name in the lab (its Node object and `K8S_NODE_NAME` of the agent).
pub const NODE_NAME: &str = "lab-node";
/// The node's address on the outside network (its InternalIP).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 31, 0, 2);
/// The node's address on its link to the host: the API server, Hubble and the metrics are reached here.
pub const NODE_HOST_LINK_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
/// The node's pod CIDR (Cilium's IPAM mode `kubernetes` allocates from it).
pub const POD_CIDR: &str = "10.244.0.0/24";
/// The agent's Hubble Observer (plain gRPC).
pub const HUBBLE_ADDRESS: &str = "10.88.0.2:4244";
/// Hubble Relay (plain gRPC), which the harness reads the flows from, as on kind.
pub const RELAY_ADDRESS: &str = "10.88.0.2:4245";
/// The agent's Hubble metrics server.
pub const HUBBLE_METRICS_URL: &str = "http://10.88.0.2:9965/metrics";
/// Where `scripts/lab.sh` keeps the lab's PKI, kubeconfig, logs and pid files (its `LAB_RUN`).
pub const LAB_RUN: &str = "/run/cnp-lab";
/// The Hubble metrics the lab's agent enables (`--hubble-metrics`, passed to `lab.sh cilium`).
pub const HUBBLE_METRICS: &str = "drop,tcp,dns,flow";
/// The kube context name in the lab's kubeconfig.
pub const LAB_CONTEXT: &str = "cnplab";
/// The name the state file gives the lab "cluster".
pub const LAB_CLUSTER_NAME: &str = "cnp-lab";
/// The outside network's name (the bridge's netns).
pub const OUTSIDE_NETWORK: &str = "cnplab-net";

/// Options of the lab's `up`.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The in-pod agent binary (built for this host): every agent-image container runs it, and so does
    /// every probe.
    pub agent_bin: PathBuf,
    /// Kafka topics the broker must have (tansu does not create topics on first use).
    pub kafka_topics: Vec<String>,
    /// Skip the Go build step (the binaries must be in the cache).
    pub skip_build: bool,
}

/// What the lab's processes are and where its tools live (from the state file's point of view).
pub fn lab_script(root: &Path) -> PathBuf {
    root.join("scripts/lab.sh")
}

/// The lab's pinned Cilium version: the `require` line of `lab/cilium/go.mod`, without the `v`.
///
/// # Errors
/// The file is missing or has no such line.
pub fn cilium_version(root: &Path) -> Result<String, String> {
    let path = root.join("lab/cilium/go.mod");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    required_version(&text, "github.com/cilium/cilium")
        .map(|v| v.trim_start_matches('v').to_string())
        .ok_or_else(|| {
            format!(
                "{} does not require github.com/cilium/cilium",
                path.display()
            )
        })
}

/// The version a go.mod requires of `module` (in a `require` line or block).
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["require", m, v, ..] | [m, v, ..] if *m == module && v.starts_with('v') => {
                Some((*v).to_string())
            }
            _ => None,
        }
    })
}

/// The pod the lab runs for a Deployment: the template's metadata and spec, bound to the lab's node.
/// One replica, whatever the Deployment asks (the stack's Deployments all have one).
///
/// # Errors
/// The Deployment has no name, namespace or template spec.
pub fn pod_for(deployment: &Deployment) -> Result<Pod, String> {
    let name = deployment
        .metadata
        .name
        .as_deref()
        .ok_or("a Deployment without metadata.name")?;
    let namespace = deployment
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| format!("Deployment {name} has no metadata.namespace"))?;
    let template = &deployment.spec.template;
    let mut spec = template
        .spec
        .clone()
        .ok_or_else(|| format!("Deployment {namespace}/{name} has no template spec"))?;
    spec.node_name = Some(NODE_NAME.to_string());
    let mut metadata = template.metadata.clone().unwrap_or_default();
    metadata.name = Some(format!("{name}-lab"));
    metadata.namespace = Some(namespace.to_string());
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        crate::LABEL_MANAGED_BY.to_string(),
        crate::MANAGED_BY_VALUE.to_string(),
    );
    Ok(Pod {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// The name of the lab's kube-dns pod (namespace kube-system).
pub const KUBE_DNS_POD: &str = "kube-dns-lab";

/// The lab's kube-dns: the agent's DNS server (`serve dns`) with the labels a cluster's DNS carries
/// (`k8s-app: kube-dns`, as fixtures/stack.yaml names it), answering for `records` (`NAME=IPV4`).
pub fn kube_dns_pod(records: &[String]) -> Pod {
    let mut args = vec![
        "serve".to_string(),
        "dns".into(),
        "--port".into(),
        "53".into(),
        "--health-port".into(),
        "8081".into(),
    ];
    for r in records {
        args.push("--record".into());
        args.push(r.clone());
    }
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": KUBE_DNS_POD,
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", crate::LABEL_MANAGED_BY: crate::MANAGED_BY_VALUE},
        },
        "spec": {
            "nodeName": NODE_NAME,
            "containers": [{
                "name": "dns",
                "image": AGENT_IMAGE,
                "args": args,
                "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8081}},
            }],
        },
    });
    serde_json::from_value(value).unwrap_or_default()
}

/// The DNS names of the Services (`name.namespace.svc.cluster.local`), each to the address of a started
/// pod its selector matches (the lab has no kube-proxy: names resolve to pods, as for a headless Service).
pub fn dns_records(services: &[Service], pods: &[(Pod, Ipv4Addr)]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        let (Some(name), Some(ns)) = (s.metadata.name.as_deref(), s.metadata.namespace.as_deref())
        else {
            continue;
        };
        let Some(selector) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) else {
            continue;
        };
        let target = pods.iter().find(|(p, _)| {
            p.metadata.namespace.as_deref() == Some(ns)
                && selector.iter().all(|(k, v)| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(k))
                        .is_some_and(|pv| pv == v)
                })
        });
        if let Some((_, ip)) = target {
            out.push(format!("{name}.{ns}.svc.cluster.local={ip}"));
        }
    }
    out
}

/// How the lab runs one container: the command line and the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub container: String,
    pub argv: Vec<String>,
    /// `root` or a numeric uid.
    pub user: String,
}

/// The process that stands for `container` in the lab: the agent binary for the agent image, Debian's
/// PostgreSQL for `postgres:*`, the tansu broker for `apache/kafka:*` (the same wire protocol; Cilium's
/// Kafka rules are enforced in Envoy, which the lab lacks anyway).
///
/// # Errors
/// An image the lab has no stand-in for.
pub fn process_for(
    pod: &Pod,
    container: &Container,
    agent_bin: &Path,
    script: &Path,
) -> Result<Process, String> {
    let image = container.image.as_deref().unwrap_or_default();
    let user = container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|s| s.run_as_user)
        })
        .map(|u| u.to_string())
        .unwrap_or_else(|| "root".to_string());
    let name = container.name.clone();
    if image == AGENT_IMAGE {
        let mut argv = vec![agent_bin.display().to_string()];
        argv.extend(container.args.clone().unwrap_or_default());
        return Ok(Process {
            container: name,
            argv,
            user,
        });
    }
    let script = script.display().to_string();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if image.starts_with("postgres:") {
        // Debian's PostgreSQL refuses to run as root; the script drops to the `postgres` user.
        return Ok(Process {
            container: name,
            argv: vec![script, "run-postgres".into(), pod_name],
            user: "root".into(),
        });
    }
    if image.starts_with("apache/kafka:") {
        return Ok(Process {
            container: name,
            argv: vec![script, "run-kafka".into()],
            user: "root".into(),
        });
    }
    Err(format!(
        "container {name} of pod {pod_name}: the lab cannot run image {image} (it runs {AGENT_IMAGE}, postgres:* and apache/kafka:*)"
    ))
}

/// The command that checks a readiness probe from inside the pod's network namespace, as kubelet would
/// from the node: HTTP(S) GET, TCP connect, or the probe's own command. `None` when the container has
/// no readiness probe (ready once started).
pub fn readiness_command(
    netns: &str,
    container: &Container,
    probe: Option<&Probe>,
) -> Option<Vec<String>> {
    let probe = probe?;
    let port_of = |p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| -> String {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match p {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(named) => container
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(named))
                .map(|cp| cp.container_port.to_string())
                .unwrap_or_else(|| named.clone()),
        }
    };
    let mut argv = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        netns.into(),
    ];
    if let Some(h) = &probe.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        argv.extend([
            "curl".into(),
            "-fsSk".into(),
            "-o".into(),
            "/dev/null".into(),
            "--max-time".into(),
            "2".into(),
            format!("{scheme}://127.0.0.1:{}{path}", port_of(&h.port)),
        ]);
        return Some(argv);
    }
    if let Some(t) = &probe.tcp_socket {
        argv.extend([
            "bash".into(),
            "-c".into(),
            format!("exec 3<>/dev/tcp/127.0.0.1/{}", port_of(&t.port)),
        ]);
        return Some(argv);
    }
    if let Some(e) = &probe.exec {
        argv.extend(e.command.clone().unwrap_or_default());
        return Some(argv);
    }
    None
}

/// The status kubelet would write for a running, ready pod at `ip`.
pub fn ready_status(pod: &Pod, ip: Ipv4Addr, now: &str) -> Value {
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let condition = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({
        "status": {
            "phase": "Running",
            "hostIP": NODE_IP.to_string(),
            "hostIPs": [{"ip": NODE_IP.to_string()}],
            "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}],
            "startTime": now,
            "conditions": [
                condition("PodScheduled"),
                condition("Initialized"),
                condition("ContainersReady"),
                condition("Ready"),
            ],
            "containerStatuses": containers,
        }
    })
}

/// The Node object the lab registers: the pod CIDR Cilium allocates from and the node's address.
pub fn node_object() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                crate::LABEL_MANAGED_BY: crate::MANAGED_BY_VALUE,
            },
        },
        "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]},
    })
}

fn node_status(now: &str) -> Value {
    json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP.to_string()},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "LabNode",
                "message": "a network namespace run by the harness's lab",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
        }
    })
}

/// Which of `pods` (`namespace/name`) are not yet a ready Cilium endpoint with an identity that carries
/// the pod's namespace label. Empty when every one is.
pub fn endpoints_without_identity(endpoints: &[EndpointRevision], pods: &[String]) -> Vec<String> {
    pods.iter()
        .filter(|p| {
            let ns = p.split('/').next().unwrap_or_default();
            let ns_label = format!("k8s:io.kubernetes.pod.namespace={ns}");
            !endpoints.iter().any(|e| {
                &e.name == *p
                    && e.state.as_deref() == Some("ready")
                    && e.identity.is_some()
                    && e.identity_labels.iter().any(|l| l == &ns_label)
            })
        })
        .cloned()
        .collect()
}

/// Now, as Kubernetes writes times (RFC 3339, whole seconds, UTC).
fn now_rfc3339() -> String {
    format!("{:.0}", k8s_openapi::jiff::Timestamp::now())
}

/// The network namespace of a pod (as `scripts/lab.sh netns-of` names it).
pub fn pod_netns(namespace: &str, name: &str) -> String {
    let full = format!("cnplab-p-{namespace}-{name}");
    full.chars().take(60).collect()
}

/// The network namespace of an outside host.
pub fn outside_netns(host: &str) -> String {
    format!("cnplab-o-{host}")
}

/// Where the lab's cached Cilium binaries are (`scripts/lab-build.sh path` + component).
pub fn cilium_bin_dir(cache: &Path, version: &str) -> PathBuf {
    cache.join(format!("cilium-v{version}")).join("bin")
}

fn script_cmd(root: &Path, args: &[&str]) -> CommandSpec {
    CommandSpec::new("bash")
        .arg(lab_script(root).display().to_string())
        .args(args.iter().map(|s| s.to_string()))
        .cwd(root)
}

fn build_cmd(root: &Path, arg: &str) -> CommandSpec {
    CommandSpec::new("bash")
        .arg(root.join("scripts/lab-build.sh").display().to_string())
        .arg(arg)
        .cwd(root)
}

fn other(e: impl std::fmt::Display) -> UpError {
    UpError::Other(e.to_string())
}

/// A client for the lab's API server, from the kubeconfig `lab.sh` wrote.
///
/// # Errors
/// The kubeconfig cannot be read or used.
pub async fn client_for(kubeconfig: &Path) -> Result<Client, String> {
    crate::client::install_crypto_provider();
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", kubeconfig.display()))?;
    Client::try_from(config).map_err(|e| format!("kubeconfig {}: {e}", kubeconfig.display()))
}

/// The lab's `up`: see the module's documentation and the README's "The lab".
pub async fn up_lab(
    opts: &UpOptions,
    lab: &LabOptions,
    runner: &dyn CommandRunner,
    progress: &dyn Progress,
) -> Result<State, UpError> {
    let root = &opts.root;
    let layout = Layout::new(root);
    let fixture = step(progress, "Check configuration", async {
        StackFixture::load(&layout.stack_fixture())
            .map(|f| (f, None))
            .map_err(UpError::from)
    })
    .await?;
    step(
        progress,
        "Check the host (Linux, root, BPF, BTF, VXLAN, clang; installs missing Debian packages)",
        async {
            run_checked(runner, &script_cmd(root, &["packages"]), None)
                .await
                .map_err(|e| UpError::Other(format!("the lab's host packages:\n{e}")))?;
            run_checked(runner, &script_cmd(root, &["preflight"]), None)
                .await
                .map_err(|e| UpError::Other(format!("the lab cannot run on this host:\n{e}")))?;
            Ok::<_, UpError>(((), None))
        },
    )
    .await?;
    let version = cilium_version(root).map_err(UpError::Other)?;

    step(progress, "Lab binaries (etcd, Kubernetes, Cilium from Go modules)", async {
        let cached = runner
            .run(&build_cmd(root, "check"), None)
            .await
            .map(|o| o.success())
            .unwrap_or(false);
        if cached {
            return Ok(((), Some("cached".to_string())));
        }
        if lab.skip_build {
            return Err(UpError::Other(
                "the lab binaries are not built and --skip-build was given: run scripts/lab-build.sh".into(),
            ));
        }
        progress.detail(
            "not cached: building them now (about 30 minutes on 2 cores the first time; scripts/lab-build.sh)",
        );
        run_checked(runner, &build_cmd(root, "build"), None).await?;
        Ok(((), None))
    })
    .await?;
    let cache = runner
        .run(&build_cmd(root, "path"), None)
        .await
        .map(|o| PathBuf::from(o.stdout_text().trim()))
        .map_err(other)?;
    let dbg = cilium_bin_dir(&cache, &version).join("cilium-dbg");

    let previous = match State::load(&opts.state_file) {
        Ok(s) if s.mode == Mode::Lab => Some(s),
        Ok(s) => {
            return Err(UpError::Other(format!(
                "{} describes a {:?} test bed: run `harness down` first",
                opts.state_file.display(),
                s.mode
            )));
        }
        Err(crate::state::StateError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut state = State {
        version: STATE_VERSION,
        mode: Mode::Lab,
        cluster_name: LAB_CLUSTER_NAME.into(),
        kube_context: LAB_CONTEXT.into(),
        cilium_version: Some(version.clone()),
        cilium_namespace: "kube-system".into(),
        agent_image: AGENT_IMAGE.into(),
        relay_address: Some(RELAY_ADDRESS.into()),
        outside: OutsideHosts::NotStarted,
        lock_holder: previous
            .as_ref()
            .map(|p| p.lock_holder.clone())
            .unwrap_or_else(new_holder_identity),
        created: previous.map(|p| p.created).unwrap_or_default(),
        kubeconfig: None,
        lab: None,
    };
    // Recorded before anything is created, so that `down` cleans up after a failure at any later step.
    state.record(Created::Lab {
        run_dir: PathBuf::from(LAB_RUN),
    });
    state.save(&opts.state_file)?;

    let kubeconfig = step(
        progress,
        "Control plane (etcd, kube-apiserver, kube-controller-manager)",
        async {
            let out = run_checked(runner, &script_cmd(root, &["control-plane"]), None).await?;
            let path = out
                .stdout_text()
                .lines()
                .last()
                .map(|l| PathBuf::from(l.trim()))
                .ok_or_else(|| {
                    UpError::Other("lab.sh control-plane printed no kubeconfig".into())
                })?;
            Ok::<_, UpError>((path, None))
        },
    )
    .await?;
    state.kubeconfig = Some(kubeconfig.clone());
    state.lab = Some(crate::state::LabState {
        agent_bin: lab.agent_bin.clone(),
        cilium_dbg: dbg.clone(),
        hubble_metrics_url: HUBBLE_METRICS_URL.into(),
        pods: BTreeMap::new(),
    });
    state.save(&opts.state_file)?;
    let client = client_for(&kubeconfig).await.map_err(UpError::Other)?;
    let deadline = Instant::now() + opts.wait_timeout;

    step(progress, &format!("Cilium {version} CRDs"), async {
        let dir = cache.join(format!("cilium-v{version}")).join("crds");
        let crds = load_dir(&dir)?;
        apply_crds(&client, &crds, deadline).await?;
        Ok::<_, UpError>(((), Some(format!("{} CRDs established", crds.len()))))
    })
    .await?;

    step(
        progress,
        &format!("Node {NODE_NAME} (pod CIDR {POD_CIDR})"),
        async {
            register_node(&client).await?;
            Ok::<_, UpError>(((), None))
        },
    )
    .await?;

    step(progress, &format!("Cilium agent {version}"), async {
        let cmd = script_cmd(root, &["cilium"]).env("LAB_HUBBLE_METRICS", HUBBLE_METRICS);
        run_checked(runner, &cmd, None).await?;
        Ok::<_, UpError>(((), None))
    })
    .await?;

    let manifests = load_dir(&fixture.manifests)?;
    let pods = step(
        progress,
        "Deploy the stack (namespaces, services, one pod per Deployment)",
        async {
            let (deployments, others): (Vec<Manifest>, Vec<Manifest>) = manifests
                .iter()
                .cloned()
                .partition(|m| m.kind() == "Deployment");
            let created = crate::manifests::apply_all(&client, &others).await?;
            for c in created {
                state.record(c);
            }
            let mut pods = Vec::new();
            for d in &deployments {
                let deployment: Deployment = serde_json::from_value(d.value.clone())
                    .map_err(|e| UpError::Other(format!("{}: {e}", d.describe())))?;
                let pod = pod_for(&deployment).map_err(UpError::Other)?;
                pods.push(create_pod(&client, pod).await?);
            }
            Ok::<_, UpError>((pods, Some(format!("{} pods", deployments.len()))))
        },
    )
    .await?;
    state.save(&opts.state_file)?;

    let script = lab_script(root);
    let services: Vec<Service> = manifests
        .iter()
        .filter(|m| m.kind() == "Service")
        .filter_map(|m| serde_json::from_value(m.value.clone()).ok())
        .collect();
    let mut started: Vec<(Pod, Ipv4Addr)> = Vec::new();
    let mut pods = pods;
    let mut index = 0;
    while index < pods.len() {
        let pod = pods[index].clone();
        index += 1;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let netns = pod_netns(&ns, &name);
        let pod = &pod;
        let ip = step(progress, &format!("Pod {ns}/{name}"), async {
            let ip = start_pod(runner, root, &script, pod, lab).await?;
            wait_pod_ready(runner, pod, &netns, deadline).await?;
            if pod.spec.iter().flat_map(|s| s.containers.iter()).any(|c| {
                c.image
                    .as_deref()
                    .is_some_and(|i| i.starts_with("apache/kafka:"))
            }) {
                for topic in &lab.kafka_topics {
                    let cmd = script_cmd(root, &["kafka-topic", &netns, topic]);
                    run_checked(runner, &cmd, Some(deadline)).await?;
                }
            }
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            pods.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(ready_status(pod, ip, &now_rfc3339())),
            )
            .await
            .map_err(|e| UpError::Other(format!("pod {ns}/{name} status: {}", api_message(&e))))?;
            Ok::<_, UpError>((ip, Some(format!("{ip}, ready"))))
        })
        .await?;
        if let Some(l) = state.lab.as_mut() {
            l.pods.insert(format!("{ns}/{name}"), netns);
        }
        state.save(&opts.state_file)?;
        started.push((pod.clone(), ip));
        // Once the stack's pods have addresses, the cluster's DNS, which answers for their Services.
        if index == pods.len()
            && !pods
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(KUBE_DNS_POD))
        {
            let records = dns_records(&services, &started);
            pods.push(create_pod(&client, kube_dns_pod(&records)).await?);
        }
    }
    let pods: Vec<Pod> = started.iter().map(|(p, _)| p.clone()).collect();

    step(progress, "Outside hosts", async {
        let mut hosts = Vec::new();
        for h in &fixture.outside.hosts {
            let out = run_checked(
                runner,
                &script_cmd(root, &["outside-add", &h.name, &h.ip.to_string()]),
                Some(deadline),
            )
            .await?;
            hosts.push(OutsideHostState {
                name: h.name.clone(),
                ip: h.ip,
                container: out.stdout_text().trim().to_string(),
            });
        }
        let note = hosts
            .iter()
            .map(|h| format!("{} {}", h.name, h.ip))
            .collect::<Vec<_>>()
            .join(", ");
        state.outside = OutsideHosts::Started {
            network: OUTSIDE_NETWORK.into(),
            hosts,
        };
        Ok::<_, UpError>(((), Some(note)))
    })
    .await?;
    state.save(&opts.state_file)?;

    // Hubble's ring buffer serves an event only once the next one is written: on this otherwise quiet
    // node, the last event of a probe (the DNS proxy's record of a refused query comes after the reply)
    // would wait for the next probe. A real node's background traffic does this; here a heartbeat.
    // `CNP_LAB_HEARTBEAT=off` leaves the node quiet, as a kind node can be (the runner's nudge then has
    // to get the last event out).
    let heartbeat = std::env::var("CNP_LAB_HEARTBEAT").map_or(true, |v| v != "off");
    if !heartbeat {
        progress.detail("Hubble heartbeat: off (CNP_LAB_HEARTBEAT=off)");
    }
    if let Some((_, dns_ip)) = started
        .iter()
        .find(|(p, _)| p.metadata.name.as_deref() == Some(KUBE_DNS_POD))
        .filter(|_| heartbeat)
    {
        let ip = dns_ip.to_string();
        step(
            progress,
            "Hubble heartbeat (a datagram to kube-dns every 100 ms)",
            async {
                run_checked(
                    runner,
                    &script_cmd(root, &["heartbeat", &ip]),
                    Some(deadline),
                )
                .await?;
                Ok::<_, UpError>(((), None))
            },
        )
        .await?;
    }

    let names: Vec<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    step(
        progress,
        "Every pod is a ready Cilium endpoint with its identity",
        async {
            let dbg_cmd = CommandSpec::new(dbg.display().to_string())
                .args(["endpoint", "list", "-o", "json"]);
            let lagging = poll_until(
                "Cilium endpoints of the stack",
                deadline,
                Backoff::default(),
                || async {
                    let out = match run_checked(runner, &dbg_cmd, Some(deadline)).await {
                        Ok(o) => o,
                        Err(e) => return Check::NotYet(e.to_string()),
                    };
                    match crate::policy::parse_endpoint_list(&out.stdout) {
                        Ok(eps) => {
                            let lag = endpoints_without_identity(&eps, &names);
                            if lag.is_empty() {
                                Check::Ready(eps.len())
                            } else {
                                Check::NotYet(format!(
                                    "not yet ready endpoints: {}",
                                    lag.join(", ")
                                ))
                            }
                        }
                        Err(e) => Check::NotYet(e),
                    }
                },
            )
            .await
            .map_err(other)?;
            Ok::<_, UpError>(((), Some(format!("{lagging} endpoints"))))
        },
    )
    .await?;
    state.save(&opts.state_file)?;
    Ok(state)
}

async fn apply_crds(client: &Client, crds: &[Manifest], deadline: Instant) -> Result<(), UpError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for m in crds {
        if m.kind() != "CustomResourceDefinition" {
            continue;
        }
        api.patch(m.name(), &params, &Patch::Apply(&m.value))
            .await
            .map_err(|e| UpError::Other(format!("{}: {}", m.describe(), api_message(&e))))?;
    }
    for m in crds
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
    {
        let name = m.name().to_string();
        poll_until(
            &format!("CRD {name} established"),
            deadline,
            Backoff::default(),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    match api.get(&name).await {
                        Ok(crd) => match crd_established(&crd) {
                            Ok(()) => Check::Ready(()),
                            Err(e) => Check::NotYet(e),
                        },
                        Err(e) => Check::NotYet(api_message(&e)),
                    }
                }
            },
        )
        .await
        .map_err(other)?;
    }
    Ok(())
}

async fn register_node(client: &Client) -> Result<(), UpError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(node_object()).map_err(other)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(e) if is_conflict(&e) => {}
        Err(e) => {
            return Err(UpError::Other(format!(
                "Node {NODE_NAME}: {}",
                api_message(&e)
            )));
        }
    }
    nodes
        .patch_status(
            NODE_NAME,
            &PatchParams::default(),
            &Patch::Merge(node_status(&now_rfc3339())),
        )
        .await
        .map_err(|e| UpError::Other(format!("Node {NODE_NAME} status: {}", api_message(&e))))?;
    Ok(())
}

/// Creates `pod`, or returns the existing one of that name (an `up` run again).
async fn create_pod(client: &Client, pod: Pod) -> Result<Pod, UpError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &pod).await {
        Ok(p) => Ok(p),
        Err(e) if is_conflict(&e) => api
            .get(&name)
            .await
            .map_err(|e| UpError::Other(format!("pod {ns}/{name}: {}", api_message(&e)))),
        Err(e) => Err(UpError::Other(format!(
            "pod {ns}/{name}: {}",
            api_message(&e)
        ))),
    }
}

/// `lab.sh pod-add` for each container of `pod` (the first call also runs `cilium-cni ADD`); the pod's IP.
async fn start_pod(
    runner: &dyn CommandRunner,
    root: &Path,
    script: &Path,
    pod: &Pod,
    lab: &LabOptions,
) -> Result<Ipv4Addr, UpError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let sysctls: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| format!("{}={}", s.name, s.value))
        .collect();
    let mut ip = None;
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let p = process_for(pod, c, &lab.agent_bin, script).map_err(UpError::Other)?;
        let mut args: Vec<String> = vec![
            "pod-add".into(),
            ns.clone(),
            name.clone(),
            uid.clone(),
            p.user.clone(),
            "--name".into(),
            p.container.clone(),
        ];
        for s in &sysctls {
            args.push("--sysctl".into());
            args.push(s.clone());
        }
        args.push("--".into());
        args.extend(p.argv);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_checked(runner, &script_cmd(root, &refs), None).await?;
        let text = out.stdout_text();
        let last = text.lines().last().unwrap_or_default().trim();
        ip = Some(last.parse::<Ipv4Addr>().map_err(|_| {
            UpError::Other(format!(
                "lab.sh pod-add {ns}/{name} printed `{last}`, not an IPv4 address"
            ))
        })?);
    }
    ip.ok_or_else(|| UpError::Other(format!("pod {ns}/{name} has no containers")))
}

async fn wait_pod_ready(
    runner: &dyn CommandRunner,
    pod: &Pod,
    netns: &str,
    deadline: Instant,
) -> Result<(), UpError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let Some(argv) = readiness_command(netns, c, c.readiness_probe.as_ref()) else {
            continue;
        };
        let cmd = CommandSpec::new(argv[0].clone()).args(argv[1..].iter().cloned());
        poll_until(
            &format!("readiness of container {} of pod {name}", c.name),
            deadline,
            Backoff {
                first: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            || async {
                match runner
                    .run(&cmd, Some(Instant::now() + Duration::from_secs(5)))
                    .await
                {
                    Ok(o) if o.success() => Check::Ready(()),
                    Ok(o) => Check::NotYet(crate::command::output_tail(&o, 3)),
                    Err(e) => Check::NotYet(e.to_string()),
                }
            },
        )
        .await
        .map_err(|e| {
            // The process's own words say more than a refused connection.
            let log = PathBuf::from(LAB_RUN).join(format!("logs/pod-{netns}-{}.log", c.name));
            let tail = std::fs::read_to_string(&log)
                .map(|t| {
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join("\n  ")
                })
                .unwrap_or_default();
            UpError::Other(format!("{e}\nlast lines of {}:\n  {tail}", log.display()))
        })?;
    }
    Ok(())
}

/// The lab's `down`: `lab.sh down` removes every process, netns, link, mount and Cilium's run directory,
/// then lists what is left (an error when anything is).
///
/// # Errors
/// Something was left behind, with the list.
pub async fn down_lab(root: &Path, runner: &dyn CommandRunner) -> Result<(), String> {
    run_checked(runner, &script_cmd(root, &["down"]), None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The command line that runs the agent command `args` (`["agent", "probe", ...]`, as in a pod) inside the
/// network namespace `netns` with the host's agent binary.
pub fn netns_argv(agent_bin: &Path, netns: &str, args: &[String]) -> Vec<String> {
    let mut argv = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        netns.into(),
        agent_bin.display().to_string(),
    ];
    argv.extend(args.iter().skip(1).cloned());
    argv
}

/// Runs the agent command `args` in `netns` with its standard input held open; when `cancel` fires, the
/// stop line goes to it (the same signal as in a pod, see [`crate::exec::signal_on_cancel`]). Bounded by
/// `deadline`: the process is killed when it passes.
///
/// # Errors
/// The process cannot start, or the deadline passed.
pub async fn exec_netns_cancellable(
    agent_bin: &Path,
    netns: &str,
    args: &[String],
    deadline: Instant,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<crate::ExecOutput, crate::ExecError> {
    let argv = netns_argv(agent_bin, netns, args);
    let target = format!("network namespace {netns}");
    let started = Instant::now();
    let failed = |message: String| crate::ExecError::Failed {
        target: target.clone(),
        message,
    };
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start `ip netns exec`: {e}")))?;
    let stdin = child.stdin.take();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let reading = async {
            tokio::join!(
                crate::exec::read_all(stdout),
                crate::exec::read_all(stderr),
                child.wait()
            )
        };
        let (out, err, status) = crate::exec::signal_on_cancel(reading, stdin, cancel).await;
        let status = status.map_err(|e| failed(e.to_string()))?;
        Ok(crate::ExecOutput {
            stdout: out.map_err(|e| failed(e.to_string()))?,
            stderr: err.map_err(|e| failed(e.to_string()))?,
            exit_code: status
                .code()
                .ok_or_else(|| failed("the probe was ended by a signal".into()))?,
        })
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(crate::ExecError::DeadlineExceeded {
            target,
            after: started.elapsed(),
        }),
    }
}

/// The Hubble metrics the lab's agent serves (`curl` of its metrics endpoint, then the same reading as
/// for a cluster's agents).
///
/// # Errors
/// The endpoint does not answer.
pub async fn hubble_metrics(url: &str) -> Result<crate::metrics::AgentMetrics, String> {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "--max-time", "10", url])
        .output()
        .await
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (enabled, problem) = if crate::metrics::scrape_has_hubble(&text) {
        (
            crate::metrics::parse_enabled(&HUBBLE_METRICS.replace(',', " ")),
            None,
        )
    } else {
        (
            Vec::new(),
            Some(format!("{url} answered without Hubble metrics")),
        )
    };
    Ok(crate::metrics::AgentMetrics {
        node: NODE_NAME.to_string(),
        enabled,
        problem,
    })
}

/// Kafka topics named by a set of scenario files' Kafka requests (tansu creates none by itself).
pub fn topics_of(requests: impl IntoIterator<Item = String>) -> Vec<String> {
    requests
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(yaml: &str) -> Deployment {
        serde_saphyr::from_str(yaml).expect("test deployment")
    }

    const API: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: backend}
spec:
  replicas: 1
  selector: {matchLabels: {harness/workload: api}}
  template:
    metadata:
      labels: {harness/workload: api, role: backend-api}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]}
      containers:
      - name: api
        image: harness-agent:dev
        args: [serve, api, --port, "8080", --admin-port, "9090"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
"#;

    #[test]
    fn a_deployment_becomes_one_pod_bound_to_the_lab_node_with_the_template_labels() {
        let pod = pod_for(&deployment(API)).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("api-lab"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("backend"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("role").map(String::as_str), Some("backend-api"));
        assert_eq!(
            labels.get("harness/workload").map(String::as_str),
            Some("api")
        );
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(NODE_NAME)
        );
    }

    #[test]
    fn agent_containers_run_the_host_agent_binary_with_their_args_as_their_user() {
        let pod = pod_for(&deployment(API)).unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let p = process_for(&pod, c, Path::new("/bin/agent"), Path::new("/r/lab.sh")).unwrap();
        assert_eq!(p.user, "65532");
        assert_eq!(
            p.argv,
            [
                "/bin/agent",
                "serve",
                "api",
                "--port",
                "8080",
                "--admin-port",
                "9090"
            ]
        );
    }

    #[test]
    fn an_image_the_lab_cannot_stand_in_for_is_an_error_naming_it() {
        let mut pod = pod_for(&deployment(API)).unwrap();
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        c.image = Some("nginx:1".into());
        let c = c.clone();
        let err = process_for(&pod, &c, Path::new("/a"), Path::new("/s")).unwrap_err();
        assert!(err.contains("nginx:1"), "{err}");
    }

    #[test]
    fn readiness_http_probe_on_a_named_port_curls_the_container_port_inside_the_pod_netns() {
        let pod = pod_for(&deployment(API)).unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let argv = readiness_command("ns1", c, c.readiness_probe.as_ref()).unwrap();
        assert_eq!(&argv[..4], ["ip", "netns", "exec", "ns1"]);
        assert_eq!(argv.last().unwrap(), "http://127.0.0.1:8080/healthz");
    }

    #[test]
    fn ready_status_carries_the_pod_ip_and_the_ready_condition() {
        let pod = pod_for(&deployment(API)).unwrap();
        let s = ready_status(&pod, Ipv4Addr::new(10, 244, 0, 7), "2026-01-01T00:00:00Z");
        assert_eq!(s["status"]["podIP"], "10.244.0.7");
        assert!(
            s["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        );
        let parsed: Pod =
            serde_json::from_value(json!({"metadata": {}, "status": s["status"]})).unwrap();
        assert!(crate::readiness::pod_ready(&parsed).is_ok());
    }

    #[test]
    fn go_mod_require_lines_give_the_pinned_version_in_both_forms() {
        assert_eq!(
            required_version(
                "module x\n\nrequire github.com/cilium/cilium v1.19.7\n",
                "github.com/cilium/cilium"
            ),
            Some("v1.19.7".into())
        );
        assert_eq!(
            required_version(
                "require (\n\tgithub.com/cilium/cilium v1.19.7\n\tk8s.io/api v0.35.0 // indirect\n)\n",
                "k8s.io/api"
            ),
            Some("v0.35.0".into())
        );
        assert_eq!(required_version("replace a => b v1\n", "a"), None);
    }

    #[test]
    fn the_repository_pins_a_cilium_version_for_the_lab() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let v = cilium_version(&root).unwrap();
        assert!(v.starts_with("1."), "{v}");
    }

    #[test]
    fn service_names_resolve_to_the_pod_their_selector_matches_in_their_namespace() {
        let pod = pod_for(&deployment(API)).unwrap();
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "backend"},
            "spec": {"selector": {"harness/workload": "api"}},
        }))
        .unwrap();
        let elsewhere: Service = serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "frontend"},
            "spec": {"selector": {"harness/workload": "api"}},
        }))
        .unwrap();
        let records = dns_records(&[svc, elsewhere], &[(pod, Ipv4Addr::new(10, 244, 0, 9))]);
        assert_eq!(records, ["api.backend.svc.cluster.local=10.244.0.9"]);
    }

    #[test]
    fn the_lab_kube_dns_pod_carries_the_cluster_dns_label_and_its_records() {
        let pod = kube_dns_pod(&["a.b.svc.cluster.local=10.244.0.1".into()]);
        assert_eq!(
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("k8s-app"))
                .map(String::as_str),
            Some("kube-dns")
        );
        let args = pod.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--record" && w[1].starts_with("a.b.svc"))
        );
    }

    #[test]
    fn pods_count_as_endpoints_only_when_ready_with_an_identity_of_their_namespace() {
        // Captured from the lab's agent (see testdata/README.md).
        let out = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/endpoint-list/lab-cilium-1.19.7-hardened/output.json"),
        )
        .unwrap();
        let eps = crate::policy::parse_endpoint_list(&out).unwrap();
        let pods = [
            "backend/api-lab".to_string(),
            "kafka/kafka-lab".to_string(),
            "frontend/frontend-lab".to_string(),
        ];
        assert_eq!(
            endpoints_without_identity(&eps, &pods),
            ["frontend/frontend-lab"]
        );
    }

    #[test]
    fn times_are_written_as_kubernetes_reads_them() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && !now.contains('.'), "{now}");
        assert!(
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(json!(
                now
            ))
            .is_ok()
        );
    }
}
