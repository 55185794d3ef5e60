#!/usr/bin/env bash
# Stop the cluster that scripts/kube/start.sh started in DIR and remove its data.
#
#   scripts/kube/stop.sh DIR
#
# Sends TERM to every process in DIR/pids, KILL to any still alive after a grace period
# (CONCORD_KUBE_STOP_GRACE seconds, default 5), then removes DIR/data and the files that
# describe the running cluster (pids, kubeconfig, token, cluster.env). Logs stay.
# Safe to run twice, or on a DIR where start.sh failed.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
GRACE=${CONCORD_KUBE_STOP_GRACE:-5}
[[ -d $DIR ]] || { echo "kube stop: $DIR does not exist; nothing to do" >&2; exit 0; }

# Alive = exists and is not a zombie (an orphan's zombie lingers if PID 1 does not reap).
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

pids=()
if [[ -f $DIR/pids ]]; then
  while read -r pid name; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    alive "$pid" || continue
    # Guard against a reused pid: only signal a process whose command line names the daemon.
    if [[ -n ${name:-} ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"; then
      echo "kube stop: pid $pid is no longer $name; leaving it alone" >&2
      continue
    fi
    pids+=("$pid")
  done <"$DIR/pids"
fi

if ((${#pids[@]})); then
  # Controller manager and API server before etcd (reverse start order): fewer error lines.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  end=$((SECONDS + GRACE))
  while ((SECONDS < end)); do
    any_alive=0
    for pid in "${pids[@]}"; do alive "$pid" && any_alive=1; done
    ((any_alive)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      echo "kube stop: pid $pid ignored TERM for ${GRACE}s; sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 25); do alive "$pid" || break; sleep 0.2; done
    fi
  done
fi

rm -rf "$DIR/data"
rm -f "$DIR/pids" "$DIR/kubeconfig" "$DIR/token" "$DIR/cluster.env"
echo "kube stop: stopped ${#pids[@]} process(es) in $DIR" >&2
