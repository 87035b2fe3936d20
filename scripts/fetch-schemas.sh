#!/usr/bin/env bash
# Download the Cilium schemas that .ci/lint.sh validates against, for machines that do not have the
# shared schema directory beside the repository (GitHub Actions, a fresh laptop clone):
#
#   DIR/cilium-<major.minor>/ciliumnetworkpolicies.yaml              CNP CRD (openAPIV3Schema)
#   DIR/cilium-<major.minor>/ciliumclusterwidenetworkpolicies.yaml   CCNP CRD
#   DIR/cilium-<major.minor>/helm-values.schema.json                 the chart's values schema
#   DIR/cilium-<major.minor>/helm-values.yaml                        the chart's default values
#
# taken from cilium/cilium at the release tag v<VERSION> (default 1.19.8). Then run the lint with
#   HARNESS_SCHEMAS_DIR=DIR bash .ci/lint.sh
# These are schema text files used only for validation; they are fetched from the pinned tag without
# a checksum. Not for use on machines without internet access.
#
# Usage: scripts/fetch-schemas.sh DIR [VERSION]

set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 && ( "$1" == -h || "$1" == --help ) ]] && exit 0
  exit 2
fi

dir=$1
version=${2:-1.19.8}
if [[ ! "$version" =~ ^([0-9]+\.[0-9]+)\.[0-9]+$ ]]; then
  echo "fetch-schemas: VERSION must look like 1.19.8, not '$version'" >&2
  exit 2
fi
minor=${BASH_REMATCH[1]}
base="https://raw.githubusercontent.com/cilium/cilium/v${version}"
out="$dir/cilium-$minor"
mkdir -p "$out"

fetch() {
  echo "fetch-schemas: $1"
  curl --proto '=https' --tlsv1.2 --fail --silent --show-error --location --retry 3 \
    --output "$2" "$base/$1"
}

fetch pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml "$out/ciliumnetworkpolicies.yaml"
fetch pkg/k8s/apis/cilium.io/client/crds/v2/ciliumclusterwidenetworkpolicies.yaml "$out/ciliumclusterwidenetworkpolicies.yaml"
fetch install/kubernetes/cilium/values.schema.json "$out/helm-values.schema.json"
fetch install/kubernetes/cilium/values.yaml "$out/helm-values.yaml"
echo "fetch-schemas: Cilium v$version schemas in $out"
