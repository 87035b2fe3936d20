#!/usr/bin/env bash
# Install what .ci/lint.sh needs, idempotently:
#   * shellcheck, from the distribution (apt-get; as root, or through sudo when that works without a
#     password, e.g. on GitHub's runners);
#   * a Python virtual environment at <repo>/.tools/lint-venv (gitignored) with pinned
#     check-jsonschema (JSON Schema validation, incl. its vendored GitHub workflow schema),
#     zizmor (GitHub Actions security lints, a prebuilt wheel) and PyYAML, all from PyPI.
# A second run with nothing to do prints what is there and changes nothing.
#
# Environment: LINT_VENV (default <repo>/.tools/lint-venv), PYTHON (default python3).

set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${LINT_VENV:-$repo_root/.tools/lint-venv}"
python="${PYTHON:-python3}"

# Pinned so that a lint result does not change under us; bump deliberately.
requirements=(
  "check-jsonschema==0.39.0"
  "zizmor==1.32.0"
  "PyYAML==6.0.3"
)

say() { printf 'setup-lint: %s\n' "$*"; }
die() {
  printf 'setup-lint: %s\n' "$*" >&2
  exit 1
}

# as_root CMD...: run as root (directly, or with passwordless sudo).
as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [[ $apt_updated == 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- shellcheck -----------------------------------------------------------------------------------
if command -v shellcheck >/dev/null 2>&1; then
  say "shellcheck present: $(shellcheck --version | sed -n 's/^version: //p')"
else
  say "installing shellcheck (apt)"
  apt_install shellcheck || die "cannot install shellcheck: run as root on Debian/Ubuntu, or install it yourself"
  say "shellcheck installed: $(shellcheck --version | sed -n 's/^version: //p')"
fi

# ---- Python venv ----------------------------------------------------------------------------------
stamp="$venv/.requirements"
wanted=$(printf '%s\n' "${requirements[@]}")
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]] &&
  "$venv/bin/python" -c 'import yaml, jsonschema' 2>/dev/null &&
  [[ -x "$venv/bin/check-jsonschema" && -x "$venv/bin/zizmor" ]]; then
  say "lint venv up to date: $venv"
else
  command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3 (apt-get install python3)"
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    say "installing python3-venv (apt)"
    apt_install python3-venv || die "the venv module is missing; install python3-venv"
  fi
  say "creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || die "could not create a virtual environment with $python"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${requirements[@]}" ||
    die "pip could not install: ${requirements[*]}"
  printf '%s\n' "$wanted" >"$stamp"
  say "lint venv ready: $venv"
fi

say "check-jsonschema $("$venv/bin/check-jsonschema" --version | awk '{print $NF}'), $("$venv/bin/zizmor" --version)"
