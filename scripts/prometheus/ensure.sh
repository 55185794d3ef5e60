#!/usr/bin/env bash
# Makes sure Prometheus and promtool (Debian package `prometheus`, 2.42) are installed; prints the
# directory holding both. The package starts no service here (no systemd): the tests run
# `prometheus` themselves on loopback with their own config and storage.
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  "$(dirname "${BASH_SOURCE[0]}")/../apt-ensure.sh" prometheus
fi
dirname "$(command -v prometheus)"
