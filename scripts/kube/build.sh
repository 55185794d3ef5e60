#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's
# `kubernetes` source package (Go 1.19), once per machine, into a cache:
#   ${CONCORD_KUBE_CACHE:-$HOME/.cache/concord/kube}/v1.20.2/bin/
# Idempotent: exits at once when both binaries are already cached. `build.sh --check` only says
# whether they are (exit 0) or not (exit 1). scripts/setup-machine.sh runs it; etcd and kubectl,
# which the clusters need at run time, are installed there.
#
# Environment:
#   CONCORD_KUBE_CACHE     cache root (default $HOME/.cache/concord/kube)
#   CONCORD_KUBE_APT_URI   Debian mirror for the deb-src line (default: the system's bookworm entry)
#   CONCORD_KUBE_KEEP_WORK=1  keep the work dir (source tree) after a successful build
set -euo pipefail

KUBE_VERSION=v1.20.2
SUITE=bookworm
CACHE_ROOT=${CONCORD_KUBE_CACHE:-$HOME/.cache/concord/kube}
VDIR=$CACHE_ROOT/$KUBE_VERSION
BIN=$VDIR/bin
WORK=$VDIR/work
BINARIES=(kube-apiserver kube-controller-manager)
PACKAGES=(golang-go golang-github-modern-go-reflect2-dev dpkg-dev make rsync openssl curl)

have_binaries() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x $BIN/$b ]] || return 1; done
}

if [[ ${1:-} == --check ]]; then
  have_binaries
  exit
fi

if have_binaries; then
  echo "kube: $KUBE_VERSION binaries already cached in $BIN"
  exit 0
fi

STAGE=init
START=$SECONDS
log() { echo "kube build [$((SECONDS - START))s]: $*"; }
stage() { STAGE=$1; log "$1"; }
die() { echo "kube build: ERROR: $*" >&2; exit 1; }
on_err() {
  local rc=$?
  echo "kube build: FAILED (exit $rc) during stage: $STAGE" >&2
  if [[ -n ${STEP_LOG:-} && -f $STEP_LOG ]]; then
    echo "kube build: last lines of $STEP_LOG:" >&2
    tail -n 40 "$STEP_LOG" >&2 || true
  fi
  exit "$rc"
}
trap on_err ERR

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install packages or run apt-get"
  SUDO=(sudo)
fi

mkdir -p "$VDIR"
# One build at a time per cache (e.g. parallel test workers); the loser waits, then finds the binaries.
exec 9>"$VDIR/.build.lock"
if ! flock -n 9; then
  log "another build holds $VDIR/.build.lock; waiting for it"
  flock 9
fi
if have_binaries; then
  echo "kube: $KUBE_VERSION binaries already cached in $BIN"
  exit 0
fi
mkdir -p "$WORK"
STEP_LOG=

# --- 1. packages ---------------------------------------------------------------------
stage "1/6 packages: ${PACKAGES[*]}"
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  STEP_LOG=$WORK/apt-install.log
  need_update=0
  for p in "${missing[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [[ -z $cand || $cand == "(none)" ]]; then need_update=1; fi
  done
  if ((need_update)); then
    log "apt-get update (package lists lack a candidate)"
    "${SUDO[@]}" apt-get update >"$STEP_LOG" 2>&1
  fi
  log "installing: ${missing[*]}"
  if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >>"$STEP_LOG" 2>&1; then
    log "install failed; apt-get update and one retry"
    "${SUDO[@]}" apt-get update >>"$STEP_LOG" 2>&1
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >>"$STEP_LOG" 2>&1
  fi
else
  log "all present"
fi
go_version=$(go version 2>/dev/null || true)
[[ $go_version == *go1.19* ]] || log "warning: expected Go 1.19, found: ${go_version:-no go}"

# --- 2. source package, with a private apt config (never touches the system's lists) -----
stage "2/6 fetch Debian source package 'kubernetes' ($SUITE)"
# Same URI and keyring as the system's own bookworm entry (deb822 .sources or one-line .list).
find_system_entry() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && (" " comps " ") ~ / main / && uri != "")
          { print uri "\t" key; found = 1; exit }
        types = suites = comps = uri = key = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:"      { $1 = ""; types = $0 }
      tolower($1) == "uris:"       { uri = $2 }
      tolower($1) == "suites:"     { $1 = ""; suites = $0 }
      tolower($1) == "components:" { $1 = ""; comps = $0 }
      tolower($1) == "signed-by:"  { key = $2 }
      END { if (!found) flush() }
    ' "$f" | head -n 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v suite="$SUITE" '
      $1 == "deb" {
        key = ""; i = 2
        if ($2 ~ /^\[/) {
          while (i <= NF) {
            if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) }
            if ($i ~ /\]$/) { i++; break }
            i++
          }
        }
        uri = $i; s = $(i + 1)
        if (s == suite) { for (j = i + 2; j <= NF; j++) if ($j == "main") { print uri "\t" key; exit } }
      }' "$f" | head -n 1
  done
}
entry=$(find_system_entry | head -n 1 || true)
APT_URI=${CONCORD_KUBE_APT_URI:-${entry%%$'\t'*}}
APT_KEY=${entry#*$'\t'}
[[ $entry == *$'\t'* ]] || APT_KEY=
[[ -n $APT_URI ]] || APT_URI=http://deb.debian.org/debian
if [[ -z $APT_KEY && -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
  APT_KEY=/usr/share/keyrings/debian-archive-keyring.gpg
fi
opts=""
[[ -n $APT_KEY ]] && opts="[signed-by=$APT_KEY] "
APT=$WORK/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
echo "deb-src ${opts}$APT_URI $SUITE main" >"$APT/sources.list"
log "private sources: $(cat "$APT/sources.list")"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache=$APT/cache"
  -o APT::Sandbox::User=root
)
STEP_LOG=$WORK/apt-source.log
apt-get "${APT_OPTS[@]}" update >"$STEP_LOG" 2>&1
DL=$WORK/dl
rm -rf "$DL"
mkdir -p "$DL"
(cd "$DL" && apt-get "${APT_OPTS[@]}" source --download-only kubernetes) >>"$STEP_LOG" 2>&1
dsc=$(find "$DL" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n 1)
[[ -n $dsc ]] || die "no kubernetes_*.dsc downloaded (see $STEP_LOG)"
pkg_version=$(awk '/^Version:/ {print $2; exit}' "$dsc")
log "downloaded $(basename "$dsc") (version $pkg_version)"
[[ $pkg_version == *1.20.2* ]] || die "source package version $pkg_version is not Kubernetes 1.20.2; this script expects bookworm's 1.20.5+really1.20.2-*"

# --- 3. extract ------------------------------------------------------------------------
stage "3/6 extract source"
SRC=$WORK/src
rm -rf "$SRC"
STEP_LOG=$WORK/extract.log
dpkg-source -x "$dsc" "$SRC" >"$STEP_LOG" 2>&1
[[ -f $SRC/Makefile ]] || die "extracted tree $SRC has no Makefile"
rm -rf "$DL" "$APT"

# --- 4. required patch: Debian's reflect2 instead of the vendored one -------------------
stage "4/6 replace vendor/github.com/modern-go/reflect2 with Debian's copy"
# Without it the apiserver built by Go 1.19 dies with SIGSEGV on the first custom-resource create.
R2=$(dpkg -L golang-github-modern-go-reflect2-dev | grep -E '/src/github\.com/modern-go/reflect2$' | head -n 1 || true)
[[ -n $R2 && -d $R2 ]] || R2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -f $R2/reflect2.go ]] || die "Debian's reflect2 source not found (looked at $R2)"
VR2=$SRC/vendor/github.com/modern-go/reflect2
[[ -d $VR2 ]] || die "$VR2 missing in the source tree"
rm -rf "$VR2"
cp -rL "$R2" "$VR2"
log "vendor reflect2 <- $R2"

# --- 5. build ---------------------------------------------------------------------------
stage "5/6 make WHAT='cmd/kube-apiserver cmd/kube-controller-manager' (~10 min on 2 cores)"
STEP_LOG=$WORK/make.log
log "build log: $STEP_LOG"
(
  cd "$SRC"
  env GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
    GOCACHE="$WORK/gocache" GOTMPDIR= \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
) >"$STEP_LOG" 2>&1
for b in "${BINARIES[@]}"; do
  [[ -x $SRC/_output/bin/$b ]] || die "make finished but $SRC/_output/bin/$b is missing"
done

# --- 6. install into the cache, clean up ------------------------------------------------
stage "6/6 install into $BIN"
STEP_LOG=
rm -rf "$BIN.tmp"
mkdir -p "$BIN.tmp"
for b in "${BINARIES[@]}"; do install -m 0755 "$SRC/_output/bin/$b" "$BIN.tmp/$b"; done
"$BIN.tmp/kube-apiserver" --version
rm -rf "$BIN"
mv "$BIN.tmp" "$BIN"
cp "$WORK/make.log" "$VDIR/build.log"
if [[ ${CONCORD_KUBE_KEEP_WORK:-0} != 1 ]]; then
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
fi
log "done: $(du -sh "$VDIR" | cut -f1) in $VDIR"
