#!/usr/bin/env bash
# Install what the HTML report tests (harness/tests/report.rs) need, idempotently: a headless Chromium and
# fonts to lay text out with. The tests look for $CHROMIUM, then chromium, chromium-browser or google-chrome
# on PATH, and fail (never skip) without one.
#
# On Debian: `apt-get install chromium` (as root, or through passwordless sudo). A machine that already has
# one of those browsers (for example GitHub's Ubuntu runners, which ship google-chrome; Ubuntu's own
# chromium package is only a snap stub) is left alone. A second run with nothing to do changes nothing.

set -euo pipefail

say() { printf 'setup-report: %s\n' "$*"; }
die() {
  printf 'setup-report: %s\n' "$*" >&2
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

find_browser() {
  if [[ -n "${CHROMIUM:-}" && -x "${CHROMIUM}" ]]; then
    printf '%s\n' "$CHROMIUM"
    return 0
  fi
  local name
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

# The version line, without the warnings Debian's wrapper script may print on stderr.
browser_version() {
  "$1" --headless --no-sandbox --version 2>/dev/null | head -n 1
}

if browser=$(find_browser); then
  say "present: $browser ($(browser_version "$browser"))"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  die "no Chromium found and no apt-get: install chromium (or google-chrome) yourself, or set CHROMIUM"

say "installing chromium and fonts (apt)"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
  die "apt-get update failed: run as root on Debian, or install chromium yourself"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium fonts-liberation fonts-dejavu-core >/dev/null ||
  die "apt-get install chromium failed"

browser=$(find_browser) || die "chromium was installed but is not on PATH"
version=$(browser_version "$browser")
[[ -n "$version" ]] || die "$browser does not start (try: $browser --headless --no-sandbox --version)"
say "installed: $browser ($version)"
