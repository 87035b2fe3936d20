#!/usr/bin/env bash
# Prepares a fresh Debian or Ubuntu machine (as root, or a user with passwordless sudo, such as GitHub's
# runners) for the agent's tests (workloads/agent).
#
# The tests start their own servers: PostgreSQL from its server binaries (initdb/pg_ctl in a temp dir on
# a loopback port, run as `nobody` when the tests run as root) and the `tansu` Kafka broker with
# in-memory storage. This script only installs what they need:
#   - the PostgreSQL server binaries (apt package `postgresql`), a C toolchain for librdkafka (bundled in
#     rdkafka-sys), util-linux (`runuser`, `unshare`) and procps (`kill`);
#   - tansu, with `cargo install tansu --features dynostore --locked` (about 12 minutes on 2 cores), only
#     when no tansu binary is found.
# It writes .ci/env.agent (KEY=VALUE lines, sourced by .ci/run) telling the tests where the servers are.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${repo_root}/.ci/env.agent"

log() { printf 'setup-agent: %s\n' "$*" >&2; }

newest_pg_bin() {
    local dir version best="" best_version=-1
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "${dir}/initdb" ]] || continue
        version="${dir#/usr/lib/postgresql/}"
        version="${version%/bin}"
        [[ "${version}" =~ ^[0-9]+$ ]] || continue
        if ((version > best_version)); then
            best_version="${version}"
            best="${dir}"
        fi
    done
    printf '%s' "${best}"
}

# as_root CMD...: run as root (directly, or with passwordless sudo).
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        log "need root (or passwordless sudo) to run: $*"
        return 1
    fi
}

packages=()
[[ -n "$(newest_pg_bin)" ]] || packages+=(postgresql)
command -v cc >/dev/null 2>&1 || packages+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || packages+=(make)
command -v perl >/dev/null 2>&1 || packages+=(perl)
command -v runuser >/dev/null 2>&1 || packages+=(util-linux)
command -v unshare >/dev/null 2>&1 || packages+=(util-linux)
command -v kill >/dev/null 2>&1 || packages+=(procps)

if ((${#packages[@]} > 0)); then
    log "installing ${packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

pg_bin="$(newest_pg_bin)"
if [[ -z "${pg_bin}" ]]; then
    log "no PostgreSQL server binaries under /usr/lib/postgresql after installing"
    exit 1
fi

tansu_bin="$(command -v tansu || true)"
if [[ -z "${tansu_bin}" && -x "${HOME}/.cargo/bin/tansu" ]]; then
    tansu_bin="${HOME}/.cargo/bin/tansu"
fi
if [[ -z "${tansu_bin}" ]]; then
    log "building tansu (cargo install tansu --features dynostore --locked, ~12 minutes)"
    cargo install tansu --features dynostore --locked
    tansu_bin="${CARGO_HOME:-${HOME}/.cargo}/bin/tansu"
fi
"${tansu_bin}" --version >/dev/null

cat >"${env_file}" <<ENV
# Written by .ci/setup-agent.sh: where the agent tests find their servers.
export AGENT_TEST_SERVERS=local
export PG_BIN_DIR=${pg_bin}
export TANSU_BIN=${tansu_bin}
ENV
log "wrote ${env_file}: PG_BIN_DIR=${pg_bin} TANSU_BIN=${tansu_bin}"
