#!/usr/bin/env bash
# Makes sure Prometheus and promtool (Debian package `prometheus`, 2.42) are installed; prints the
# directory holding both. The package starts no service here (no systemd): the tests run
# `prometheus` themselves on loopback with their own config and storage.
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "prometheus: installing the Debian package (once per machine)" >&2
  sudo_=(); [[ $(id -u) -eq 0 ]] || sudo_=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
    || { "${sudo_[@]}" apt-get update >/dev/null && "${sudo_[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null; }
fi
dirname "$(command -v prometheus)"
