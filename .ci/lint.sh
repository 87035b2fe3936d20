#!/usr/bin/env bash
# Offline lint of everything that is not Rust, run from any directory:
#   1. bash -n and shellcheck on every *.sh under scripts/ and .ci/, and on .ci/run;
#   2. the GitHub workflows against check-jsonschema's vendored workflow schema, then zizmor
#      (offline security audit);
#   3. the self-tests of scripts/lint/lint_configs.py (a check that cannot fail proves nothing);
#   4. kind/cilium-values.yaml against the Cilium 1.19 chart's values.schema.json, plus: every key is
#      a chart value, and hubble.metrics.enabled is a plain list with dns, drop and tcp;
#   5. kind/cluster.yaml against the values and fixtures/stack.yaml (node images pinned by digest,
#      Relay NodePort mapped to 127.0.0.1:4245, no range overlaps, ...);
#   6. every policies/**/*.yaml document against the CiliumNetworkPolicy /
#      CiliumClusterwideNetworkPolicy CRD schema (spec.versions[v2].schema.openAPIV3Schema), made
#      strict: unknown fields are errors, as with the API server's fieldValidation=Strict.
# All steps run; the script exits 1 if any failed, naming each.
#
# Needs: .ci/setup-lint.sh (shellcheck + the Python venv) and the Cilium schemas, by default at
# ../shared/schemas/cilium-1.19 relative to the repository root (HARNESS_SCHEMAS_DIR overrides the
# ../shared/schemas part; scripts/fetch-schemas.sh can fill such a directory from Cilium's sources).

set -uo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root" || exit 1

venv="${LINT_VENV:-$repo_root/.tools/lint-venv}"
schemas_root="${HARNESS_SCHEMAS_DIR:-$repo_root/../shared/schemas}"
schemas="$schemas_root/cilium-1.19"
export PYTHONDONTWRITEBYTECODE=1

failed_steps=()
step=""

begin() {
  step=$1
  printf '\n== %s\n' "$step"
}
ok() { printf 'ok: %s\n' "$step"; }
bad() {
  printf 'FAILED: %s%s\n' "$step" "${1:+ ($1)}"
  failed_steps+=("$step")
}

# ---- prerequisites ---------------------------------------------------------------------------------
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=("shellcheck")
for tool in python check-jsonschema zizmor; do
  [[ -x "$venv/bin/$tool" ]] || missing+=("$venv/bin/$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "lint: missing ${missing[*]}"
  echo "lint: run 'bash .ci/setup-lint.sh' first (it installs shellcheck and the lint venv)"
  exit 1
fi
schema_files=(ciliumnetworkpolicies.yaml ciliumclusterwidenetworkpolicies.yaml helm-values.schema.json helm-values.yaml)
schemas_ok=1
for f in "${schema_files[@]}"; do
  [[ -f "$schemas/$f" ]] || schemas_ok=0
done
if [[ $schemas_ok == 0 ]]; then
  echo "lint: the Cilium 1.19 schemas are not at $schemas"
  echo "lint: expected ${schema_files[*]} there. They are not part of this repository: CI finds them in"
  echo "lint: the shared/ directory beside the clone (../shared/schemas). Elsewhere, fetch them with"
  echo "lint:   bash scripts/fetch-schemas.sh /some/dir && HARNESS_SCHEMAS_DIR=/some/dir bash .ci/lint.sh"
  exit 1
fi
py="$venv/bin/python"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- 1. shell ---------------------------------------------------------------------------------------
shell_files=()
while IFS= read -r -d '' f; do shell_files+=("$f"); done < <(find scripts .ci -type f -name '*.sh' -print0 2>/dev/null | sort -z)
[[ -f .ci/run ]] && shell_files+=(.ci/run)

begin "bash -n (${#shell_files[@]} files)"
n_bad=0
for f in "${shell_files[@]}"; do
  if ! bash -n "$f"; then
    echo "syntax error: $f"
    n_bad=$((n_bad + 1))
  fi
done
if [[ $n_bad == 0 ]]; then ok; else bad "$n_bad files"; fi

begin "shellcheck $(shellcheck --version | sed -n 's/^version: //p') (${#shell_files[@]} files)"
# -x follows `source` directives (paths in them are relative to the repository root).
if shellcheck -x "${shell_files[@]}"; then ok; else bad; fi

# ---- 2. workflows -----------------------------------------------------------------------------------
workflows=()
while IFS= read -r -d '' f; do workflows+=("$f"); done < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) -print0 2>/dev/null | sort -z)

begin "GitHub workflow schema (${#workflows[@]} files)"
if [[ ${#workflows[@]} == 0 ]]; then
  bad "no workflow files in .github/workflows"
elif "$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"; then
  ok
else
  bad
fi

begin "zizmor --offline (GitHub Actions security audit)"
if [[ ${#workflows[@]} == 0 ]]; then
  bad "no workflow files"
elif "$venv/bin/zizmor" --offline --no-progress --color never "${workflows[@]}"; then
  ok
else
  bad
fi

# ---- 3. checker self-tests ----------------------------------------------------------------------------
begin "self-tests of scripts/lint/lint_configs.py"
if HARNESS_SCHEMAS_DIR="$schemas_root" "$py" -m unittest discover -s scripts/lint -p 'test_*.py' 2>"$tmp/unittest.log"; then
  tail -n 3 "$tmp/unittest.log"
  ok
else
  cat "$tmp/unittest.log"
  bad
fi

# ---- 4. Helm values ----------------------------------------------------------------------------------
begin "kind/cilium-values.yaml against the Cilium 1.19 chart schema"
if "$venv/bin/check-jsonschema" --schemafile "$schemas/helm-values.schema.json" kind/cilium-values.yaml; then ok; else bad; fi

begin "kind/cilium-values.yaml keys and Hubble metrics"
if "$py" scripts/lint/lint_configs.py helm-values kind/cilium-values.yaml "$schemas/helm-values.yaml"; then ok; else bad; fi

# ---- 5. kind config -----------------------------------------------------------------------------------
begin "kind/cluster.yaml against the values and fixtures/stack.yaml"
if "$py" scripts/lint/lint_configs.py kind-config kind/cluster.yaml kind/cilium-values.yaml fixtures/stack.yaml; then ok; else bad; fi

# ---- 6. policies ----------------------------------------------------------------------------------------
begin "policies against the CNP/CCNP CRD schemas (strict)"
# The schemas as the validator uses them, kept for a look when something fails.
if "$py" scripts/lint/lint_configs.py extract-crd-schema "$schemas/ciliumnetworkpolicies.yaml" "$tmp/cnp.schema.json" >/dev/null &&
  "$py" scripts/lint/lint_configs.py extract-crd-schema "$schemas/ciliumclusterwidenetworkpolicies.yaml" "$tmp/ccnp.schema.json" >/dev/null; then
  if [[ ! -d policies ]]; then
    bad "no policies/ directory"
  elif "$py" scripts/lint/lint_configs.py policies "$schemas" policies; then
    ok
  else
    bad
  fi
else
  bad "could not extract the v2 openAPIV3Schema from the CRDs in $schemas"
fi

# ---- summary -----------------------------------------------------------------------------------------
echo
if [[ ${#failed_steps[@]} -gt 0 ]]; then
  echo "lint FAILED (${#failed_steps[@]}):"
  printf '  - %s\n' "${failed_steps[@]}"
  exit 1
fi
echo "lint passed"
