#!/usr/bin/env bash
# Start ONE throwaway Kubernetes API server (etcd + kube-apiserver v1.20.2, optionally
# kube-controller-manager) on loopback, with its state under DIR.
#
#   scripts/kube/start.sh [--controller-manager] DIR [PORT]
#
# PORT is the API server's HTTPS port (default: a free one). etcd gets its own free client
# and peer ports, so several clusters can run side by side. Needs etcd and the binaries built
# by scripts/kube/build.sh; scripts/setup-machine.sh (which `npm test` runs) provides both.
#
# Writes into DIR:
#   kubeconfig      server https://127.0.0.1:PORT, CA data, bearer token (user admin, system:masters)
#   pids            "PID NAME" per line (read by stop.sh)
#   cluster.env     shell-sourceable: KUBE_PORT, KUBE_SERVER, KUBE_TOKEN, ETCD_CLIENT_PORT, ...
#   token           the bearer token
#   *.log           daemon output;  run-*.sh  the exact command line of each daemon (to restart one)
#   data/           etcd data, certs, token file, SA key pair (removed by stop.sh)
# Prints the kubeconfig path on stdout (last line); everything else goes to stderr.
#
# Environment: CONCORD_KUBE_CACHE (see build.sh), CONCORD_KUBE_READY_TIMEOUT (seconds, default 60).
set -euo pipefail

KUBE_VERSION=v1.20.2
CACHE_ROOT=${CONCORD_KUBE_CACHE:-$HOME/.cache/concord/kube}
BIN=$CACHE_ROOT/$KUBE_VERSION/bin
READY_TIMEOUT=${CONCORD_KUBE_READY_TIMEOUT:-60}

usage() { echo "usage: $0 [--controller-manager] DIR [PORT]" >&2; exit 2; }
log() { echo "kube start: $*" >&2; }
die() { echo "kube start: ERROR: $*" >&2; exit 1; }
# Alive = exists and is not a zombie (an orphan's zombie lingers if PID 1 does not reap).
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

WITH_KCM=0
args=()
for a in "$@"; do
  case $a in
    --controller-manager) WITH_KCM=1 ;;
    -h | --help) usage ;;
    -*) echo "unknown option: $a" >&2; usage ;;
    *) args+=("$a") ;;
  esac
done
((${#args[@]} >= 1 && ${#args[@]} <= 2)) || usage
DIR=${args[0]}
API_PORT=${args[1]:-}
PORT_FIXED=0
[[ -z $API_PORT ]] || PORT_FIXED=1
if [[ -n $API_PORT && ! $API_PORT =~ ^[0-9]+$ ]]; then die "PORT must be a number, got '$API_PORT'"; fi

for tool in openssl curl base64 etcd; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run scripts/setup-machine.sh (npm test runs it)"
done
for binary in kube-apiserver kube-controller-manager; do
  [[ -x $BIN/$binary ]] || die "$binary not built in $BIN: run scripts/setup-machine.sh (npm test runs it; ~10 minutes once)"
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [[ -f $DIR/pids ]]; then
  while read -r pid _; do
    if [[ -n $pid ]] && alive "$pid"; then
      die "$DIR already runs a cluster (pid $pid from $DIR/pids); stop it with scripts/kube/stop.sh $DIR"
    fi
  done <"$DIR/pids"
  rm -f "$DIR/pids"
fi
DATA=$DIR/data
rm -rf "$DATA"
mkdir -p "$DATA/etcd" "$DATA/certs"
chmod 700 "$DATA"

# --- cleanup of what we started, if anything below fails ----------------------------------
STARTED=()
cleanup_on_failure() {
  local rc=$? pid
  trap - EXIT
  if ((rc != 0)); then
    for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do
      for _ in $(seq 1 25); do alive "$pid" || break; sleep 0.2; done
    done
    rm -rf "$DATA"
    rm -f "$DIR/pids" "$DIR/token" "$DIR/kubeconfig" "$DIR/cluster.env"
    log "failed; stopped what it had started (logs kept in $DIR)"
  fi
  exit "$rc"
}
trap cleanup_on_failure EXIT

# --- free ports -------------------------------------------------------------------------
# A port is taken when something accepts a connection on it. Ports are drawn at random from
# 20000-32767 (below Linux's ephemeral range) so that parallel starts rarely pick the same one;
# a bind failure is retried below.
USED_PORTS=" "
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12768))
    [[ $USED_PORTS == *" $p "* ]] && continue
    port_busy "$p" && continue
    USED_PORTS+="$p "
    echo "$p"
    return 0
  done
  die "no free port found on 127.0.0.1"
}

# Start a daemon detached (own session, stdin closed, output to a log); prints its pid.
# The run-NAME.sh launcher execs the binary, so the pid is the daemon's own.
launch() {
  local name=$1; shift
  {
    echo '#!/bin/sh'
    printf 'exec'
    printf ' %q' "$@"
    echo
  } >"$DIR/run-$name.sh"
  chmod +x "$DIR/run-$name.sh"
  setsid "$DIR/run-$name.sh" </dev/null >"$DIR/$name.log" 2>&1 &
  echo $!
}

log_tail() { echo "--- last lines of $1 ---" >&2; tail -n 30 "$1" >&2 || true; echo "---" >&2; }

if [[ -n $API_PORT ]]; then
  port_busy "$API_PORT" && die "port $API_PORT on 127.0.0.1 is already in use"
  USED_PORTS+="$API_PORT "
fi

# --- etcd -------------------------------------------------------------------------------
ETCD_PID=
for attempt in 1 2 3 4 5; do
  ETCD_CLIENT_PORT=$(free_port)
  ETCD_PEER_PORT=$(free_port)
  rm -rf "$DATA/etcd" && mkdir -p "$DATA/etcd" && chmod 700 "$DATA/etcd"
  ETCD_PID=$(launch etcd etcd \
    --name=default \
    --data-dir="$DATA/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync)
  ok=0
  for _ in $(seq 1 100); do
    if ! alive "$ETCD_PID"; then break; fi
    if curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; then
      ok=1; break
    fi
    sleep 0.2
  done
  if ((ok)); then break; fi
  kill -KILL "$ETCD_PID" 2>/dev/null || true
  if grep -q 'address already in use' "$DIR/etcd.log" && ((attempt < 5)); then
    log "etcd port clash (attempt $attempt), retrying with other ports"
    continue
  fi
  log_tail "$DIR/etcd.log"
  die "etcd did not become healthy on 127.0.0.1:$ETCD_CLIENT_PORT"
done
STARTED+=("$ETCD_PID")
log "etcd up (pid $ETCD_PID, client :$ETCD_CLIENT_PORT, peer :$ETCD_PEER_PORT)"

# --- credentials ------------------------------------------------------------------------
TOKEN=$(openssl rand -hex 32)
(umask 077
  echo "$TOKEN,admin,admin-uid,system:masters" >"$DATA/tokens.csv"
  echo "$TOKEN" >"$DIR/token"
  openssl genrsa -out "$DATA/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DATA/sa.key" -pubout -out "$DATA/sa.pub" 2>/dev/null)

# --- kube-apiserver ---------------------------------------------------------------------
APISERVER_PID=
deadline_fail() {
  log_tail "$DIR/kube-apiserver.log"
  die "$1"
}
for attempt in 1 2 3 4 5; do
  ((PORT_FIXED)) || API_PORT=$(free_port)
  APISERVER_PID=$(launch kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$API_PORT" \
    --insecure-port=0 \
    --cert-dir="$DATA/certs" \
    --service-cluster-ip-range=10.0.0.0/16 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$DATA/sa.pub" \
    --service-account-signing-key-file="$DATA/sa.key" \
    --token-auth-file="$DATA/tokens.csv" \
    --authorization-mode=RBAC \
    --allow-privileged=true \
    --endpoint-reconciler-type=none)
  STARTED+=("$APISERVER_PID")
  started_at=$SECONDS
  ready=0
  while ((SECONDS - started_at < READY_TIMEOUT)); do
    if ! alive "$APISERVER_PID"; then break; fi
    if [[ $(curl -ks --max-time 3 -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/readyz" 2>/dev/null) == ok ]]; then
      ready=1; break
    fi
    sleep 0.5
  done
  if ((ready)); then break; fi
  if alive "$APISERVER_PID"; then
    deadline_fail "kube-apiserver not ready on https://127.0.0.1:$API_PORT/readyz after ${READY_TIMEOUT}s"
  fi
  if ((!PORT_FIXED && attempt < 5)) && grep -q 'address already in use' "$DIR/kube-apiserver.log"; then
    log "API server port clash (attempt $attempt), retrying with another port"
    continue
  fi
  deadline_fail "kube-apiserver exited before it was ready"
done
log "kube-apiserver ready (pid $APISERVER_PID, https://127.0.0.1:$API_PORT) after $((SECONDS - started_at))s"

# --- kubeconfig -------------------------------------------------------------------------
CA_DATA=$(base64 -w0 <"$DATA/certs/apiserver.crt")
(umask 077
  cat >"$DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: concord-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $CA_DATA
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: concord-test
  context:
    cluster: concord-test
    user: admin
current-context: concord-test
KUBECONFIG
)

{
  echo "$ETCD_PID etcd"
  echo "$APISERVER_PID kube-apiserver"
} >"$DIR/pids"

# --- kube-controller-manager (optional: garbage collection, namespace deletion, SAs) ------
KCM_PID=
if ((WITH_KCM)); then
  # --port=0/--secure-port=0: no serving at all, so several clusters never clash on 10252/10257.
  KCM_PID=$(launch kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$DIR/kubeconfig" \
    --service-account-private-key-file="$DATA/sa.key" \
    --root-ca-file="$DATA/certs/apiserver.crt" \
    --leader-elect=false \
    --port=0 \
    --secure-port=0)
  STARTED+=("$KCM_PID")
  echo "$KCM_PID kube-controller-manager" >>"$DIR/pids"
  # Ready enough once its service-account controller has created default/default.
  started_at=$SECONDS
  ready=0
  while ((SECONDS - started_at < READY_TIMEOUT)); do
    alive "$KCM_PID" || break
    if curl -kfs --max-time 3 -o /dev/null -H "Authorization: Bearer $TOKEN" \
      "https://127.0.0.1:$API_PORT/api/v1/namespaces/default/serviceaccounts/default"; then
      ready=1; break
    fi
    sleep 0.5
  done
  if ((!ready)); then
    log_tail "$DIR/kube-controller-manager.log"
    die "kube-controller-manager did not create the default ServiceAccount within ${READY_TIMEOUT}s"
  fi
  log "kube-controller-manager running (pid $KCM_PID) after $((SECONDS - started_at))s"
fi

cat >"$DIR/cluster.env" <<ENV
KUBE_PORT=$API_PORT
KUBE_SERVER=https://127.0.0.1:$API_PORT
KUBE_TOKEN=$TOKEN
KUBECONFIG=$DIR/kubeconfig
ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
ETCD_PID=$ETCD_PID
APISERVER_PID=$APISERVER_PID
CONTROLLER_MANAGER_PID=$KCM_PID
ENV
chmod 600 "$DIR/cluster.env"

echo "$DIR/kubeconfig"
