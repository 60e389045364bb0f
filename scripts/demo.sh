#!/usr/bin/env bash
# The master -> slave demo: builds in release mode, starts cfg/master and cfg/slave on
# 127.0.0.1, runs the user's tutorial (shared/seeds/dolphindb-async-replication-tutorial.md)
# on the master, waits until the slave has caught up, counts the slave's rows, calls every
# replication status function on both sides, and stops both clusters.
#
#   scripts/demo.sh         in plain text
#   scripts/demo.sh --tls   with TLS on both clusters and between them: makes a test CA and a
#                           node certificate (scripts/gen-certs.sh target/demo-tls/certs) and
#                           copies of cfg/master and cfg/slave with enableTLS=true (the slave
#                           also with enableClusterReplicationSSL=true) under target/demo-tls
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "${1:-}" in
  "") tls="" ;;
  --tls) tls=yes ;;
  *) echo "usage: $0 [--tls]" >&2; exit 2 ;;
esac

echo "== building (release)"
cargo build --release --bins --quiet
# Where cargo put them: $CARGO_TARGET_DIR (relative to the checkout) or target/.
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
export XREPL_BIN_DIR=$target/release
xrepl=$XREPL_BIN_DIR/xrepl

master=cfg/master
slave=cfg/slave
if [ -n "$tls" ]; then
  demo=target/demo-tls
  echo "== TLS: a test CA and a node certificate in $demo/certs"
  scripts/gen-certs.sh "$demo/certs"
  for side in master slave; do
    mkdir -p "$demo/$side"
    cp "cfg/$side/controller.cfg" "cfg/$side/cluster.cfg" "cfg/$side/cluster.nodes" "$demo/$side/"
    lines="enableTLS=true
tlsCertFile=../certs/node.pem
tlsKeyFile=../certs/node.key
tlsCAFile=../certs/ca.pem"
    [ "$side" = slave ] && lines="$lines
enableClusterReplicationSSL=true"
    printf '\n# TLS (scripts/demo.sh --tls)\n%s\n' "$lines" | tee -a "$demo/$side/controller.cfg" >>"$demo/$side/cluster.cfg"
  done
  master=$demo/master
  slave=$demo/slave
  # Every console below, and scripts/cluster.sh, trusts the test CA.
  export XREPL_TLS_CA=$root/$demo/certs/ca.pem
fi

cleanup() {
  scripts/cluster.sh stop "$slave" >/dev/null 2>&1 || true
  scripts/cluster.sh stop "$master" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== starting the master cluster ($master)"
scripts/cluster.sh start "$master"
echo "== starting the slave cluster ($slave)"
scripts/cluster.sh start "$slave"

if [ -n "$tls" ]; then
  echo
  echo "== a console in plain text is refused by a TLS cluster (expected)"
  env -u XREPL_TLS_CA "$xrepl" --host 127.0.0.1:8849 -c '1 + 1' || true
fi
echo
echo "== master: getClusterPerf() on dnode1 (127.0.0.1:8849)"
"$xrepl" --host 127.0.0.1:8849 -c 'login("admin", "123456")
getClusterPerf()'
echo
echo "== slave: rpc(getControllerAlias(), getClusterPerf) on dnode1 (127.0.0.1:9849)"
"$xrepl" --host 127.0.0.1:9849 -c 'login("admin", "123456")
rpc(getControllerAlias(), getClusterPerf)'
echo
echo "== master: the tutorial's statements (tests/scripts/tutorial_master.dos, with its"
echo "   setDatabaseForClusterReplication(db, true) right after the database is created)"
tutorial=$(mktemp)
sed 's|^db = database(dbName, VALUE, 2023.01.01..2023.12.31)$|&\
setDatabaseForClusterReplication(db, true)\
schema(db).clusterReplicationEnabled|' tests/scripts/tutorial_master.dos > "$tutorial"
start_ns=$(date +%s%N)
"$xrepl" --host 127.0.0.1:8849 "$tutorial"
rm -f "$tutorial"

echo
echo "== slave: waiting until it has caught up"
# The master's last task id (3 on fresh clusters; a second run of the demo on the same data
# folders adds a DROP_DB and three more): every task up to it finished on the slave.
last=$("$xrepl" --host 127.0.0.1:8849 --user admin --password 123456 --format json -c \
  'rpc(getControllerAlias(), getMasterReplicationStatus)' 2>/dev/null \
  | grep -o '"taskId":[0-9]*' | cut -d: -f2 | sort -n | tail -n 1 || true)
last=${last:-3}
caught=""
for _ in $(seq 1 600); do
  out=$("$xrepl" --host 127.0.0.1:9849 --user admin --password 123456 --format json -c \
    'rpc(getControllerAlias(), getClusterReplicationMetrics, -1)' 2>/dev/null || true)
  case "$out" in *"\"finishedTasks\":$last,"*'"unfinishedTasks":0'*) caught=yes; break ;; esac
  sleep 0.1
done
if [ -n "$caught" ]; then
  echo "caught up with task $last $(( ($(date +%s%N) - start_ns) / 1000000 )) ms after the master's script began"
else
  echo "error: the slave has not finished task $last after 60 s; its metrics: $out" >&2
  exit 1
fi

echo
echo "== slave: the tutorial's check on dnode1 (127.0.0.1:9849)"
"$xrepl" --host 127.0.0.1:9849 --user admin --password 123456 -c '
select count(*) from loadTable("dfs://testDB", "testTB")
loadTable("dfs://testDB", "testTB")'

echo
echo "== master: the send queue and the slaves (rpc(getControllerAlias(), ...) from dnode1)"
"$xrepl" --host 127.0.0.1:8849 --user admin --password 123456 -c '
getDatabaseClusterReplicationStatus()
rpc(getControllerAlias(), getMasterReplicationStatus)
rpc(getControllerAlias(), getRecentSlaveReplicationInfo)
rpc(getControllerAlias(), getMasterReplicationInfo)
rpc(getControllerAlias(), getMasterReplicationSlaveLag)'

echo
echo "== slave: the execution queue, its queues, the metrics, and a data node's workers"
"$xrepl" --host 127.0.0.1:9849 --user admin --password 123456 -c '
rpc(getControllerAlias(), getSlaveReplicationStatus)
rpc(getControllerAlias(), getSlaveReplicationQueueStatus)
rpc(getControllerAlias(), getClusterReplicationMetrics, 30)
rpc(getControllerAlias(), getClusterReplicationMetrics, -1)
rpc(getControllerAlias(), getClusterReplicationLag)
getSlaveReplicationExecutionStatus()'

echo
echo "== slave: Prometheus metrics (GET /metrics on the controller's port); the status page is http://127.0.0.1:9848/"
if command -v curl >/dev/null 2>&1; then
  curl -sS -u admin:123456 http://127.0.0.1:9848/metrics | grep -E '^xrepl_replication_(lag|state|tasks)' || true
fi

echo
echo "== slave: a write into the replicated database is refused (expected)"
# bob may read and write the database (the user may exist from an earlier run).
for stmt in 'createUser("bob", "123456", false)' 'grant("bob", DB_READ, "dfs://testDB")' \
            'grant("bob", DB_WRITE, "dfs://testDB")'; do
  "$xrepl" --host 127.0.0.1:9849 --user admin --password 123456 -c "$stmt" >/dev/null 2>&1 || true
done
"$xrepl" --host 127.0.0.1:9849 --user bob --password 123456 -c \
  'delete from loadTable("dfs://testDB", "testTB") where Volume > 150' || true

echo
echo "== stopping both clusters"
cleanup
trap - EXIT
echo "demo finished"
