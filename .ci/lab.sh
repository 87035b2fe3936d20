#!/usr/bin/env bash
# CI's lab step: the live suite on a real Cilium datapath (nextest profile `lab`), for both postures, then
# `harness down` and a check that nothing of the lab is left on the host.
#
# - The lab's binaries are built into their cache when missing (scripts/lab-build.sh; about 25 minutes on
#   2 cores from nothing, a second when cached).
# - The lab has no Envoy: the scenarios the model says are redirected to Envoy (HTTP and Kafka rules) are
#   not applicable there. They are accepted as a class (`no-envoy` in HARNESS_ACCEPT_NOT_APPLICABLE: the
#   runner marks exactly those), so that any other not-applicable scenario still fails the run.
# - Also checks `up` is idempotent (a second `up` keeps the running lab).
# - The lab runs quiet (CNP_LAB_HEARTBEAT=off): no background datagram makes Hubble serve a probe's last
#   event, as on a quiet kind node, so the runner's nudge (runner::NUDGE_PORT) has to; a DNS deny then is
#   decided, not inconclusive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'ci-lab: %s\n' "$*" >&2; }

# A fresh machine lacks clang-19, llvm-19 and iptables: installed here (apt-get), as `harness up` would.
bash scripts/lab.sh packages
if ! bash scripts/lab.sh preflight; then
    log "this host cannot run the lab (see above): the lab suite did not run"
    exit 1
fi

start=$SECONDS
bash scripts/lab-build.sh build >/dev/null
log "lab binaries ready after $((SECONDS - start)) s"

harness() { cargo run -q --locked -p harness -- "$@"; }

# Whatever happens below, the lab is torn down and the host checked.
cleanup() {
    local rc=$?
    harness down || rc=1
    if ! bash scripts/lab.sh leftovers; then
        log "harness down left the lab's resources above behind"
        rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT

export CNP_LAB_HEARTBEAT=off
harness up --backend lab
t=$SECONDS
harness up --backend lab
log "a second up took $((SECONDS - t)) s (idempotent)"

for posture in hardened seed; do
    expect=intent
    [[ "$posture" == seed ]] && expect=model
    log "posture $posture: judged against the $expect; scenarios that need Envoy accepted as not applicable"
    t=$SECONDS
    HARNESS_POSTURE="$posture" HARNESS_EXPECT="$expect" HARNESS_ACCEPT_NOT_APPLICABLE=no-envoy \
        cargo nextest run --locked --profile lab
    log "posture $posture: lab suite took $((SECONDS - t)) s"
done
