#!/usr/bin/env bash
# Benchmarks. Each prints one JSON object per line with at least workload, rows and seconds.
#
#   scripts/bench.sh tutorial the tutorial's master script: the 1.21 M-row generation in the
#                             session, then its append! and count (targets: generation under
#                             1 s, whole script under 3 s)
#   scripts/bench.sh ingest   the tutorial's 1.21 M-row K-line table appended to a fresh
#                             2-data-node cluster (one transaction, then 10,000-row batches),
#                             then each process's peak RSS.
#
# The cluster runs from a copy of cfg/master (replication off) on ports 18848-18850 in a
# temporary folder that is removed afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { echo "usage: $0 ingest|tutorial" >&2; exit 2; }
what=$1

cargo build --release --bins --quiet
export XREPL_BIN_DIR=$root/target/release
dir=$(mktemp -d)
cleanup() { scripts/cluster.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
cp cfg/master/controller.cfg cfg/master/cluster.nodes cfg/master/cluster.cfg "$dir"/
sed -i 's/:88\([0-9][0-9]\)/:188\1/g' "$dir"/cluster.nodes "$dir"/controller.cfg
sed -i '/^clusterReplication/d' "$dir"/cluster.cfg
scripts/cluster.sh start "$dir" >&2

case "$what" in
  ingest)
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 ingest
    ;;
  tutorial)
    "$XREPL_BIN_DIR/xrepl-bench" --host 127.0.0.1:18849 tutorial
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
