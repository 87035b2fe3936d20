#!/usr/bin/env bash
# The tests in one command: installs, idempotently and saying what it does, everything the default nextest
# profile needs on a Debian machine (run as root or with passwordless sudo), then runs the README's test
# command. .ci/run calls this same script.
#
#   - PostgreSQL server binaries and the tansu Kafka broker (.ci/setup-agent.sh; building tansu takes about
#     12 minutes the first time);
#   - shellcheck, check-jsonschema, zizmor (.ci/setup-lint.sh);
#   - headless Chromium for the HTML report test (.ci/setup-report.sh);
#   - cargo-nextest, from crates.io (`cargo install cargo-nextest --locked`), when it is missing or older
#     than .config/nextest.toml requires.
#
# Usage: scripts/test.sh [--setup-only] [NEXTEST_ARGS...]
#   --setup-only  install the prerequisites and stop
#   NEXTEST_ARGS  passed to `cargo nextest run --workspace --locked` (e.g. -E 'test(/report/)')
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The oldest cargo-nextest that reads .config/nextest.toml (setup script `relative-to = "workspace-root"`).
NEXTEST_MIN="0.9.99"

say() { printf 'test.sh: %s\n' "$*"; }

setup_only=0
if [[ "${1:-}" == "--setup-only" ]]; then
  setup_only=1
  shift
fi

say "PostgreSQL server binaries and tansu (.ci/setup-agent.sh)"
bash .ci/setup-agent.sh
# shellcheck disable=SC1091
source .ci/env.agent

say "lint tools: shellcheck, check-jsonschema, zizmor (.ci/setup-lint.sh)"
bash .ci/setup-lint.sh

say "headless Chromium for the HTML report test (.ci/setup-report.sh)"
bash .ci/setup-report.sh

# nextest_version: the installed cargo-nextest's version (0.9.123), or nothing.
# (`cargo nextest` exits 101 when nextest is missing: under pipefail that must not end the script.)
nextest_version() {
  { cargo nextest --version 2>/dev/null || true; } | head -n 1 | sed -n 's/^cargo-nextest \([0-9][0-9.]*\).*/\1/p'
}
# at_least A B: version A >= version B.
at_least() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}
have=$(nextest_version)
if [[ -n "$have" ]] && at_least "$have" "$NEXTEST_MIN"; then
  say "cargo-nextest $have: present"
else
  if [[ -n "$have" ]]; then
    say "cargo-nextest $have is older than $NEXTEST_MIN: installing the current release (cargo install cargo-nextest --locked)"
  else
    say "cargo-nextest: missing, installing it (cargo install cargo-nextest --locked, a few minutes)"
  fi
  cargo install cargo-nextest --locked
  say "cargo-nextest $(nextest_version): installed"
fi

if ((setup_only)); then
  say "prerequisites in place"
  exit 0
fi

say "cargo nextest run --workspace --locked $*"
exec cargo nextest run --workspace --locked "$@"
