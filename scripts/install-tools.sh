#!/usr/bin/env bash
# Install the pinned command-line tools the live harness drives (kind, kubectl, helm, the cilium CLI
# and the hubble CLI) into a project-local directory, by default <repo>/.tools/bin (gitignored).
#
# Every download is checked with SHA-256 before anything is installed:
#   * against a checksum pinned in this file (pinned_sha256 below), where one was found for that exact
#     artefact in public sources (see the comment above each pin), otherwise
#   * against the project's own published checksum file for that exact version (kind's *.sha256sum,
#     dl.k8s.io's kubectl.sha256, get.helm.sh's *.sha256sum, the cilium-cli and hubble release
#     *.sha256sum assets). The script says which of the two it used for every tool.
#
# No sudo, idempotent: a tool whose pinned version is already installed (and whose binary still has
# the hash recorded at install time) is left alone. Run with --help for the options.
#
# Bash 3.2 compatible on purpose (macOS ships it): no associative arrays, no ${var,,}.

set -euo pipefail

# --------------------------------------------------------------------------------------------------
# Pins. Bump a version only together with its checksums (or remove them to fall back to the
# upstream checksum file, which the script then reports).
# --------------------------------------------------------------------------------------------------

ALL_TOOLS="kind kubectl helm cilium hubble"

# kind v0.33.0 (node images for it: kind/cluster.yaml pins kindest/node v1.34.11 by digest).
KIND_VERSION="v0.33.0"
# kubectl matches the node image's Kubernetes minor (v1.34).
KUBECTL_VERSION="v1.34.11"
# Helm 4 installs the Cilium chart (a v2 chart) like Helm 3 did.
HELM_VERSION="v4.3.0"
# cilium-cli v0.20.x is the line released alongside Cilium 1.20; used for `cilium status` / sysdump.
CILIUM_CLI_VERSION="v0.20.1"
# hubble CLI: the stable.txt version of cilium/hubble when these pins were chosen.
HUBBLE_VERSION="v1.19.4"

# pinned_version TOOL
pinned_version() {
  case "$1" in
    kind) echo "$KIND_VERSION" ;;
    kubectl) echo "$KUBECTL_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    cilium) echo "$CILIUM_CLI_VERSION" ;;
    hubble) echo "$HUBBLE_VERSION" ;;
    *) return 1 ;;
  esac
}

# pinned_sha256 TOOL OS ARCH -> the SHA-256 of the release artefact, or nothing when no pin exists
# (the upstream checksum file is used then). Sources: public repositories and documents that pin the
# same artefact, cross-checked where more than one was found ("N sources" below). None of these was
# computed here: this machine cannot download release assets.
pinned_sha256() {
  case "$1/$2/$3" in
    # kind v0.33.0 release binaries (each seen in 5+ independent pins, e.g. Makefiles and CI scripts).
    kind/linux/amd64) echo "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d" ;;
    kind/linux/arm64) echo "20022bee6cfcd5086cb7234d218e3454e6090022f2a8f55d1fa7fcf42c3867a2" ;;
    kind/darwin/amd64) echo "5a99f26f57246dc9319dd294803313197a0f34d33c525b3ea8b655db5916ece0" ;;
    kind/darwin/arm64) echo "0c8c7dbe5e23594a198b786c4bc13dacc101fa6196b0cb0b23a1ca44e61f4b4f" ;;
    # kubectl v1.34.11 from dl.k8s.io (amd64: 4+ sources; arm64: 3 sources). darwin: not found, so the
    # upstream kubectl.sha256 file is used.
    kubectl/linux/amd64) echo "8efbb9435132a190920eb65a47a8c1ecf755ad85ab57a600c9bedbab460bb7a8" ;;
    kubectl/linux/arm64) echo "5b045a4712674c88a56fd98eef4285689738b7fbe8735e1b9ee3509521af5cb4" ;;
    # helm v4.3.0 tarballs from get.helm.sh (linux: 8+ sources; darwin: 4+ sources).
    helm/linux/amd64) echo "86584a54def73570558f66f5111cc53dfed56689637ae32c1201205d494f54fb" ;;
    helm/linux/arm64) echo "31c5794dd55c66a51e6b7d2e2ac7a114ae8b1de41ff1d9ba51748ac973b06a08" ;;
    helm/darwin/amd64) echo "347a784877e0e20eac865e8d1c36a80f6bb0861d6f29abd34defb6570ef95d92" ;;
    helm/darwin/arm64) echo "d3870437e1e95b67f8edbde964156c84a26503f560821d40c542441658934fba" ;;
    # cilium-cli v0.20.1 tarballs (amd64: 3 sources; arm64: 1 source, a packaging lock file that
    # records the hash of the downloaded asset). darwin: upstream *.sha256sum.
    cilium/linux/amd64) echo "24e817dcfcc8a12e325ce7547617bcbcf171c5b0b335bb24d2bb1207ba047f61" ;;
    cilium/linux/arm64) echo "d237550b882af6f2e01e8985e1e024d57c0774611c0a527c7a20dcee7dc4fd07" ;;
    # hubble v1.19.4 tarballs (amd64: 2 sources; arm64: 1 source, a distribution package recipe).
    # darwin: upstream *.sha256sum.
    hubble/linux/amd64) echo "c7c37a5f27ed2ae2d5495c6ddbecc61cebbb841508e77af3c131e96f005ed247" ;;
    hubble/linux/arm64) echo "ba7f521458147de327cdb0f4bf73abea5bb6c29c1fb8a1e0e16d9bfb50951b31" ;;
    *) echo "" ;;
  esac
}

# --------------------------------------------------------------------------------------------------
# Artefact layout per tool: where it is published, what its checksum file is, what to extract.
# Sets: ART_URL ART_SUM_URL ART_FORMAT (raw|tgz) ART_MEMBER (path inside the archive).
# --------------------------------------------------------------------------------------------------
artefact_for() {
  local tool=$1 os=$2 arch=$3 version
  version=$(pinned_version "$tool")
  case "$tool" in
    kind)
      ART_URL="https://github.com/kubernetes-sigs/kind/releases/download/${version}/kind-${os}-${arch}"
      ART_SUM_URL="${ART_URL}.sha256sum"
      ART_FORMAT=raw
      ART_MEMBER=""
      ;;
    kubectl)
      ART_URL="https://dl.k8s.io/release/${version}/bin/${os}/${arch}/kubectl"
      ART_SUM_URL="${ART_URL}.sha256"
      ART_FORMAT=raw
      ART_MEMBER=""
      ;;
    helm)
      ART_URL="https://get.helm.sh/helm-${version}-${os}-${arch}.tar.gz"
      ART_SUM_URL="${ART_URL}.sha256sum"
      ART_FORMAT=tgz
      ART_MEMBER="${os}-${arch}/helm"
      ;;
    cilium)
      ART_URL="https://github.com/cilium/cilium-cli/releases/download/${version}/cilium-${os}-${arch}.tar.gz"
      ART_SUM_URL="${ART_URL}.sha256sum"
      ART_FORMAT=tgz
      ART_MEMBER="cilium"
      ;;
    hubble)
      ART_URL="https://github.com/cilium/hubble/releases/download/${version}/hubble-${os}-${arch}.tar.gz"
      ART_SUM_URL="${ART_URL}.sha256sum"
      ART_FORMAT=tgz
      ART_MEMBER="hubble"
      ;;
    *) return 1 ;;
  esac
}

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

log() { printf '%s\n' "$*"; }
err() { printf 'install-tools: %s\n' "$*" >&2; }

usage() {
  cat <<EOF
Usage: scripts/install-tools.sh [OPTIONS] [TOOL...]

Install pinned versions of: ${ALL_TOOLS} (default: all of them)
into <repo>/.tools/bin, verifying the SHA-256 of every download first.

Options:
  --dir DIR            install into DIR instead (also: HARNESS_TOOLS_DIR)
  --force              reinstall even when the pinned version is already there
  --check              install nothing; exit 0 when every selected tool is installed at its pinned
                       version and unmodified, 1 otherwise
  --print-pins         print versions, download URLs and pinned checksums for this platform, then exit
  --skip-docker-check  do not check that Docker is installed and running
  -h, --help           show this help

Environment:
  HARNESS_TOOLS_DIR     install directory (default <repo>/.tools/bin)
  HARNESS_TOOLS_MIRROR  read artefacts from this directory instead of the network; a URL
                        https://HOST/PATH is looked up as \$HARNESS_TOOLS_MIRROR/HOST/PATH
                        (for air-gapped machines and for the offline test)
  HARNESS_TOOLS_OS, HARNESS_TOOLS_ARCH  override platform detection (linux|darwin, amd64|arm64)

Exit status: 0 success, 1 a tool could not be installed or verified, 2 usage error,
3 tools installed but Docker is missing or not running.

After installing, put the tools first on PATH:  export PATH="\$PWD/.tools/bin:\$PATH"
EOF
}

detect_os() {
  if [[ -n "${HARNESS_TOOLS_OS:-}" ]]; then
    echo "$HARNESS_TOOLS_OS"
    return
  fi
  case "$(uname -s)" in
    Linux) echo linux ;;
    Darwin) echo darwin ;;
    *) uname -s ;;
  esac
}

detect_arch() {
  if [[ -n "${HARNESS_TOOLS_ARCH:-}" ]]; then
    echo "$HARNESS_TOOLS_ARCH"
    return
  fi
  case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}

# sha256_of FILE -> lowercase hex digest
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  else
    err "neither sha256sum nor shasum is available; cannot verify downloads"
    return 1
  fi
}

is_sha256() {
  [[ "$1" =~ ^[0-9a-f]{64}$ ]]
}

# fetch URL DEST: download (or copy from the mirror) URL to DEST. Fails on HTTP errors.
fetch() {
  local url=$1 dest=$2
  if [[ -n "${HARNESS_TOOLS_MIRROR:-}" ]]; then
    local local_path="${HARNESS_TOOLS_MIRROR%/}/${url#https://}"
    if [[ ! -f "$local_path" ]]; then
      err "not in mirror: $local_path (for $url)"
      return 1
    fi
    cp "$local_path" "$dest"
    return
  fi
  if ! command -v curl >/dev/null 2>&1; then
    err "curl is required to download $url"
    return 1
  fi
  curl --proto '=https' --tlsv1.2 --fail --silent --show-error --location \
    --retry 3 --connect-timeout 20 --max-time 600 --output "$dest" "$url"
}

# stamp_path TOOL: records what was installed, to make reruns cheap and detect tampering.
stamp_path() {
  echo "$INSTALL_DIR/.$1.installed"
}

# installed_ok TOOL VERSION: the binary exists, was installed by this script at VERSION, and still has
# the hash recorded then.
installed_ok() {
  local tool=$1 version=$2 stamp bin recorded_version recorded_sha
  stamp=$(stamp_path "$tool")
  bin="$INSTALL_DIR/$tool"
  [[ -x "$bin" && -f "$stamp" ]] || return 1
  recorded_version=$(sed -n 's/^version=//p' "$stamp")
  recorded_sha=$(sed -n 's/^binary_sha256=//p' "$stamp")
  [[ "$recorded_version" == "$version" ]] || return 1
  is_sha256 "$recorded_sha" || return 1
  [[ "$(sha256_of "$bin")" == "$recorded_sha" ]]
}

# resolve_expected TOOL OS ARCH WORKDIR: sets EXPECTED (the digest to verify against) and SUM_SOURCE
# (where it came from).
resolve_expected() {
  local tool=$1 os=$2 arch=$3 work=$4 pinned sum_file value
  EXPECTED=""
  SUM_SOURCE=""
  pinned=$(pinned_sha256 "$tool" "$os" "$arch")
  if [[ -n "$pinned" ]]; then
    if ! is_sha256 "$pinned"; then
      err "the checksum pinned for $tool $os/$arch is not a SHA-256 digest: '$pinned'"
      return 1
    fi
    EXPECTED=$pinned
    SUM_SOURCE="the checksum pinned in scripts/install-tools.sh"
    return 0
  fi
  sum_file="$work/checksum"
  if ! fetch "$ART_SUM_URL" "$sum_file"; then
    err "$tool: no checksum is pinned for $os/$arch and the upstream checksum file could not be fetched: $ART_SUM_URL"
    return 1
  fi
  # Each of these files starts with the hex digest (kubectl.sha256 holds nothing else).
  value=$(awk 'NR == 1 {print tolower($1)}' "$sum_file")
  if ! is_sha256 "$value"; then
    err "$tool: the upstream checksum file $ART_SUM_URL does not start with a SHA-256 digest"
    return 1
  fi
  EXPECTED=$value
  SUM_SOURCE="the upstream checksum file $ART_SUM_URL (no checksum is pinned for $os/$arch)"
  return 0
}

# install_tool TOOL OS ARCH
install_tool() {
  local tool=$1 os=$2 arch=$3 version work status
  version=$(pinned_version "$tool")
  artefact_for "$tool" "$os" "$arch" || return 1

  if [[ "$FORCE" != 1 ]] && installed_ok "$tool" "$version"; then
    log "$tool $version: already installed in $INSTALL_DIR, skipped"
    return 0
  fi

  # A private work directory next to the install directory, so the final rename is atomic; it is
  # removed whatever happens.
  work=$(mktemp -d "$INSTALL_DIR/.install-$tool.XXXXXX") || return 1
  status=0
  install_from "$tool" "$os" "$arch" "$version" "$work" || status=$?
  rm -rf "$work"
  return "$status"
}

# install_from TOOL OS ARCH VERSION WORKDIR: fetch, verify, extract, install, record.
install_from() {
  local tool=$1 os=$2 arch=$3 version=$4 work=$5 artefact actual binary bin_sha
  artefact="$work/artefact"
  log "$tool $version: fetching $ART_URL"
  if ! fetch "$ART_URL" "$artefact"; then
    err "$tool: download failed: $ART_URL"
    return 1
  fi

  resolve_expected "$tool" "$os" "$arch" "$work" || return 1
  actual=$(sha256_of "$artefact") || return 1
  if [[ "$actual" != "$EXPECTED" ]]; then
    err "$tool: checksum mismatch for $ART_URL"
    err "  expected $EXPECTED (from $SUM_SOURCE)"
    err "  got      $actual"
    err "  nothing was installed"
    return 1
  fi
  log "$tool $version: sha256 $actual verified against $SUM_SOURCE"

  case "$ART_FORMAT" in
    raw) binary="$artefact" ;;
    tgz)
      mkdir "$work/x" || return 1
      if ! tar -xzf "$artefact" -C "$work/x" "$ART_MEMBER" 2>"$work/tar.err"; then
        err "$tool: could not extract '$ART_MEMBER' from $ART_URL: $(head -n 1 "$work/tar.err")"
        return 1
      fi
      binary="$work/x/$ART_MEMBER"
      ;;
    *)
      err "$tool: unknown artefact format $ART_FORMAT"
      return 1
      ;;
  esac
  if [[ ! -f "$binary" ]]; then
    err "$tool: '$ART_MEMBER' is not a regular file in $ART_URL"
    return 1
  fi

  chmod 0755 "$binary" || return 1
  bin_sha=$(sha256_of "$binary") || return 1
  # Drop the old record first: a failure between the two steps then reads as "not installed".
  rm -f "$(stamp_path "$tool")"
  mv -f "$binary" "$INSTALL_DIR/$tool" || return 1
  {
    echo "tool=$tool"
    echo "version=$version"
    echo "platform=$os/$arch"
    echo "url=$ART_URL"
    echo "artefact_sha256=$actual"
    echo "verified_against=$SUM_SOURCE"
    echo "binary_sha256=$bin_sha"
  } >"$(stamp_path "$tool")" || return 1
  log "$tool $version: installed $INSTALL_DIR/$tool"
}

# check_docker: 0 when a Docker engine answers; otherwise explains and returns 1.
check_docker() {
  local out
  if ! command -v docker >/dev/null 2>&1; then
    err "Docker is not installed (no 'docker' on PATH). kind runs every Kubernetes node as a Docker"
    err "container, so 'harness up' needs a running Docker engine: install Docker Engine"
    err "(https://docs.docker.com/engine/install/) or Docker Desktop, then run this script again."
    return 1
  fi
  if ! out=$(docker info 2>&1 >/dev/null); then
    err "Docker is installed but the engine is not reachable ('docker info' failed):"
    err "  $(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | head -n 1)"
    err "Start the Docker daemon (e.g. 'systemctl start docker' or open Docker Desktop) and make sure"
    err "this user may use it (member of the 'docker' group, or DOCKER_HOST set), then run again."
    return 1
  fi
  log "docker: engine reachable"
  return 0
}

print_pins() {
  local os=$1 arch=$2 tool pinned
  printf 'platform %s/%s, install dir %s\n' "$os" "$arch" "$INSTALL_DIR"
  for tool in $ALL_TOOLS; do
    artefact_for "$tool" "$os" "$arch"
    pinned=$(pinned_sha256 "$tool" "$os" "$arch")
    printf '%-8s %-9s %s\n' "$tool" "$(pinned_version "$tool")" "$ART_URL"
    if [[ -n "$pinned" ]]; then
      printf '         sha256 %s (pinned)\n' "$pinned"
    else
      printf '         sha256 from %s (not pinned)\n' "$ART_SUM_URL"
    fi
  done
}

main() {
  local repo_root tools="" check_only=0 print_only=0 docker_check=1 os arch tool failed=""
  FORCE=0
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  INSTALL_DIR="${HARNESS_TOOLS_DIR:-$repo_root/.tools/bin}"

  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h | --help)
        usage
        return 0
        ;;
      --dir)
        if [[ $# -lt 2 || -z "$2" ]]; then
          err "--dir needs a directory"
          return 2
        fi
        INSTALL_DIR=$2
        shift
        ;;
      --dir=*) INSTALL_DIR=${1#--dir=} ;;
      --force) FORCE=1 ;;
      --check) check_only=1 ;;
      --print-pins) print_only=1 ;;
      --skip-docker-check) docker_check=0 ;;
      -*)
        err "unknown option: $1 (see --help)"
        return 2
        ;;
      *)
        if ! pinned_version "$1" >/dev/null; then
          err "unknown tool: $1 (known: $ALL_TOOLS)"
          return 2
        fi
        case " $tools " in *" $1 "*) ;; *) tools="$tools $1" ;; esac
        ;;
    esac
    shift
  done
  [[ -n "$tools" ]] || tools=$ALL_TOOLS

  os=$(detect_os)
  arch=$(detect_arch)
  case "$os/$arch" in
    linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64) ;;
    *)
      err "unsupported platform $os/$arch (supported: linux or darwin on amd64 or arm64)"
      return 2
      ;;
  esac

  if [[ "$print_only" == 1 ]]; then
    print_pins "$os" "$arch"
    return 0
  fi

  if [[ "$check_only" == 1 ]]; then
    local missing=""
    for tool in $tools; do
      if installed_ok "$tool" "$(pinned_version "$tool")"; then
        log "$tool $(pinned_version "$tool"): installed"
      else
        log "$tool $(pinned_version "$tool"): missing, another version, or modified since install"
        missing="$missing $tool"
      fi
    done
    if [[ -n "$missing" ]]; then
      err "not installed at the pinned version:$missing (run scripts/install-tools.sh)"
      return 1
    fi
    return 0
  fi

  mkdir -p "$INSTALL_DIR"
  INSTALL_DIR=$(cd "$INSTALL_DIR" && pwd)
  for tool in $tools; do
    if ! install_tool "$tool" "$os" "$arch"; then
      failed="$failed $tool"
    fi
  done
  if [[ -n "$failed" ]]; then
    err "failed:$failed"
    return 1
  fi
  log "all tools ready in $INSTALL_DIR; use them with: export PATH=\"$INSTALL_DIR:\$PATH\""

  if [[ "$docker_check" == 1 ]] && ! check_docker; then
    return 3
  fi
  return 0
}

# Run only when executed, so the offline test can source the functions and replace the pins.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
