#!/usr/bin/env bash
# Setup script of the nextest `lab` profile (.config/nextest.toml): prepares the lab for the live suite.
# Builds the lab's binaries when they are not cached (about 30 minutes on 2 cores the first time), brings
# the lab up (`harness up --backend lab`, idempotent: a lab that is up is kept), then applies the posture
# named by HARNESS_POSTURE (default hardened) and waits until the agent enforces it.
#
# Needs Linux, root, BPF with BTF, VXLAN, clang >= 18 and Go (README, "The lab").
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "$(uname -s)" != Linux || "$(id -u)" != 0 ]]; then
  echo "lab-setup: the lab needs Linux and root (it creates network namespaces and loads BPF programs); see README, 'The lab'." >&2
  exit 1
fi
bash scripts/lab.sh packages
if ! bash scripts/lab.sh preflight; then
  echo "lab-setup: this host cannot run the lab (see the missing prerequisites above)." >&2
  exit 1
fi
posture="${HARNESS_POSTURE:-hardened}"
bash scripts/lab-build.sh build >/dev/null
cargo run -q -p harness -- up --backend lab
cargo run -q -p harness -- apply --posture "$posture"
