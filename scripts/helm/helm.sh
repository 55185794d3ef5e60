#!/usr/bin/env bash
# Runs the helm that scripts/helm/install.sh cached:  scripts/helm/helm.sh ARGS...  (= helm ARGS...)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$HERE/install.sh" --check || {
  echo "helm: not installed: run scripts/setup-machine.sh (npm test runs it)" >&2
  exit 1
}
exec "$("$HERE/install.sh")" "$@"
