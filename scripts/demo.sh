#!/usr/bin/env bash
# The master -> slave demo: builds in release mode, starts cfg/master and cfg/slave on
# 127.0.0.1, shows each cluster's nodes through the console, and stops both.
# (The replication steps join as the replication issues land.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== building (release)"
cargo build --release --bins --quiet
export XREPL_BIN_DIR=$root/target/release
xrepl=$XREPL_BIN_DIR/xrepl

cleanup() {
  scripts/cluster.sh stop cfg/slave >/dev/null 2>&1 || true
  scripts/cluster.sh stop cfg/master >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== starting the master cluster (cfg/master)"
scripts/cluster.sh start cfg/master
echo "== starting the slave cluster (cfg/slave)"
scripts/cluster.sh start cfg/slave

echo
echo "== master: getClusterPerf() on dnode1 (127.0.0.1:8849)"
"$xrepl" --host 127.0.0.1:8849 -c 'login("admin", "123456")
getClusterPerf()'
echo
echo "== slave: rpc(getControllerAlias(), getClusterPerf) on dnode1 (127.0.0.1:9849)"
"$xrepl" --host 127.0.0.1:9849 -c 'login("admin", "123456")
rpc(getControllerAlias(), getClusterPerf)'
echo
echo "== master: a replicated database, a partitioned table, one transaction of 1,000 rows, a query"
"$xrepl" --host 127.0.0.1:8849 --user admin --password 123456 -c '
dbName = "dfs://demoDB"
if (existsDatabase(dbName)) { dropDatabase(dbName) }
db = database(dbName, VALUE, 2023.01.01..2023.01.31)
setDatabaseForClusterReplication(db, true)
schema(db).clusterReplicationEnabled
db.createPartitionedTable(table(1:0, `id`day`price, [INT, DATE, DOUBLE]), "trades", `day)
id = 0..999
day = 2023.01.01 + id % 31
price = 10 + id * 0.01
loadTable(dbName, "trades").append!(table(id, day, price))
select count(*), sum(price) from loadTable(dbName, "trades")
select count(*) from loadTable(dbName, "trades") where day between 2023.01.01:2023.01.03 group by day
schema(loadTable(dbName, "trades")).chunks'

echo
echo "== master: the send queue (every task waits for a slave; the slave side comes with issue 6)"
"$xrepl" --host 127.0.0.1:8849 --user admin --password 123456 -c '
getDatabaseClusterReplicationStatus()
rpc(getControllerAlias(), getMasterReplicationStatus)
rpc(getControllerAlias(), getRecentSlaveReplicationInfo)'

echo
echo "== slave: getMasterReplicationStatus() on a slave data node (expected to be refused)"
"$xrepl" --host 127.0.0.1:9849 --user admin --password 123456 -c 'getMasterReplicationStatus()' || true

echo
echo "== stopping both clusters"
cleanup
trap - EXIT
echo "demo finished"
