#!/usr/bin/env bash
# Proves that `cargo nextest run --profile kind` reaches its setup script (scripts/kind-setup.sh) and that
# the script's own message is what a user without Docker sees, rather than a nextest error such as
# `failed to exec "<workspace>/bash"` (a command line whose program is not the script).
#
# Docker is made unavailable for the run with a `docker` on PATH that always fails, so the check gives the
# same answer on machines with and without a Docker engine, and never creates a cluster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

expected="kind-setup: Docker is not available"
fake_bin=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$fake_bin" "$log"' EXIT
cat >"$fake_bin/docker" <<'SH'
#!/bin/sh
echo "Cannot connect to the Docker daemon (docker disabled by .ci/check-kind-wiring.sh)" >&2
exit 1
SH
chmod +x "$fake_bin/docker"

rc=0
PATH="$fake_bin:$PATH" cargo nextest run --profile kind --locked >"$log" 2>&1 || rc=$?
if ((rc == 0)); then
  cat "$log"
  echo "check-kind-wiring: the kind profile passed without Docker; it must stop in its setup script" >&2
  exit 1
fi
if ! grep -qF "$expected" "$log"; then
  cat "$log"
  echo "check-kind-wiring: the kind profile failed (exit $rc) without the setup script's message '$expected': the setup script was not run (see .config/nextest.toml)" >&2
  exit 1
fi
grep -F "$expected" "$log"
echo "check-kind-wiring: ok: the kind profile stopped in scripts/kind-setup.sh (exit $rc)"
