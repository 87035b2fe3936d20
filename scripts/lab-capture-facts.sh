#!/usr/bin/env bash
# Captures, from a running lab, the Hubble facts the live path relies on, as test data for the hubble
# crate (harness/hubble/tests/lab_facts.rs):
#   - which policies `*_allowed_by` / `*_denied_by` name on policy-verdict events;
#   - the drop reason of a default deny and of an explicit deny rule, at ingress and at egress;
#   - the identity Hubble gives an outside host, inside and outside a CIDR the policy selects;
#   - what a DNS query refused by the agent's DNS proxy looks like (the client's outcome is in the run's
#     results, the proxy's record in the flows).
#
# It applies the facts posture (fixtures/lab-facts/policies), runs each scenario of
# fixtures/lab-facts/scenarios alone with `harness run`, and after each one reads the flows of that
# run's time window from the agent with the Hubble CLI (`hubble observe -o jsonpb`, built with the lab's
# Cilium). It keeps the first 12 flows between the scenario's two peers.
#
# Usage: scripts/lab-capture-facts.sh [OUT_DIR]
#   OUT_DIR   default harness/hubble/testdata/lab-cilium-<version>, <version> as lab/cilium/go.mod pins it
# Needs a lab that is up (`harness up --backend lab`); leaves the facts posture applied.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'capture: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

version="$(awk '$1 == "github.com/cilium/cilium" { print $2; exit }' lab/cilium/go.mod)"
out="${1:-harness/hubble/testdata/lab-cilium-${version#v}}"
posture=fixtures/lab-facts/policies
scenarios=fixtures/lab-facts/scenarios
harness=(cargo run -q --locked -p harness --)

ids="$(python3 - "$scenarios/facts.yaml" <<'EOF'
import re, sys
print(" ".join(re.findall(r"^- id: (\S+)$", open(sys.argv[1]).read(), re.M)))
EOF
)"
[[ -n "$ids" ]] || die "no scenario ids in $scenarios/facts.yaml"

mkdir -p "$out"
"${harness[@]}" apply --posture "$posture"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for id in $ids; do
    start="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
    # A scenario that fails its intent is still a fact worth keeping: the run's exit code is reported,
    # not fatal.
    rc=0
    "${harness[@]}" run --posture "$posture" --scenarios "$scenarios" --filter "^$id\$" \
        --results "$work/$id.json" --concurrency 1 || rc=$?
    end="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
    # Hubble serves an event only once a later one is written: wait until an event after `end` (the lab's
    # heartbeat makes one every 100 ms) is served, so that every event of the window is.
    tries=0
    until [[ -n "$(bash scripts/lab.sh hubble observe --since "$end" --first 1 -o jsonpb 2>/dev/null)" ]]; do
        ((++tries < 50)) || die "no Hubble event after $end within 5 s (is the lab's heartbeat running?)"
        sleep 0.1
    done
    bash scripts/lab.sh hubble observe --since "$start" --until "$end" -o jsonpb >"$work/$id.all.jsonl"
    python3 - "$work/$id.json" "$work/$id.all.jsonl" "$out/$id.jsonl" "$out/$id.client.json" <<'EOF'
import json, re, sys
results, flows, out_flows, out_client = sys.argv[1:]
doc = json.load(open(results))
(s,) = doc["scenarios"]
# Outside hosts by address (fixtures/stack.yaml), pods by namespace and name prefix (a Deployment's pod).
hosts = dict(re.findall(r"- name: (\S+)\n\s+ip: (\S+)", open("fixtures/stack.yaml").read()))
def want(side):
    if "/" in side:
        ns, name = side.split("/", 1)
        return lambda ep, ip: ep.get("namespace") == ns and ep.get("pod_name", "").startswith(name)
    addr = hosts[side]
    return lambda ep, ip: ip == addr
peers = [want(s["from"]), want(s["to"])]
kept = []
for line in open(flows):
    line = line.strip()
    f = json.loads(line).get("flow") if line else None
    if not f:
        continue
    ip = f.get("IP", {})
    src = any(p(f.get("source", {}), ip.get("source")) for p in peers)
    dst = any(p(f.get("destination", {}), ip.get("destination")) for p in peers)
    if src and dst:
        kept.append(line)
# Small, reviewable files: the first flows of the exchange are the ones the facts are about.
kept = kept[:12]
open(out_flows, "w").write("".join(k + "\n" for k in kept))
keep = ("id", "from", "to", "port", "protocol", "request", "intent", "model", "client", "hubble", "status", "reason")
hubble = dict(s.get("hubble") or {})
hubble.pop("flows", None)  # the harness's own rendering; the raw flows are in the .jsonl file
s["hubble"] = hubble
json.dump({k: s[k] for k in keep if k in s}, open(out_client, "w"), indent=2)
EOF
    log "$id: harness run exit $rc; $(wc -l <"$out/$id.jsonl") flow(s) kept in $out/$id.jsonl"
done
log "done: $out"
