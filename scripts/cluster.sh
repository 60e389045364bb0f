#!/usr/bin/env bash
# Start, stop or show a cluster described by a config folder (controller.cfg, cluster.nodes,
# cluster.cfg), e.g. cfg/master.
#
#   scripts/cluster.sh start  DIR   start the controller and every data node, wait until all are up
#   scripts/cluster.sh stop   DIR   stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status DIR   each node's process and state
#
# Pid files and logs live under DIR/data/run/ (DIR/data is ignored by git). `start` makes the
# cluster key DIR/cluster.key (32 random bytes, mode 0600) when it is missing and no config file
# names another with clusterKeyFile.
# Nodes refuse to start when their key files or data folders are open to others (see
# docs/operations.md#secrets-at-rest): everything this script makes is private (umask 077), and
# `start` takes group and other access away from DIR/cluster.key and DIR/data, which it owns,
# saying so when it changed something.
# Binaries come from $XREPL_BIN_DIR, else $CARGO_TARGET_DIR/release or target/release, else
# the debug folder beside it.
# The readiness check logs in as $XREPL_USER/$XREPL_PASSWORD (default admin/123456). On a
# cluster with enableTLS=true in controller.cfg it trusts the tlsCAFile named there, unless
# $XREPL_TLS_CA names another CA file.
set -euo pipefail
umask 077

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(cd "$2" 2>/dev/null && pwd) || { echo "error: no such folder: $2" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
if [ -n "${XREPL_BIN_DIR:-}" ]; then bin=$XREPL_BIN_DIR
elif [ -x "$target/release/controller" ]; then bin=$target/release
else bin=$target/debug; fi
user=${XREPL_USER:-admin}
password=${XREPL_PASSWORD:-123456}
run=$dir/data/run
nodes_file=$dir/cluster.nodes
[ -f "$nodes_file" ] || { echo "error: $nodes_file is missing" >&2; exit 2; }

# "alias site mode" for every node line of cluster.nodes, the controller first.
nodes() {
  grep -v '^[[:space:]]*#' "$nodes_file" | grep -v '^[[:space:]]*$' | tail -n +2 |
    awk -F'[,:]' '{gsub(/[[:space:]]/, ""); print $3, $1":"$2, $4}' | sort -k3,3 -s
}

# The value of KEY in FILE (the last line that sets it), or nothing.
cfg_value() {
  grep -s "^[[:space:]]*$1[[:space:]]*=" "$2" | tail -n 1 | cut -d= -f2- | tr -d '[:space:]' || true
}

# A TLS cluster: the console trusts its CA (paths in the config files are relative to DIR).
if [ -z "${XREPL_TLS_CA:-}" ] && [ "$(cfg_value enableTLS "$dir/controller.cfg" | tr 'A-Z' 'a-z')" = true ]; then
  ca=$(cfg_value tlsCAFile "$dir/controller.cfg")
  [ -n "$ca" ] || { echo "error: $dir/controller.cfg sets enableTLS=true but no tlsCAFile" >&2; exit 2; }
  case "$ca" in /*) ;; *) ca=$dir/$ca ;; esac
  export XREPL_TLS_CA=$ca
fi

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

first_datanode() { nodes | awk '$3=="datanode" {print $2; exit}'; }

perf_json() {
  "$bin/xrepl" --host "$1" --user "$user" --password "$password" --format json -c 'getClusterPerf()' 2>/dev/null
}

start() {
  for b in controller datanode xrepl; do
    [ -x "$bin/$b" ] || { echo "error: $bin/$b not found; build with: cargo build --release --bins" >&2; exit 2; }
  done
  mkdir -p "$run"
  # Every node of the cluster proves to the others that it holds the same key: make one when
  # the folder has none and no config file names another (clusterKeyFile).
  if ! grep -qs '^[[:space:]]*\([A-Za-z0-9_]*\.\)\?clusterKeyFile[[:space:]]*=' "$dir/controller.cfg" "$dir/cluster.cfg" &&
     [ ! -e "$dir/cluster.key" ]; then
    head -c 32 /dev/urandom >"$dir/cluster.key"
    echo "made the cluster key $dir/cluster.key (32 random bytes, mode 0600); every node of this cluster reads it"
  fi
  # A key or data folder made before nodes checked their modes (or copied with cp) may be open
  # to others; the nodes would refuse to start.
  for p in "$dir/cluster.key" "$dir/data"; do
    if [ -e "$p" ] && [ -n "$(find "$p" ! -type l -perm /077 -print -quit)" ]; then
      chmod -R go-rwx "$p"
      echo "made $p private (chmod -R go-rwx): nodes refuse keys and data others can read"
    fi
  done
  # glibc gives each thread that allocates its own arena and keeps what is freed there: a
  # bulk append decoded on one thread and encoded on another held both in memory (330 MB
  # peak for 75 MB of rows, 270 MB with two arenas). See docs/operations.md.
  export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
  while read -r alias site mode; do
    if alive "$alias"; then echo "$alias is running already (pid $(cat "$run/$alias.pid"))"; continue; fi
    if [ "$mode" = controller ]; then
      "$bin/controller" --cfg-dir "$dir" >>"$run/$alias.log" 2>&1 &
    else
      "$bin/datanode" --cfg-dir "$dir" --alias "$alias" >>"$run/$alias.log" 2>&1 &
    fi
    echo $! >"$run/$alias.pid"
    echo "started $mode $alias on $site (pid $!, log $run/$alias.log)"
  done < <(nodes)

  local total host deadline
  total=$(nodes | wc -l)
  host=$(first_datanode)
  deadline=$((SECONDS + ${XREPL_START_TIMEOUT:-30}))
  while :; do
    while read -r alias _ _; do
      if ! alive "$alias"; then
        echo "error: $alias exited during start; the end of its log:" >&2
        tail -n 5 "$run/$alias.log" >&2
        exit 1
      fi
    done < <(nodes)
    up=$(perf_json "$host" | grep -o '"state":"up"' | wc -l || true)
    if [ "$up" -eq "$total" ]; then echo "cluster $dir: all $total nodes up"; return 0; fi
    if [ $SECONDS -ge $deadline ]; then
      echo "error: only $up of $total nodes up after ${XREPL_START_TIMEOUT:-30} s (logs in $run)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

stop() {
  local pids=()
  while read -r alias _ _; do
    if alive "$alias"; then
      pid=$(cat "$run/$alias.pid")
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$alias:$pid")
    fi
  done < <(nodes | sort -k3,3 -s -r)   # data nodes first, the controller last
  for entry in "${pids[@]+"${pids[@]}"}"; do
    alias=${entry%%:*}; pid=${entry##*:}
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; echo "killed $alias (pid $pid)"
    else echo "stopped $alias (pid $pid)"; fi
    rm -f "$run/$alias.pid"
  done
  [ ${#pids[@]} -gt 0 ] || echo "cluster $dir: nothing running"
}

status() {
  printf '%-14s %-22s %-10s %-10s %s\n' alias site mode process state
  json=$(perf_json "$(first_datanode)" || true)
  while read -r alias site mode; do
    if alive "$alias"; then proc="pid $(cat "$run/$alias.pid")"; else proc=-; fi
    state=$(printf '%s' "$json" | tr '}' '\n' | grep "\"name\":\"$alias\"" | grep -o '"state":"[a-z]*"' | cut -d'"' -f4 || true)
    printf '%-14s %-22s %-10s %-10s %s\n' "$alias" "$site" "$mode" "$proc" "${state:-unknown}"
  done < <(nodes)
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
