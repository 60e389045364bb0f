#!/usr/bin/env bash
# Benchmarks. Each prints one JSON object per line with at least workload, rows and seconds.
#
#   scripts/bench.sh tutorial the tutorial's master script: the 1.21 M-row generation in the
#                             session, then its append! and count (targets: generation under
#                             1 s, whole script under 3 s)
#   scripts/bench.sh ingest   the tutorial's 1.21 M-row K-line table appended to a fresh
#                             2-data-node cluster (one transaction, then 10,000-row batches),
#                             then each process's peak RSS.
#   scripts/bench.sh master   the master's write overhead of replication: the K-line ingest
#                             and a 10 s stream of 10-row transactions from 4 clients, with
#                             replication off, on with async persistence, on with sync
#                             persistence, and on with sync persistence while a slave pulls
#                             every task and its data (targets: async costs under 10 %, sync
#                             under 25 %, the stream at least 4,000 tx/s with replication on).
#   scripts/bench.sh replication  replication lag between a master (copy of cfg/master on
#                             ports 18848-18850, async persistence) and a slave (copy of
#                             cfg/slave on 19848-19850): (a) the tutorial's 1.21 M-row append,
#                             from the master's commit to the slave's count matching, median of
#                             3 (target under 1.5 s); (b) a 10 s stream of 10-row transactions
#                             from 4 clients: lag per task from master commit to slave commit,
#                             p50/p99/max (targets p50 under 5 ms, p99 under 15 ms), and the
#                             catch-up time after the stream stops; (c) catch-up: with the
#                             slave stopped the master commits 20,000 10-row transactions
#                             (XREPL_BENCH_TASKS), then the slave starts: tasks/s until equal
#                             (target at least 5,000).
#   scripts/bench.sh api      the tutorial's 1.21 M-row append through DolphinDB's Python client
#                             (`tableInsert{loadTable(...)}` with a pandas DataFrame) next to
#                             the same append from the console, and the rows read back into a
#                             DataFrame, 3 rounds (scripts/bench_api.py; the client is installed
#                             by scripts/python-env.sh).
#   scripts/bench.sh replication-scale  the same catch-up (10,000 tasks) with one, two and three
#                             slave data nodes, each on a fresh master and slave.
#
# The cluster runs from a copy of cfg/master (replication off) on ports 18848-18850 in a
# temporary folder that is removed afterwards.
#
# With XREPL_BENCH_TLS=1 every cluster runs with enableTLS=true (a slave also with
# enableClusterReplicationSSL=true), with a test CA made by scripts/gen-certs.sh, and the
# benchmark client connects over TLS: `XREPL_BENCH_TLS=1 ../shared/bench/compare.py all`
# measures what TLS costs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { echo "usage: $0 ingest|tutorial|api|master|replication|replication-scale|memory" >&2; exit 2; }
what=$1

cargo build --release --bins --quiet
# Where cargo put them: $CARGO_TARGET_DIR (relative to the checkout) or target/.
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
export XREPL_BIN_DIR=$target/release

certs=""
if [ "${XREPL_BENCH_TLS:-0}" = 1 ]; then
  certs=$root/target/bench-certs   # kept, like target/demo-tls: no key is left in /tmp
  scripts/gen-certs.sh "$certs" >&2
  export XREPL_TLS_CA=$certs/ca.pem
fi
# Turns TLS on in the cluster copied into $1 when XREPL_BENCH_TLS=1; `slave` as $2 adds
# enableClusterReplicationSSL=true.
tls_cfg() {
  [ -n "$certs" ] || return 0
  local lines="enableTLS=true
tlsCertFile=$certs/node.pem
tlsKeyFile=$certs/node.key
tlsCAFile=$certs/ca.pem"
  [ "${2:-}" = slave ] && lines="$lines
enableClusterReplicationSSL=true"
  printf '\n%s\n' "$lines" | tee -a "$1/controller.cfg" >>"$1/cluster.cfg"
}

# A master (copy of cfg/master, ports 1884x) and a slave (copy of cfg/slave, ports 1984x) with
# `$1` data nodes (default 2), in $m and $s.
start_pair() {
  local nodes=${1:-2}
  m=$(mktemp -d)
  s=$(mktemp -d)
  cp cfg/master/controller.cfg cfg/master/cluster.nodes cfg/master/cluster.cfg "$m"/
  sed -i 's/:88\([0-9][0-9]\)/:188\1/g' "$m"/cluster.nodes "$m"/controller.cfg
  cp cfg/slave/controller.cfg cfg/slave/cluster.nodes cfg/slave/cluster.cfg "$s"/
  sed -i 's/:98\([0-9][0-9]\)/:198\1/g; s/:88\([0-9][0-9]\)/:188\1/g' "$s"/cluster.nodes "$s"/controller.cfg
  case $nodes in
    1) sed -i '/:dnode2,/d' "$s"/cluster.nodes ;;
    3) echo "127.0.0.1:19851:dnode3,datanode" >> "$s"/cluster.nodes ;;
  esac
  tls_cfg "$m"
  tls_cfg "$s" slave
  scripts/cluster.sh start "$m" >&2
  scripts/cluster.sh start "$s" >&2
}
stop_pair() {
  scripts/cluster.sh stop "$s" >/dev/null 2>&1 || true
  scripts/cluster.sh stop "$m" >/dev/null 2>&1 || true
  rm -rf "$m" "$s"
}

if [ "$what" = replication ]; then
  start_pair 2
  trap stop_pair EXIT
  "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 replication --slave 127.0.0.1:19849 \
    --hosts 127.0.0.1:18849,127.0.0.1:18850 --seconds "${XREPL_BENCH_SECONDS:-10}"
  # Also on stderr, so that it shows when compare.py reads stdout (it does not read this one).
  "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 catch-up --slave 127.0.0.1:19849 \
    --hosts 127.0.0.1:18849,127.0.0.1:18850 --tasks "${XREPL_BENCH_TASKS:-20000}" | tee /dev/stderr
  exit 0
fi

if [ "$what" = replication-scale ]; then
  for n in 1 2 3; do
    start_pair "$n"
    trap stop_pair EXIT
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 catch-up --slave 127.0.0.1:19849 \
      --hosts 127.0.0.1:18849,127.0.0.1:18850 --tasks "${XREPL_BENCH_TASKS:-10000}" \
      --label "slave_nodes_$n" || true
    stop_pair
    trap - EXIT
  done
  exit 0
fi

if [ "$what" = memory ]; then
  "$XREPL_BIN_DIR/meta-memory" --tasks "${XREPL_BENCH_TASKS:-1000000}"
  d=$(mktemp -d)
  trap 'scripts/cluster.sh stop "$d" >/dev/null 2>&1 || true; rm -rf "$d"' EXIT
  cp cfg/master/controller.cfg cfg/master/cluster.nodes cfg/master/cluster.cfg "$d"/
  sed -i 's/:88\([0-9][0-9]\)/:188\1/g' "$d"/cluster.nodes "$d"/controller.cfg
  sed -i '/^clusterReplication/d' "$d"/cluster.cfg
  printf 'clusterReplicationMode=master\nclusterReplicationSyncPersistence=false\n' >> "$d"/cluster.cfg
  tls_cfg "$d"
  scripts/cluster.sh start "$d" >&2
  "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 memory --pid-file "$d/data/run/controller1.pid" \
    --pull 127.0.0.1:18848 --hosts 127.0.0.1:18849,127.0.0.1:18850 --seconds "${XREPL_BENCH_SECONDS:-60}"
  exit 0
fi

if [ "$what" = master ]; then
  # One fresh cluster per configuration: name, cluster.cfg lines, xrepl-bench flags.
  run_config() {
    local label=$1 cfg=$2 flags=$3
    local d
    d=$(mktemp -d)
    cp cfg/master/controller.cfg cfg/master/cluster.nodes cfg/master/cluster.cfg "$d"/
    sed -i 's/:88\([0-9][0-9]\)/:188\1/g' "$d"/cluster.nodes "$d"/controller.cfg
    sed -i '/^clusterReplication/d' "$d"/cluster.cfg
    printf '%b' "$cfg" >> "$d"/cluster.cfg
    tls_cfg "$d"
    scripts/cluster.sh start "$d" >&2
    # shellcheck disable=SC2086
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 master --label "$label" \
      --hosts 127.0.0.1:18849,127.0.0.1:18850 --seconds "${XREPL_BENCH_SECONDS:-10}" $flags || true
    scripts/cluster.sh stop "$d" >/dev/null 2>&1 || true
    rm -rf "$d"
  }
  run_config off "" ""
  run_config async "clusterReplicationMode=master\nclusterReplicationSyncPersistence=false\n" "--replicate"
  run_config sync "clusterReplicationMode=master\nclusterReplicationSyncPersistence=true\n" "--replicate"
  run_config sync_pulling "clusterReplicationMode=master\nclusterReplicationSyncPersistence=true\n" "--replicate --pull 127.0.0.1:18848"
  exit 0
fi
dir=$(mktemp -d)
cleanup() { scripts/cluster.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
cp cfg/master/controller.cfg cfg/master/cluster.nodes cfg/master/cluster.cfg "$dir"/
sed -i 's/:88\([0-9][0-9]\)/:188\1/g' "$dir"/cluster.nodes "$dir"/controller.cfg
sed -i '/^clusterReplication/d' "$dir"/cluster.cfg
tls_cfg "$dir"
scripts/cluster.sh start "$dir" >&2

case "$what" in
  ingest)
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 ingest
    ;;
  tutorial)
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 tutorial
    ;;
  api)
    scripts/python-env.sh
    "$target/pyenv/bin/python" scripts/bench_api.py 127.0.0.1:18849 "$XREPL_BIN_DIR/xrepl" "${XREPL_BENCH_ROUNDS:-3}"
    ;;
  *) echo "unknown benchmark: $what" >&2; exit 2 ;;
esac

# Peak resident memory of each process (VmHWM), in MB.
rss=""
for pidfile in "$dir"/data/run/*.pid; do
  alias=$(basename "$pidfile" .pid)
  kb=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$pidfile")/status" 2>/dev/null || echo 0)
  rss="$rss\"${alias}_peak_rss_mb\": $((kb / 1024)), "
done
echo "{\"workload\": \"${what}_peak_rss\", \"rows\": 0, \"seconds\": 0, ${rss%, }}"
