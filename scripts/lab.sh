#!/usr/bin/env bash
# The lab test bed's host plumbing: network namespaces, veths, the control plane and the Cilium agent as
# host processes. `harness up|down --backend lab` drives it; the Kubernetes objects (CRDs, Node, Pods and
# their status) are the harness's part (harness/testbed/src/lab.rs).
#
#   lab.sh preflight [--allow-installable]
#                                    check Linux, root, kernel features and tools; change nothing (with
#                                    the flag, Debian packages `packages` can install are not a problem)
#   lab.sh packages                  install the missing Debian packages (iproute2, iptables, openssl,
#                                    util-linux, curl, clang-19, llvm-19) with apt-get; idempotent
#   lab.sh control-plane             node netns, outside network, PKI, etcd, kube-apiserver,
#                                    kube-controller-manager; waits for /readyz
#   lab.sh cilium                    starts cilium-operator, cilium-agent and hubble-relay in the node netns;
#                                    waits for the operator's /healthz, `cilium-dbg status` and Relay with
#                                    the node connected ($HOST_LINK_NODE:4245, where the harness reads flows)
#   lab.sh pod-add NS NAME UID USER [--sysctl K=V]... -- CMD...
#                                    pod netns, `cilium-cni ADD` as kubelet would, then CMD in the pod's
#                                    netns as USER (uid or name); prints the pod's IPv4 address
#   lab.sh outside-add NAME IP       an outside host: netns on the outside network at IP, route to pods
#   lab.sh netns-of NS NAME          the netns name of a pod (for `ip netns exec`)
#   lab.sh run-postgres POD          (inside a pod netns) Debian's PostgreSQL standing in for postgres:*:
#                                    trust authentication, listening on every address, port 5432
#   lab.sh run-kafka                 (inside a pod netns) the tansu broker standing in for apache/kafka:*
#   lab.sh kafka-topic NETNS TOPIC   creates TOPIC on the broker of NETNS (tansu creates none on use)
#   lab.sh crd-apiserver CRD_DIR     a second etcd and kube-apiserver in the node netns (API on
#                                    $HOST_LINK_NODE:6444) with the CRDs of CRD_DIR installed (another
#                                    Cilium version's, from `lab-build.sh crds`): a real strict apply
#                                    against them; prints its kubeconfig. `down` removes it too.
#   lab.sh crd-apiserver-stop        stops that second API server and removes its data
#   lab.sh heartbeat POD_IP          a datagram every 100 ms from the node to POD_IP (port 9): Hubble's
#                                    ring buffer serves an event only once the next one is written, so on
#                                    a quiet node the last event of a probe (a DNS proxy's deny record)
#                                    would wait for whatever comes next; this bounds that wait
#   lab.sh hubble ARGS...            the Hubble CLI of the lab's Cilium, pointed at the agent's Hubble
#                                    server (e.g. `lab.sh hubble observe --last 20 -o jsonpb`)
#   lab.sh down                      removes everything above; lists what is left (exit 1 if anything)
#   lab.sh leftovers                 lists what a `down` would have to remove (exit 1 if anything)
#
# Everything the lab creates is named `cnplab*` (netns, links) or lives under $LAB_RUN (default
# /run/cnp-lab: PKI, kubeconfig, logs, pid files, etcd data, the bpffs and cgroup2 mounts the agent uses)
# and Cilium's own /var/run/cilium. The host's own interfaces, routes and iptables are never touched:
# the agent runs inside the node netns with --devices=eth0 (the node's link to the outside network) and
# socket-LB off. Binaries come from scripts/lab-build.sh's cache.
#
# Addresses: host <-> node link 10.88.0.1/30 <-> 10.88.0.2/30 (the harness reaches the API server and
# Hubble there); outside network 10.0.0.0/11 on a bridge in netns cnplab-net, node at 10.31.0.2;
# pods 10.244.0.0/24 (the Node's podCIDR, set by the harness; Cilium IPAM mode kubernetes); services
# 10.96.0.0/16.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB_RUN="${LAB_RUN:-/run/cnp-lab}"
NODE_NS=cnplab-node
NET_NS=cnplab-net
NODE_NAME="${LAB_NODE_NAME:-lab-node}"
HOST_LINK_HOST=10.88.0.1
HOST_LINK_NODE=10.88.0.2
NODE_IP=10.31.0.2
OUTSIDE_PREFIX=11
POD_RANGE=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_PORT=6443
HUBBLE_PORT=4244
RELAY_PORT=4245
HUBBLE_METRICS_PORT=9965

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_dir() { "$repo/scripts/lab-build.sh" path; }
version_of() { awk -v d="$2" '($1 == d || ($1 == "require" && $2 == d)) { print $NF; exit }' "$repo/lab/$1/go.mod"; }
bin_etcd() { printf '%s/etcd-%s/bin/etcd' "$(cache_dir)" "$(version_of etcd go.etcd.io/etcd/server/v3)"; }
kube_bin() { printf '%s/kube-%s/bin' "$(cache_dir)" "$(version_of kube k8s.io/kubernetes)"; }
cilium_dir() { printf '%s/cilium-%s' "$(cache_dir)" "$(version_of cilium github.com/cilium/cilium)"; }

in_node() { ip netns exec "$NODE_NS" "$@"; }

# Waits for `cmd` to succeed, polling with backoff up to `timeout` seconds. Never a fixed sleep.
wait_for() {
    local what="$1" timeout="$2" start=$SECONDS delay=0.1
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= timeout)); then
            log "$what: not ready after ${timeout}s"
            return 1
        fi
        sleep "$delay"
        delay="$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 2) d = 2; print d }')"
    done
    log "$what: ready after $((SECONDS - start))s"
}

# start NAME NETNS CMD...: a background process in NETNS, its own session, logs and pid under $LAB_RUN.
start() {
    local name="$1" ns="$2"
    shift 2
    mkdir -p "$LAB_RUN/logs" "$LAB_RUN/pids"
    if [[ -f "$LAB_RUN/pids/$name.pid" ]] && kill -0 "$(cat "$LAB_RUN/pids/$name.pid")" 2>/dev/null; then
        log "$name already runs (pid $(cat "$LAB_RUN/pids/$name.pid"))"
        return 0
    fi
    setsid ip netns exec "$ns" "$@" </dev/null >>"$LAB_RUN/logs/$name.log" 2>&1 &
    echo $! >"$LAB_RUN/pids/$name.pid"
    log "started $name (pid $!, log $LAB_RUN/logs/$name.log)"
}

running() { [[ -f "$LAB_RUN/pids/$1.pid" ]] && kill -0 "$(cat "$LAB_RUN/pids/$1.pid")" 2>/dev/null; }

# Fails with the log's tail when a process died.
alive_or_die() {
    running "$1" && return 0
    log "$1 exited; last lines of $LAB_RUN/logs/$1.log:"
    tail -n 30 "$LAB_RUN/logs/$1.log" >&2 || true
    exit 1
}

# The Debian packages of the tools the lab runs, each as `command:package`.
HOST_TOOLS=(ip:iproute2 iptables:iptables openssl:openssl setpriv:util-linux curl:curl)
CLANG_PACKAGES=(clang-19 llvm-19)

# The Debian packages the lab needs and this host lacks, one per line.
missing_packages() {
    local t
    for t in "${HOST_TOOLS[@]}"; do
        command -v "${t%%:*}" >/dev/null 2>&1 || printf '%s\n' "${t#*:}"
    done
    if ! command -v clang-19 >/dev/null 2>&1 && ! command -v clang-18 >/dev/null 2>&1; then
        printf '%s\n' "${CLANG_PACKAGES[@]}"
    fi
}

# Whether `packages` could install what is missing here: root with apt-get.
can_install_packages() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; }

# Installs the missing Debian packages (apt-get, as root); says what it installs; idempotent.
packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "host packages: present"
        return 0
    fi
    can_install_packages || die "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) as root"
    log "host packages: installing ${missing[*]} (apt-get, about a minute)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    log "host packages: installed ${missing[*]}"
}

# preflight [--allow-installable]: checks the host and changes nothing. With --allow-installable, missing
# Debian packages that `lab.sh packages` can install here (root, apt-get) are not a problem.
preflight() {
    local problems=() allow_installable=0 missing
    [[ "${1:-}" == --allow-installable ]] && allow_installable=1
    [[ "$(uname -s)" == Linux ]] || problems+=("not Linux")
    [[ "$(id -u)" == 0 ]] || problems+=("not root (the lab creates network namespaces and loads BPF)")
    [[ -e /sys/kernel/btf/vmlinux ]] || problems+=("no BTF (/sys/kernel/btf/vmlinux)")
    [[ -e /proc/sys/net/core/bpf_jit_enable ]] || problems+=("no BPF JIT")
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]})); then
        if ((allow_installable)) && can_install_packages; then
            log "preflight: ${missing[*]} missing, to be installed by \`lab.sh packages\`"
        else
            problems+=("missing Debian packages: ${missing[*]} (scripts/lab.sh packages installs them as root)")
        fi
    fi
    if ((${#problems[@]})); then
        printf 'lab: prerequisite missing: %s\n' "${problems[@]}" >&2
        return 1
    fi
    if ! ip link add cnplab-probe type vxlan id 42 dstport 4789 2>/dev/null; then
        log "prerequisite missing: VXLAN devices cannot be created"
        return 1
    fi
    ip link del cnplab-probe
    log "preflight ok"
}

# A directory of tools the agent looks up by name: clang and llc of LLVM >= 18.
llvm_path() {
    local d="$LAB_RUN/llvm-bin" v
    mkdir -p "$d"
    for v in 19 18; do
        if command -v "clang-$v" >/dev/null 2>&1; then
            ln -sf "$(command -v "clang-$v")" "$d/clang"
            command -v "llc-$v" >/dev/null 2>&1 && ln -sf "$(command -v "llc-$v")" "$d/llc"
            command -v "llvm-objcopy-$v" >/dev/null 2>&1 && ln -sf "$(command -v "llvm-objcopy-$v")" "$d/llvm-objcopy"
            break
        fi
    done
    printf '%s' "$d"
}

pki() {
    local p="$LAB_RUN/pki"
    [[ -f "$p/admin.crt" ]] && return 0
    mkdir -p "$p"
    (
        cd "$p"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=cnplab-ca 2>/dev/null
        cat >apiserver.ext <<EOF
subjectAltName=IP:$HOST_LINK_NODE,IP:$NODE_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
        openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile apiserver.ext 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=cnp-harness" 2>/dev/null
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 30 -extfile client.ext 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    )
    # Two kubeconfigs with the admin identity: one for the harness on the host, one for the processes in
    # the node netns.
    kubeconfig "https://$HOST_LINK_NODE:$API_PORT" >"$LAB_RUN/kubeconfig"
    kubeconfig "https://127.0.0.1:$API_PORT" >"$LAB_RUN/kubeconfig.node"
    log "PKI and kubeconfigs in $LAB_RUN"
}

kubeconfig() {
    local p="$LAB_RUN/pki"
    cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cnplab
  cluster: {server: "$1", certificate-authority: "$p/ca.crt"}
users:
- name: cnp-harness
  user: {client-certificate: "$p/admin.crt", client-key: "$p/admin.key"}
contexts:
- name: cnplab
  context: {cluster: cnplab, user: cnp-harness}
current-context: cnplab
EOF
}

network() {
    mkdir -p /var/run/netns
    if ! ip netns list | grep -qw "$NODE_NS"; then
        ip netns add "$NODE_NS"
        ip netns add "$NET_NS"
        in_node ip link set lo up
        ip netns exec "$NET_NS" ip link set lo up
        # host <-> node
        ip link add cnplab-h0 type veth peer name host0 netns "$NODE_NS"
        ip addr add "$HOST_LINK_HOST/30" dev cnplab-h0
        ip link set cnplab-h0 up
        in_node ip addr add "$HOST_LINK_NODE/30" dev host0
        in_node ip link set host0 up
        # the outside network: a bridge in its own netns, the node's eth0 on it
        ip netns exec "$NET_NS" ip link add br0 type bridge
        ip netns exec "$NET_NS" ip link set br0 up
        ip link add cnplab-n0 netns "$NET_NS" type veth peer name eth0 netns "$NODE_NS"
        ip netns exec "$NET_NS" ip link set cnplab-n0 master br0 up
        in_node ip addr add "$NODE_IP/$OUTSIDE_PREFIX" dev eth0
        in_node ip link set eth0 up
        in_node sysctl -qw net.ipv4.ip_forward=1
        in_node sysctl -qw net.ipv4.conf.all.rp_filter=0
        log "network: netns $NODE_NS (eth0 $NODE_IP/$OUTSIDE_PREFIX, host0 $HOST_LINK_NODE/30), outside bridge in $NET_NS"
    fi
}

control_plane() {
    preflight
    local kb
    kb="$(kube_bin)"
    [[ -x "$kb/kube-apiserver" && -x "$(bin_etcd)" ]] || die "lab binaries are not built: run scripts/lab-build.sh"
    mkdir -p "$LAB_RUN"
    network
    pki
    local p="$LAB_RUN/pki"
    start etcd "$NODE_NS" "$(bin_etcd)" --name cnplab --data-dir "$LAB_RUN/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster cnplab=http://127.0.0.1:2380 --log-level warn
    wait_for etcd 60 in_node curl -fsS http://127.0.0.1:2379/health || alive_or_die etcd
    start kube-apiserver "$NODE_NS" "$kb/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
        --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
        --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=RBAC --allow-privileged=true \
        --disable-admission-plugins=ServiceAccount --profiling=false
    wait_for kube-apiserver 120 curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
        "https://$HOST_LINK_NODE:$API_PORT/readyz" || alive_or_die kube-apiserver
    # No kubelet heartbeats here: the node lifecycle controller would taint the node and evict every pod.
    start kube-controller-manager "$NODE_NS" "$kb/kube-controller-manager" --kubeconfig="$LAB_RUN/kubeconfig.node" \
        --controllers='*,-node-lifecycle-controller,-node-ipam-controller' --leader-elect=false \
        --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
        --bind-address=127.0.0.1 --cluster-cidr="$POD_RANGE" --service-cluster-ip-range="$SERVICE_CIDR"
    wait_for kube-controller-manager 60 in_node curl -fsSk https://127.0.0.1:10257/healthz ||
        alive_or_die kube-controller-manager
    printf '%s\n' "$LAB_RUN/kubeconfig"
}

heartbeat() {
    local ip="${1:-}"
    [[ "$ip" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "heartbeat: expected a pod's IPv4 address, got '$ip'"
    # A periodic tick by design (not a wait for a condition): it stands in for a real node's background
    # traffic (health checks, kubelet probes).
    start heartbeat "$NODE_NS" bash -c "while :; do printf . >/dev/udp/$ip/9 2>/dev/null || true; sleep 0.1; done"
}

# The second API server: the lab's binaries and PKI, its own etcd, nothing else (no controllers, no agent).
CRD_API_PORT=6444
crd_apiserver() {
    local crds="${1:-}" kb p f name
    [[ -d "$crds" ]] || die "crd-apiserver: '$crds' is not a directory of CRD files (scripts/lab-build.sh crds VERSION)"
    [[ -f "$LAB_RUN/pki/admin.crt" ]] || die "crd-apiserver: the lab is not up (harness up --backend lab)"
    kb="$(kube_bin)"
    p="$LAB_RUN/pki"
    start crd-etcd "$NODE_NS" "$(bin_etcd)" --name cnplab-crd --data-dir "$LAB_RUN/crd-etcd" \
        --listen-client-urls http://127.0.0.1:2381 --advertise-client-urls http://127.0.0.1:2381 \
        --listen-peer-urls http://127.0.0.1:2382 --initial-advertise-peer-urls http://127.0.0.1:2382 \
        --initial-cluster cnplab-crd=http://127.0.0.1:2382 --log-level warn
    wait_for crd-etcd 60 in_node curl -fsS http://127.0.0.1:2381/health || alive_or_die crd-etcd
    start crd-apiserver "$NODE_NS" "$kb/kube-apiserver" --etcd-servers=http://127.0.0.1:2381 \
        --bind-address=0.0.0.0 --secure-port="$CRD_API_PORT" --advertise-address="$NODE_IP" \
        --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
        --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=RBAC \
        --disable-admission-plugins=ServiceAccount --profiling=false
    local api=(curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key")
    local url="https://$HOST_LINK_NODE:$CRD_API_PORT"
    wait_for crd-apiserver 120 "${api[@]}" "$url/readyz" || alive_or_die crd-apiserver
    for f in "$crds"/*.yaml; do
        name="$(awk '/^  name: / { print $2; exit }' "$f")"
        "${api[@]}" -o /dev/null "$url/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name" 2>/dev/null ||
            "${api[@]}" -o /dev/null -X POST -H 'Content-Type: application/yaml' --data-binary "@$f" \
                "$url/apis/apiextensions.k8s.io/v1/customresourcedefinitions" ||
            die "crd-apiserver: cannot create the CRD of $f"
        wait_for "CRD $name" 60 crd_established "$url" "$name" || die "crd-apiserver: CRD $name is not established"
    done
    kubeconfig "$url" >"$LAB_RUN/kubeconfig.crd"
    printf '%s\n' "$LAB_RUN/kubeconfig.crd"
}

# crd_established URL NAME: the CRD NAME on the API server at URL has condition Established=True.
crd_established() {
    local p="$LAB_RUN/pki"
    curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
        "$1/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$2" | python3 -c '
import json, sys
conditions = json.load(sys.stdin).get("status", {}).get("conditions", [])
sys.exit(0 if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions) else 1)'
}

crd_apiserver_stop() {
    local n
    for n in crd-apiserver crd-etcd; do
        if [[ -f "$LAB_RUN/pids/$n.pid" ]]; then stop_pidfile "$LAB_RUN/pids/$n.pid"; fi
    done
    rm -rf "$LAB_RUN/crd-etcd" "$LAB_RUN/kubeconfig.crd"
}

cilium() {
    local c llvm
    c="$(cilium_dir)"
    [[ -x "$c/bin/cilium-agent" ]] || die "cilium-agent is not built: run scripts/lab-build.sh"
    llvm="$(llvm_path)"
    mkdir -p "$LAB_RUN/bpffs" "$LAB_RUN/cgroupv2"
    mountpoint -q "$LAB_RUN/bpffs" || mount -t bpf bpf "$LAB_RUN/bpffs"
    # The operator, as a Helm install runs it: identity, CiliumEndpoint and CiliumNode garbage collection.
    # The harness installs Cilium's CRDs itself (--skip-crd-creation); IPAM comes from the Node's podCIDR.
    start cilium-operator "$NODE_NS" "$c/bin/cilium-operator-generic" \
        --k8s-kubeconfig-path="$LAB_RUN/kubeconfig.node" --k8s-namespace=kube-system --cluster-name=default \
        --ipam=kubernetes --identity-allocation-mode=crd --skip-crd-creation=true --enable-lb-ipam=false \
        --operator-api-serve-addr=127.0.0.1:9234 --operator-prometheus-serve-addr=127.0.0.1:9963
    # More agent flags, for experiments: CNP_LAB_AGENT_ARGS="--flag=value --other=value".
    local extra=()
    read -r -a extra <<<"${CNP_LAB_AGENT_ARGS:-}"
    start cilium-agent "$NODE_NS" env PATH="$llvm:$c/bin:$PATH" K8S_NODE_NAME="$NODE_NAME" \
        "$c/bin/cilium-agent" \
        --k8s-kubeconfig-path="$LAB_RUN/kubeconfig.node" \
        --lib-dir="$c/var/lib/cilium" --bpf-root="$LAB_RUN/bpffs" --cgroup-root="$LAB_RUN/cgroupv2" \
        --devices=eth0 --routing-mode=tunnel --tunnel-protocol=vxlan \
        --ipam=kubernetes --k8s-require-ipv4-pod-cidr=true --enable-ipv4=true --enable-ipv6=false \
        --enable-ipv4-masquerade=false --kube-proxy-replacement=false --bpf-lb-sock=false \
        --identity-allocation-mode=crd --cluster-name=default \
        --enable-l7-proxy=true --external-envoy-proxy=true \
        --enable-hubble=true --hubble-listen-address=":$HUBBLE_PORT" --hubble-disable-tls=true \
        --hubble-metrics-server=":$HUBBLE_METRICS_PORT" --hubble-metrics="${LAB_HUBBLE_METRICS:-drop,tcp,dns,flow}" \
        --monitor-aggregation=none \
        --enable-health-checking=false --enable-endpoint-health-checking=false \
        --enable-bandwidth-manager=false --enable-local-redirect-policy=false \
        --enable-bpf-clock-probe=false "${extra[@]}"
    # No Envoy here: without someone to acknowledge its xDS updates, the agent's first L7 policy would
    # block every later policy (see lab/cilium/xdsack).
    start xdsack "$NODE_NS" "$c/bin/xdsack" --socket /var/run/cilium/envoy/sockets/xds.sock
    wait_for cilium-operator 120 in_node curl -fsS http://127.0.0.1:9234/healthz || alive_or_die cilium-operator
    wait_for "cilium-agent" 300 "$c/bin/cilium-dbg" status --brief || {
        alive_or_die cilium-agent
        "$c/bin/cilium-dbg" status >&2 || true
        exit 1
    }
    # Hubble Relay, as on kind: it finds the node through the agent's peer service and serves the flows
    # the harness reads. Plain gRPC both ways (the agent's Hubble server runs without TLS here). Its sort
    # buffer is drained as often as kind/cilium-values.yaml has it (the default, 1 s, would hold every
    # verdict back by up to a second).
    local drain
    drain="$(awk '$1 == "sortBufferDrainTimeout:" { print $2; exit }' "$repo/kind/cilium-values.yaml")"
    start hubble-relay "$NODE_NS" "$c/bin/hubble-relay" serve \
        --peer-service="unix:///var/run/cilium/hubble.sock" --listen-address=":$RELAY_PORT" \
        --disable-server-tls --disable-client-tls --cluster-name=default --gops=false \
        ${drain:+--sort-buffer-drain-timeout="$drain"}
    wait_for hubble-relay 60 relay_connected || alive_or_die hubble-relay
}

# Relay answers and has the node connected.
relay_connected() {
    "$(cilium_dir)/bin/hubble" status --server "$HOST_LINK_NODE:$RELAY_PORT" 2>/dev/null | grep -q "Connected Nodes: 1/1"
}

netns_of() { printf 'cnplab-p-%s-%s' "$1" "$2" | cut -c1-60; }

pod_add() {
    local ns="$1" name="$2" uid="$3" user="$4"
    shift 4
    local sysctls=() container=main
    while [[ $# -gt 0 && "$1" != -- ]]; do
        case "$1" in
        --sysctl) sysctls+=("$2"); shift 2 ;;
        --name) container="$2"; shift 2 ;;
        *) die "pod-add: unknown option $1" ;;
        esac
    done
    [[ "${1:-}" == -- ]] || die "pod-add: expected -- CMD..."
    shift
    local netns c id conf out ip
    netns="$(netns_of "$ns" "$name")"
    c="$(cilium_dir)"
    id="$(printf '%s' "$uid" | tr -d '-' | cut -c1-32)"
    if ! ip netns list | grep -qw "$netns"; then
        ip netns add "$netns"
        ip netns exec "$netns" ip link set lo up
    fi
    local s
    for s in "${sysctls[@]}"; do ip netns exec "$netns" sysctl -qw "$s"; done
    if ! ip netns exec "$netns" ip -4 -o addr show dev eth0 2>/dev/null | grep -q inet; then
        conf='{"cniVersion":"0.3.1","name":"cilium","type":"cilium-cni","enable-debug":false}'
        out="$(printf '%s' "$conf" | in_node env CNI_COMMAND=ADD CNI_CONTAINERID="$id" \
            CNI_NETNS="/var/run/netns/$netns" CNI_IFNAME=eth0 CNI_PATH="$c/bin" \
            CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$ns;K8S_POD_NAME=$name;K8S_POD_INFRA_CONTAINER_ID=$id;K8S_POD_UID=$uid" \
            "$c/bin/cilium-cni" 2>&1)" || die "cilium-cni ADD for $ns/$name failed: $out"
        printf '%s\n' "$id" >"$LAB_RUN/cni-$netns.id"
    fi
    ip="$(ip netns exec "$netns" ip -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print a[1]; exit }')"
    [[ -n "$ip" ]] || die "$ns/$name has no IPv4 address after cilium-cni ADD"
    if [[ $# -gt 0 ]]; then
        local as=()
        [[ "$user" == root || "$user" == 0 ]] || as=(setpriv --reuid "$user" --regid "$user" --clear-groups --)
        start "pod-$netns-$container" "$netns" env POD_IP="$ip" "${as[@]}" "$@"
    fi
    printf '%s\n' "$ip"
}

outside_add() {
    local name="$1" ip="$2" ns="cnplab-o-$1" short
    # Interface names have at most 15 characters: a hash of the host's name keeps them apart.
    short="$(printf '%s' "$name" | md5sum | cut -c1-8)"
    if ! ip netns list | grep -qw "$ns"; then
        ip netns add "$ns"
        ip netns exec "$ns" ip link set lo up
    fi
    # Checked on the link, not the netns: an earlier `up` may have stopped between the two.
    if ! ip netns exec "$ns" ip link show eth0 >/dev/null 2>&1; then
        ip netns exec "$NET_NS" ip link del "cnplab$short" 2>/dev/null || true
        ip link add "cnplab$short" netns "$NET_NS" type veth peer name eth0 netns "$ns"
        ip netns exec "$NET_NS" ip link set "cnplab$short" master br0 up
        ip netns exec "$ns" ip addr add "$ip/$OUTSIDE_PREFIX" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        ip netns exec "$ns" ip route add "$POD_RANGE" via "$NODE_IP"
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_unprivileged_port_start=0
    fi
    printf '%s\n' "$ns"
}

# What the lab leaves on the host, one line each.
leftovers() {
    local found=0 n p
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cnplab' || true); do
        echo "netns $n"; found=1
    done
    for n in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^cnplab' || true); do
        echo "link $n"; found=1
    done
    if [[ -d "$LAB_RUN/pids" ]]; then
        for p in "$LAB_RUN"/pids/*.pid; do
            [[ -f "$p" ]] || continue
            if kill -0 "$(cat "$p")" 2>/dev/null; then echo "process $(basename "$p" .pid) (pid $(cat "$p"))"; found=1; fi
        done
    fi
    for n in "$LAB_RUN/bpffs" "$LAB_RUN/cgroupv2"; do
        if mountpoint -q "$n" 2>/dev/null; then echo "mount $n"; found=1; fi
    done
    if grep -q " $LAB_RUN" /proc/mounts 2>/dev/null; then
        grep " $LAB_RUN" /proc/mounts | awk '{print "mount " $2}' | sort -u
        found=1
    fi
    [[ -e /var/run/cilium/cilium.sock ]] && { echo "socket /var/run/cilium/cilium.sock"; found=1; }
    [[ -d "$LAB_RUN" ]] && { echo "directory $LAB_RUN"; found=1; }
    return $((found ? 1 : 0))
}

# stop_pidfile FILE: ends the process of a pid file (its process group where it leads one): TERM, up to 5 s
# for it to exit, then KILL; removes FILE.
stop_pidfile() {
    local pid waited=0
    pid="$(cat "$1")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

down() {
    local p pid n
    # processes first: pods, then the agent, then the control plane
    if [[ -d "$LAB_RUN/pids" ]]; then
        for p in "$LAB_RUN"/pids/pod-*.pid "$LAB_RUN"/pids/cilium-agent.pid "$LAB_RUN"/pids/*.pid; do
            [[ -f "$p" ]] || continue
            pid="$(cat "$p")"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        done
        for p in "$LAB_RUN"/pids/*.pid; do
            if [[ -f "$p" ]]; then stop_pidfile "$p"; fi
        done
    fi
    # anything else still inside a lab netns (a probe, a forked server)
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cnplab' || true); do
        for pid in $(ip netns pids "$n" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cnplab' || true); do
        ip netns del "$n" 2>/dev/null || log "cannot delete netns $n"
    done
    ip link del cnplab-h0 2>/dev/null || true
    for n in "$LAB_RUN/bpffs" "$LAB_RUN/cgroupv2"; do
        while mountpoint -q "$n" 2>/dev/null; do umount "$n" || break; done
    done
    { grep " $LAB_RUN" /proc/mounts 2>/dev/null || true; } | awk '{print $2}' | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || true; done
    rm -rf /var/run/cilium "$LAB_RUN"
    if leftovers >/dev/null; then
        log "down: nothing left"
    else
        log "down: left behind:"
        leftovers >&2 || true
        return 1
    fi
}

newest_pg_bin() {
    local d best="" best_version=-1 version
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] || continue
        version="${d#/usr/lib/postgresql/}"
        version="${version%/bin}"
        [[ "$version" =~ ^[0-9]+$ ]] || continue
        ((version > best_version)) && { best="$d"; best_version="$version"; }
    done
    [[ -n "$best" ]] && printf '%s' "$best"
}

run_postgres() {
    local pod="$1" bin data
    bin="$(newest_pg_bin)" || die "PostgreSQL server binaries are missing (apt-get install postgresql)"
    data="$LAB_RUN/pods/$pod/pgdata"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        mkdir -p "$data"
        chown -R postgres: "$LAB_RUN/pods/$pod"
        runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
        printf 'host all all 0.0.0.0/0 trust\n' >>"$data/pg_hba.conf"
    fi
    exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*' -c port=5432 \
        -c unix_socket_directories="$LAB_RUN/pods/$pod"
}

tansu_bin() {
    if [[ -n "${TANSU_BIN:-}" && -x "${TANSU_BIN}" ]]; then printf '%s' "$TANSU_BIN"; return; fi
    command -v tansu 2>/dev/null && return
    [[ -x "$HOME/.cargo/bin/tansu" ]] && { printf '%s' "$HOME/.cargo/bin/tansu"; return; }
    die "tansu is missing (cargo install tansu --features dynostore --locked, or set TANSU_BIN)"
}

run_kafka() {
    local t
    t="$(tansu_bin)"
    [[ -n "${POD_IP:-}" ]] || die "run-kafka: POD_IP is not set"
    exec "$t" broker --listener-url tcp://0.0.0.0:9092 --advertised-listener-url "tcp://$POD_IP:9092" \
        --storage-engine memory://tansu/
}

kafka_topic() {
    local netns="$1" topic="$2" t out
    t="$(tansu_bin)"
    out="$(ip netns exec "$netns" "$t" topic create "$topic" --partitions 1 --broker tcp://127.0.0.1:9092 2>&1)" || {
        # An existing topic is what we want.
        grep -qi "exist" <<<"$out" || die "tansu topic create $topic: $out"
    }
}

cmd="${1:-}"
shift || true
case "$cmd" in
preflight) preflight "$@" ;;
packages) packages ;;
control-plane) control_plane ;;
cilium) cilium ;;
pod-add) pod_add "$@" ;;
outside-add) outside_add "$@" ;;
netns-of) netns_of "$@"; echo ;;
run-postgres) run_postgres "$@" ;;
run-kafka) run_kafka ;;
kafka-topic) kafka_topic "$@" ;;
heartbeat) heartbeat "$@" ;;
crd-apiserver) crd_apiserver "$@" ;;
crd-apiserver-stop) crd_apiserver_stop ;;
hubble) exec "$(cilium_dir)/bin/hubble" "$@" --server "$HOST_LINK_NODE:$HUBBLE_PORT" ;;
leftovers) leftovers ;;
down) down ;;
*) die "usage: lab.sh preflight|packages|control-plane|cilium|pod-add|outside-add|netns-of|heartbeat|crd-apiserver|crd-apiserver-stop|hubble|leftovers|down (see the header)" ;;
esac
