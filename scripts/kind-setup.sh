#!/usr/bin/env bash
# Setup script of the nextest `kind` profile (.config/nextest.toml): prepares the test bed for the live
# suite. Reuses a test bed that is already up (`harness up` is idempotent), then applies the posture named
# by HARNESS_POSTURE (default hardened) and waits until every Cilium agent enforces it.
#
# Needs Docker and the tools of scripts/install-tools.sh. The Cilium version comes from
# HARNESS_CILIUM_VERSION (default: the harness's default).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "kind-setup: Docker is not available: the kind profile needs a Docker engine (see README, 'Live run')." >&2
  exit 1
fi
if [ -d .tools/bin ]; then
  PATH="$PWD/.tools/bin:$PATH"
  export PATH
fi
posture="${HARNESS_POSTURE:-hardened}"
cargo run -q -p harness -- up --reuse
cargo run -q -p harness -- apply --posture "$posture"
