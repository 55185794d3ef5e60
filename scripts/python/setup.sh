#!/usr/bin/env bash
# The Python reference implementations the suites use as oracles (a file Concord writes must open
# in the ecosystem's own code): a virtual environment with torch (CPU) and transformers, built once
# into ~/.cache/concord/pyref from the machine's local package mirror (nothing is downloaded).
#
#   scripts/python/setup.sh           build it unless it is there; prints the python to use
#   scripts/python/setup.sh --check   exit 0 when it is there and imports
#   scripts/python/setup.sh --python  print the path of its python (for the tests)
set -euo pipefail

VENV=${CONCORD_PYREF:-$HOME/.cache/concord/pyref}
# pip has no retries: the machine reaches only its local mirror, and each retry of the unreachable
# default index would wait. torch must be asked for by exact version: the mirror holds this CPU build, any other version
# would be a multi-GB CUDA download (which this machine cannot reach anyway).
PACKAGES=(torch==2.13.0 'transformers>=5,<6' safetensors numpy)
STAMP="$VENV/.concord-packages"

ready() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "${PACKAGES[*]}" ]] &&
    "$VENV/bin/python" -c 'import torch, transformers, safetensors' >/dev/null 2>&1
}

case "${1:-}" in
  --check) ready; exit ;;
  --python) echo "$VENV/bin/python"; exit 0 ;;
esac

if ready; then
  echo "$VENV/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "python: python3 is not on PATH (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
rm -rf "$VENV"
python3 -m venv "$VENV" || { echo "python: 'python3 -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
log="$VENV/install.log"
if ! "$VENV/bin/pip" install --no-input --progress-bar off --retries 0 --timeout 10 "${PACKAGES[@]}" >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "python: pip could not install ${PACKAGES[*]} (log: $log). These come from the machine's local package mirror ('pip config list' names it); without it, install them into a venv at $VENV by hand." >&2
  exit 1
fi
echo "${PACKAGES[*]}" >"$STAMP"
echo "$VENV/bin/python"
