#!/usr/bin/env bash
# Installs the Debian packages named that are not installed yet (sudo when not root; one
# `apt-get update` and retry when the first install fails). Quiet when all are present.
#   scripts/apt-ensure.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
sudo_=(); [[ $(id -u) -eq 0 ]] || sudo_=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian packages: ${missing[*]}" >&2
"${sudo_[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { "${sudo_[@]}" apt-get update >/dev/null && "${sudo_[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
