#!/usr/bin/env bash
# Offline test of scripts/install-tools.sh: argument handling, checksum verification (pinned and via
# the upstream checksum file), idempotence, tamper detection and the Docker messages.
#
# Nothing is downloaded. Artefacts are fake tools built here and served through HARNESS_TOOLS_MIRROR;
# the pins are replaced by sourcing the script (it runs main only when executed) and redefining
# pinned_sha256. A `curl` that fails the test is put first on PATH, so a network fetch cannot pass.
#
# Usage: bash scripts/test-install-tools.sh   (prints one line per case and "N passed, N failed")

# Each case runs the script in a subshell on purpose (its globals and exports must not leak between
# cases); the sourced script's own variables (e.g. its local `failed`) are not this file's.
# shellcheck disable=SC2030,SC2031

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/install-tools.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-install-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
failures=""

pass() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$1"
}
fail() {
  failed=$((failed + 1))
  failures="$failures\n  $1: $2"
  printf 'FAIL %s: %s\n' "$1" "$2"
}

sha() { sha256sum "$1" | awk '{print $1}'; }

# ---- fixtures -----------------------------------------------------------------------------------

OS=linux
ARCH=amd64
mirror="$tmp/mirror"
fakebin="$tmp/fakebin" # first on PATH: curl trap and the fake docker
mkdir -p "$mirror" "$fakebin"

cat >"$fakebin/curl" <<EOF
#!/usr/bin/env bash
echo "curl was called: \$*" >>"$tmp/curl-calls"
exit 97
EOF
chmod +x "$fakebin/curl"

# make_tool NAME VERSION FILE: a fake executable that prints its name and version.
make_tool() {
  printf '#!/bin/sh\necho "%s %s"\n' "$1" "$2" >"$3"
  chmod +x "$3"
}

# Build the fake release artefacts at their upstream URL paths inside the mirror.
build_mirror() {
  local d
  rm -rf "$mirror"
  mkdir -p "$mirror"

  d="$mirror/github.com/kubernetes-sigs/kind/releases/download/v0.33.0"
  mkdir -p "$d"
  make_tool kind v0.33.0 "$d/kind-$OS-$ARCH"
  printf '%s  kind-%s-%s\n' "$(sha "$d/kind-$OS-$ARCH")" "$OS" "$ARCH" >"$d/kind-$OS-$ARCH.sha256sum"

  d="$mirror/dl.k8s.io/release/v1.34.11/bin/$OS/$ARCH"
  mkdir -p "$d"
  make_tool kubectl v1.34.11 "$d/kubectl"
  sha "$d/kubectl" >"$d/kubectl.sha256"

  d="$mirror/get.helm.sh"
  mkdir -p "$d" "$tmp/build/$OS-$ARCH"
  make_tool helm v4.3.0 "$tmp/build/$OS-$ARCH/helm"
  tar -czf "$d/helm-v4.3.0-$OS-$ARCH.tar.gz" -C "$tmp/build" "$OS-$ARCH/helm"
  printf '%s  helm-v4.3.0-%s-%s.tar.gz\n' "$(sha "$d/helm-v4.3.0-$OS-$ARCH.tar.gz")" "$OS" "$ARCH" \
    >"$d/helm-v4.3.0-$OS-$ARCH.tar.gz.sha256sum"

  d="$mirror/github.com/cilium/cilium-cli/releases/download/v0.20.1"
  mkdir -p "$d"
  make_tool cilium v0.20.1 "$tmp/build/cilium"
  tar -czf "$d/cilium-$OS-$ARCH.tar.gz" -C "$tmp/build" cilium
  printf '%s  cilium-%s-%s.tar.gz\n' "$(sha "$d/cilium-$OS-$ARCH.tar.gz")" "$OS" "$ARCH" \
    >"$d/cilium-$OS-$ARCH.tar.gz.sha256sum"

  d="$mirror/github.com/cilium/hubble/releases/download/v1.19.4"
  mkdir -p "$d"
  make_tool hubble v1.19.4 "$tmp/build/hubble"
  tar -czf "$d/hubble-$OS-$ARCH.tar.gz" -C "$tmp/build" hubble
  printf '%s  hubble-%s-%s.tar.gz\n' "$(sha "$d/hubble-$OS-$ARCH.tar.gz")" "$OS" "$ARCH" \
    >"$d/hubble-$OS-$ARCH.tar.gz.sha256sum"
}

# mirror_file TOOL: path of the artefact for TOOL in the mirror.
mirror_file() {
  case "$1" in
    kind) echo "$mirror/github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-$OS-$ARCH" ;;
    kubectl) echo "$mirror/dl.k8s.io/release/v1.34.11/bin/$OS/$ARCH/kubectl" ;;
    helm) echo "$mirror/get.helm.sh/helm-v4.3.0-$OS-$ARCH.tar.gz" ;;
    cilium) echo "$mirror/github.com/cilium/cilium-cli/releases/download/v0.20.1/cilium-$OS-$ARCH.tar.gz" ;;
    hubble) echo "$mirror/github.com/cilium/hubble/releases/download/v1.19.4/hubble-$OS-$ARCH.tar.gz" ;;
  esac
}

# Pins for the run: "mirror" = the real hashes of the fake artefacts, "none" = no pin (use the
# upstream checksum file), "bad" = a wrong digest for every tool.
write_pins() {
  local mode=$1 tool
  : >"$tmp/pins"
  for tool in kind kubectl helm cilium hubble; do
    case "$mode" in
      mirror) printf '%s %s\n' "$tool" "$(sha "$(mirror_file "$tool")")" >>"$tmp/pins" ;;
      bad) printf '%s %s\n' "$tool" "0000000000000000000000000000000000000000000000000000000000000000" >>"$tmp/pins" ;;
      none) ;;
    esac
  done
}

# run_script ARGS...: runs install-tools.sh's main with the test pins, in a clean environment.
# Output in $tmp/out, exit status in $rc.
run_script() {
  (
    export PATH="$fakebin:${RUN_PATH:-$PATH}"
    export HARNESS_TOOLS_MIRROR="$mirror"
    export HARNESS_TOOLS_OS="$OS" HARNESS_TOOLS_ARCH="$ARCH"
    export HARNESS_TOOLS_DIR="$tmp/bin"
    # shellcheck source=scripts/install-tools.sh
    source "$script"
    # shellcheck disable=SC2317  # called by main, not here
    pinned_sha256() {
      awk -v t="$1" '$1 == t {print $2}' "$tmp/pins"
    }
    main "$@"
  ) >"$tmp/out" 2>&1
  rc=$?
}

use_docker() { # ok | down | missing
  rm -f "$fakebin/docker"
  case "$1" in
    ok) printf '#!/bin/sh\necho "Server Version: 28.0.0"\n' >"$fakebin/docker" ;;
    down) printf '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1\n' >"$fakebin/docker" ;;
    missing) return 0 ;;
  esac
  chmod +x "$fakebin/docker"
}

out_has() { grep -q -- "$1" "$tmp/out"; }
reset_install() { rm -rf "${tmp:?}/bin" "${tmp:?}/curl-calls"; }

# A PATH without any docker at all, for the "not installed" case: only the tools the script uses
# (the fake curl is still put in front of it).
minimal_path() {
  local d="$tmp/minpath" t
  mkdir -p "$d"
  for t in bash sh awk sed grep tar gzip sha256sum mktemp cp mv rm mkdir chmod head cat dirname tr uname env; do
    if command -v "$t" >/dev/null 2>&1; then ln -sf "$(command -v "$t")" "$d/$t"; fi
  done
  echo "$d"
}

# ---- cases --------------------------------------------------------------------------------------

build_mirror
use_docker ok

name="help_prints_usage_and_exits_zero"
run_script --help
if [[ $rc == 0 ]] && out_has "Usage: scripts/install-tools.sh"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="unknown_option_is_a_usage_error"
run_script --frobnicate
if [[ $rc == 2 ]] && out_has "unknown option: --frobnicate"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="unknown_tool_is_a_usage_error"
run_script kubeadm
if [[ $rc == 2 ]] && out_has "unknown tool: kubeadm"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="dir_option_without_value_is_a_usage_error"
run_script --dir
if [[ $rc == 2 ]] && out_has "needs a directory"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="unsupported_platform_is_refused"
saved_os=$OS
OS=windows run_script
OS=$saved_os
if [[ $rc == 2 ]] && out_has "unsupported platform windows/amd64"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="installs_every_tool_with_pinned_checksums"
reset_install
write_pins mirror
run_script
ok=1
for t in kind kubectl helm cilium hubble; do
  [[ -x "$tmp/bin/$t" ]] || ok=0
  [[ "$("$tmp/bin/$t" 2>/dev/null | awk '{print $1}')" == "$t" ]] || ok=0
  grep -q "^verified_against=the checksum pinned" "$tmp/bin/.$t.installed" 2>/dev/null || ok=0
done
if [[ $rc == 0 && $ok == 1 ]] && out_has "verified against the checksum pinned"; then
  pass "$name"
else fail "$name" "rc=$rc ok=$ok: $(tail -n 3 "$tmp/out")"; fi

name="no_network_fetch_happened"
if [[ ! -e "$tmp/curl-calls" ]]; then pass "$name"; else fail "$name" "$(cat "$tmp/curl-calls")"; fi

name="leaves_no_work_directories_behind"
leftovers=$(find "$tmp/bin" -maxdepth 1 -name '.install-*')
if [[ -z "$leftovers" ]]; then pass "$name"; else fail "$name" "$leftovers"; fi

name="second_run_is_a_no_op"
before=$(ls -l --time-style=+%s.%N "$tmp/bin" 2>/dev/null | sort)
# Take the artefacts away: a second run that tried to fetch anything would fail.
mv "$mirror" "$mirror.away"
run_script
mv "$mirror.away" "$mirror"
after=$(ls -l --time-style=+%s.%N "$tmp/bin" 2>/dev/null | sort)
if [[ $rc == 0 && "$before" == "$after" ]] && [[ $(grep -c "already installed" "$tmp/out") == 5 ]]; then
  pass "$name"
else fail "$name" "rc=$rc: $(head -n 5 "$tmp/out")"; fi

name="check_mode_reports_installed_tools"
run_script --check
if [[ $rc == 0 ]]; then pass "$name"; else fail "$name" "rc=$rc: $(cat "$tmp/out")"; fi

name="modified_binary_is_reinstalled"
printf '#!/bin/sh\necho tampered\n' >"$tmp/bin/kubectl"
run_script --check kubectl
check_rc=$rc
run_script kubectl
if [[ $check_rc == 1 && $rc == 0 ]] && [[ "$("$tmp/bin/kubectl")" == "kubectl v1.34.11" ]]; then
  pass "$name"
else fail "$name" "check_rc=$check_rc rc=$rc"; fi

name="other_recorded_version_is_reinstalled"
sed -i 's/^version=.*/version=v0.0.1/' "$tmp/bin/.hubble.installed"
run_script hubble
if [[ $rc == 0 ]] && out_has "hubble v1.19.4: installed" && grep -q '^version=v1.19.4$' "$tmp/bin/.hubble.installed"; then
  pass "$name"
else fail "$name" "rc=$rc"; fi

name="force_reinstalls"
run_script --force kind
if [[ $rc == 0 ]] && out_has "kind v0.33.0: installed"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="checksum_mismatch_installs_nothing"
reset_install
write_pins bad
run_script
if [[ $rc == 1 ]] && out_has "checksum mismatch" && [[ -z "$(ls -A "$tmp/bin" 2>/dev/null)" ]]; then
  pass "$name"
else fail "$name" "rc=$rc: $(ls -A "$tmp/bin" 2>/dev/null)"; fi

name="mismatch_keeps_a_previous_good_install"
reset_install
write_pins mirror
run_script helm
good=$(sha "$tmp/bin/helm")
write_pins bad
run_script --force helm
if [[ $rc == 1 && "$(sha "$tmp/bin/helm")" == "$good" ]]; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="unpinned_tool_is_verified_against_upstream_checksum_file"
reset_install
write_pins none
run_script
ok=1
for t in kind kubectl helm cilium hubble; do
  grep -q "^verified_against=the upstream checksum file" "$tmp/bin/.$t.installed" 2>/dev/null || ok=0
done
if [[ $rc == 0 && $ok == 1 ]] && out_has "no checksum is pinned for linux/amd64"; then
  pass "$name"
else fail "$name" "rc=$rc ok=$ok: $(tail -n 3 "$tmp/out")"; fi

name="wrong_upstream_checksum_file_is_rejected"
reset_install
write_pins none
sumfile="$(mirror_file hubble).sha256sum"
cp "$sumfile" "$tmp/sum.saved"
printf '%s  hubble-%s-%s.tar.gz\n' "1111111111111111111111111111111111111111111111111111111111111111" "$OS" "$ARCH" >"$sumfile"
run_script hubble
cp "$tmp/sum.saved" "$sumfile"
if [[ $rc == 1 ]] && out_has "checksum mismatch" && [[ ! -e "$tmp/bin/hubble" ]]; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="malformed_upstream_checksum_file_is_rejected"
reset_install
cp "$sumfile" "$tmp/sum.saved"
echo "<html>Not Found</html>" >"$sumfile"
run_script hubble
cp "$tmp/sum.saved" "$sumfile"
if [[ $rc == 1 ]] && out_has "does not start with a SHA-256 digest"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="missing_upstream_checksum_file_is_an_error"
reset_install
mv "$sumfile" "$tmp/sum.saved"
run_script hubble
mv "$tmp/sum.saved" "$sumfile"
if [[ $rc == 1 ]] && out_has "upstream checksum file could not be fetched"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="archive_without_the_binary_is_rejected"
reset_install
hub=$(mirror_file hubble)
cp "$hub" "$tmp/hub.saved"
echo "not hubble" >"$tmp/build/README"
tar -czf "$hub" -C "$tmp/build" README
write_pins mirror
run_script hubble
cp "$tmp/hub.saved" "$hub"
if [[ $rc == 1 ]] && out_has "could not extract 'hubble'" && [[ ! -e "$tmp/bin/hubble" ]]; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="artefact_missing_from_mirror_is_an_error"
reset_install
write_pins mirror
mv "$(mirror_file kind)" "$tmp/kind.saved"
run_script kind
mv "$tmp/kind.saved" "$(mirror_file kind)"
if [[ $rc == 1 ]] && out_has "not in mirror" && out_has "download failed"; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="selected_tools_only"
reset_install
run_script helm kind helm
if [[ $rc == 0 && -x "$tmp/bin/helm" && -x "$tmp/bin/kind" && ! -e "$tmp/bin/kubectl" ]] &&
  [[ $(grep -c "helm v4.3.0: installed" "$tmp/out") == 1 ]]; then
  pass "$name"
else fail "$name" "rc=$rc"; fi

name="docker_not_running_is_explained_with_exit_3"
use_docker down
run_script kind
if [[ $rc == 3 ]] && out_has "engine is not reachable" && out_has "Cannot connect to the Docker daemon"; then
  pass "$name"
else fail "$name" "rc=$rc: $(cat "$tmp/out")"; fi

name="docker_missing_is_explained_with_exit_3"
use_docker missing
RUN_PATH=$(minimal_path) run_script kind
if [[ $rc == 3 ]] && out_has "Docker is not installed"; then pass "$name"; else fail "$name" "rc=$rc: $(cat "$tmp/out")"; fi

name="skip_docker_check_succeeds_without_docker"
use_docker down
run_script --skip-docker-check kind
if [[ $rc == 0 ]] && ! out_has "Docker"; then pass "$name"; else fail "$name" "rc=$rc"; fi
use_docker ok

name="print_pins_lists_every_tool"
run_script --print-pins
if [[ $rc == 0 ]] && [[ $(grep -c "sha256" "$tmp/out") == 5 ]]; then pass "$name"; else fail "$name" "rc=$rc"; fi

name="real_pins_are_sha256_digests_for_linux"
bad=""
for t in kind kubectl helm cilium hubble; do
  for a in amd64 arm64; do
    # shellcheck source=scripts/install-tools.sh
    v=$(source "$script" && pinned_sha256 "$t" linux "$a")
    [[ "$v" =~ ^[0-9a-f]{64}$ ]] || bad="$bad $t/linux/$a"
  done
done
if [[ -z "$bad" ]]; then pass "$name"; else fail "$name" "missing or malformed:$bad"; fi

name="no_network_fetch_in_any_case"
if [[ ! -e "$tmp/curl-calls" ]]; then pass "$name"; else fail "$name" "$(cat "$tmp/curl-calls")"; fi

echo
if [[ $failed -gt 0 ]]; then
  printf 'failures:%b\n' "$failures"
fi
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
