#!/usr/bin/env bash
# Builds the lab's binaries from pinned Go modules, once, into a cache outside the repository.
#
#   scripts/lab-build.sh [build]        build what is missing (default), print the cache directory last
#   scripts/lab-build.sh path           print the cache directory of the pinned versions, build nothing
#   scripts/lab-build.sh check          exit 0 when every binary is cached, 1 otherwise (builds nothing)
#   scripts/lab-build.sh gen-kube-mod   regenerate lab/kube/go.mod from k8s.io/kubernetes' own go.mod
#   scripts/lab-build.sh crds VERSION   download Cilium VERSION's module (e.g. v1.20.2) and copy its CRDs to
#                                       $CACHE/crds-VERSION/; prints that directory (for a strict apply
#                                       against another version's CRDs, scripts/lab.sh crd-apiserver)
#
# What is built (the versions are the `require` lines of the three modules under lab/):
#   lab/etcd    etcd                                  (go.etcd.io/etcd/server/v3, a main calling etcdmain)
#   lab/kube    kube-apiserver, kube-controller-manager (k8s.io/kubernetes)
#   lab/cilium  cilium-agent, cilium-operator-generic (built with the tag ipam_provider_operator, as
#               Cilium's Makefile does), cilium-cni, cilium-dbg, hubble (the Hubble CLI; the lab's flows
#               are captured with `hubble observe`), hubble-relay (the harness reads the flows through it,
#               as on kind) (github.com/cilium/cilium), plus Cilium's bpf/ sources,
#               which the agent compiles at run time with clang, and xdsack (lab/cilium/xdsack, the
#               project's own: acknowledges the agent's xDS updates in place of the missing Envoy)
# Each component goes to $CACHE/<component>-<version>/ and is rebuilt only when its go.mod, go.sum or Go
# sources change (a stamp file records their hash). $CACHE is $CNP_LAB_CACHE, or
# ${XDG_CACHE_HOME:-$HOME/.cache}/cnp-harness/lab. Nothing is written into the repository.
#
# Needs Go (go.mod says which) and network access to the Go module proxy. Takes about 30 minutes on
# 2 cores the first time (see README, "The lab"); later runs take a second.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CNP_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnp-harness/lab}"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

log() { printf 'lab-build: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The version a module of lab/ requires of `dep` (its go.mod's require line).
required() {
    local dir="$1" dep="$2" v
    v="$(awk -v d="$dep" '($1 == d || ($1 == "require" && $2 == d)) { print $NF; exit }' "$repo/lab/$dir/go.mod")"
    [[ -n "$v" ]] || die "lab/$dir/go.mod does not require $dep"
    printf '%s' "$v"
}

etcd_version() { required etcd go.etcd.io/etcd/server/v3; }
kube_version() { required kube k8s.io/kubernetes; }
cilium_version() { required cilium github.com/cilium/cilium; }

component_dir() { printf '%s/%s-%s' "$cache" "$1" "$2"; }

# The hash of a module's go.mod, go.sum, own Go sources and of this script (its build flags): a change to
# any of them rebuilds it.
stamp_of() {
    { (cd "$repo/lab/$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs cat)
        cat "$repo/scripts/lab-build.sh"; } | sha256sum | cut -d' ' -f1
}

# up_to_date DIR MODULE BIN...: every binary exists and the stamp matches the module's go.mod/go.sum.
up_to_date() {
    local dir="$1" module="$2" b
    shift 2
    [[ -f "$dir/stamp" && "$(cat "$dir/stamp")" == "$(stamp_of "$module")" ]] || return 1
    for b in "$@"; do [[ -x "$dir/bin/$b" ]] || return 1; done
}

need_go() {
    command -v go >/dev/null 2>&1 || die "Go is not installed (the lab builds etcd, Kubernetes and Cilium from Go modules): install Go >= $(awk '/^go /{print $2}' "$repo/lab/cilium/go.mod") first"
}

# build MODULE OUTDIR LDFLAGS PKG... : go build each package into OUTDIR/bin, timed.
build() {
    local module="$1" out="$2" ldflags="$3" start
    shift 3
    mkdir -p "$out/bin"
    start=$SECONDS
    log "building $* (module lab/$module) into $out/bin"
    (cd "$repo/lab/$module" && nice -n "${CNP_LAB_NICE:-0}" go build -ldflags "$ldflags" -o "$out/bin/" "$@")
    log "built lab/$module in $((SECONDS - start)) s"
}

build_etcd() {
    local out
    out="$(component_dir etcd "$(etcd_version)")"
    up_to_date "$out" etcd etcd && return 0
    build etcd "$out" "" .
    stamp_of etcd >"$out/stamp"
}

build_kube() {
    local out version minor
    version="$(kube_version)"
    out="$(component_dir kube "$version")"
    up_to_date "$out" kube kube-apiserver kube-controller-manager && return 0
    minor="${version#v1.}"
    minor="${minor%%.*}"
    # The version the API server reports (Kubernetes' own build sets these the same way).
    build kube "$out" "-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    stamp_of kube >"$out/stamp"
}

# The binaries of lab/cilium.
CILIUM_BINS=(cilium-agent cilium-operator-generic cilium-cni cilium-dbg hubble hubble-relay xdsack)

build_cilium() {
    local out version src
    version="$(cilium_version)"
    out="$(component_dir cilium "$version")"
    up_to_date "$out" cilium "${CILIUM_BINS[@]}" && [[ -f "$out/var/lib/cilium/bpf/bpf_lxc.c" ]] && return 0
    # The version the agent reports (Cilium's Makefile sets the same variable).
    build cilium "$out" "-X github.com/cilium/cilium/pkg/version.ciliumVersion=${version#v}" github.com/cilium/cilium/daemon github.com/cilium/cilium/plugins/cilium-cni \
        github.com/cilium/cilium/cilium-dbg github.com/cilium/cilium/hubble github.com/cilium/cilium/hubble-relay ./xdsack
    mv "$out/bin/daemon" "$out/bin/cilium-agent"
    build cilium "$out" "-X github.com/cilium/cilium/pkg/version.ciliumVersion=${version#v}" -tags ipam_provider_operator \
        github.com/cilium/cilium/operator
    mv "$out/bin/operator" "$out/bin/cilium-operator-generic"
    # The agent compiles its datapath at run time from bpf/ under its library directory (what Cilium's
    # `make install-bpf` installs). The module's zip carries those sources.
    src="$(cd "$repo/lab/cilium" && go list -m -f '{{.Dir}}' github.com/cilium/cilium)"
    [[ -d "$src/bpf" ]] || die "the Cilium module at $src has no bpf/ directory"
    rm -rf "$out/var/lib/cilium/bpf"
    mkdir -p "$out/var/lib/cilium"
    cp -r "$src/bpf" "$out/var/lib/cilium/bpf"
    chmod -R u+w "$out/var/lib/cilium/bpf"
    # Cilium's CRDs of this version, installed by `harness up --backend lab` as the operator would.
    rm -rf "$out/crds"
    mkdir -p "$out/crds"
    cp "$src"/pkg/k8s/apis/cilium.io/client/crds/v2/*.yaml "$src"/pkg/k8s/apis/cilium.io/client/crds/v2alpha1/*.yaml "$out/crds/"
    stamp_of cilium >"$out/stamp"
}

gen_kube_mod() {
    local version src
    version="$(kube_version)"
    need_go
    src="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" |
        awk -F'"' '/"GoMod"/ { print $4 }')"
    [[ -f "$src" ]] || die "cannot download k8s.io/kubernetes@$version"
    local staging="v0.${version#v1.}"
    {
        echo "// The lab's Kubernetes control plane (kube-apiserver, kube-controller-manager), built from"
        echo "// k8s.io/kubernetes. Generated by scripts/lab-build.sh gen-kube-mod from that module's own go.mod:"
        echo "// each staging module it replaces with ./staging/... is replaced here by the published version of the"
        echo "// same release. Do not edit by hand; rerun the generator after changing the version."
        echo "module cnp-harness/lab/kube"
        echo
        awk '/^go / { print; exit }' "$src"
        echo
        echo "require k8s.io/kubernetes $version"
        echo
        echo "replace ("
        awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$src"
        echo ")"
    } >"$repo/lab/kube/go.mod"
    (cd "$repo/lab/kube" && GOFLAGS=-mod=mod go mod tidy)
    log "regenerated lab/kube/go.mod for k8s.io/kubernetes $version"
}

crds() {
    local version="${1:-}" out src
    [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "crds: expected a Cilium release such as v1.20.2, got '$version'"
    out="$cache/crds-$version"
    if ! ls "$out"/ciliumnetworkpolicies.yaml >/dev/null 2>&1; then
        need_go
        log "downloading github.com/cilium/cilium@$version for its CRDs"
        src="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/cilium/cilium@$version" |
            awk -F'"' '/"Dir"/ { print $4 }')"
        [[ -d "$src/pkg/k8s/apis/cilium.io/client/crds/v2" ]] || die "cannot download github.com/cilium/cilium@$version"
        rm -rf "$out"
        mkdir -p "$out"
        cp "$src"/pkg/k8s/apis/cilium.io/client/crds/v2/*.yaml "$out/"
    fi
    printf '%s\n' "$out"
}

cached() {
    up_to_date "$(component_dir etcd "$(etcd_version)")" etcd etcd &&
        up_to_date "$(component_dir kube "$(kube_version)")" kube kube-apiserver kube-controller-manager &&
        up_to_date "$(component_dir cilium "$(cilium_version)")" cilium "${CILIUM_BINS[@]}"
}

case "${1:-build}" in
path) printf '%s\n' "$cache" ;;
check) cached ;;
gen-kube-mod) gen_kube_mod ;;
crds) crds "${2:-}" ;;
build)
    if cached; then
        log "every binary is cached under $cache"
    else
        need_go
        start=$SECONDS
        build_etcd
        build_kube
        build_cilium
        log "done in $((SECONDS - start)) s"
    fi
    printf '%s\n' "$cache"
    ;;
*) die "unknown command '$1' (expected build, path, check, gen-kube-mod or crds)" ;;
esac
