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
#   scripts/bench.sh bootstrap  the initial copy of data that exists before replication: for
#                             each size (XREPL_BENCH_BOOTSTRAP_ROWS, default 1210000,12100000;
#                             1210000 alone for a quick run) a fresh master and slave as for
#                             `replication`; the tutorial's K-line rows loaded on the master with
#                             replication off (its day 2023.01.08, then the same rows on the days
#                             after it: 1.21 M rows and one chunk a day; load_s is the appends,
#                             not timed); then the clock from setDatabaseForClusterReplication(db,
#                             true) on the master until the slave has finished every task (the
#                             CREATE_DOMAIN and one SNAPSHOT_CHUNK per chunk; its status polled
#                             every 50 ms through one session) and counts every row. Then, not
#                             timed, checkClusterReplicationConsistency on the slave must find
#                             every partition equal. Also each process's peak RSS during the
#                             bootstrap, and where the time went (the task times) on stderr.
#                             Then PostgreSQL 15's initial table sync of the same sizes
#                             (scripts/bench_bootstrap_pg.py, after the xrepl runs) and
#                             bootstrap_vs_pg: per size xrepl s, PG s and PG s / xrepl s (above
#                             1: xrepl is faster), also as a table on stderr.
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
[ $# -ge 1 ] || { echo "usage: $0 ingest|tutorial|api|master|replication|replication-scale|bootstrap|memory" >&2; exit 2; }
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

if [ "$what" = bootstrap ]; then
  # The measurement talks through DolphinDB's Python client: one session to the master and one
  # to the slave, so that the polls do not log in each time (a console per poll would: about
  # 50 ms of argon2 on the slave controller). xrepl serves that client in plain text only.
  if [ -n "$certs" ]; then
    echo "bootstrap: not with XREPL_BENCH_TLS=1 (it polls through DolphinDB's Python client, which xrepl serves in plain text only)" >&2
    exit 2
  fi
  sizes=${XREPL_BENCH_BOOTSTRAP_ROWS:-1210000,12100000}
  sizes=${sizes//_/}
  for n in ${sizes//,/ }; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bootstrap: bad size '$n' in XREPL_BENCH_BOOTSTRAP_ROWS" >&2; exit 2; }
  done
  scripts/python-env.sh
  py=$target/pyenv/bin/python
  day=1210000   # rows of the tutorial's day: 5,000 securities x 242 minutes
  results=$(mktemp)
  m="" s=""
  # On a failure, the end of every log before the clusters and their folders go.
  bootstrap_cleanup() {
    local rc=$? f
    if [ -n "$m" ]; then
      if [ "$rc" -ne 0 ]; then
        for f in "$m"/data/run/*.log "$s"/data/run/*.log; do
          [ -f "$f" ] || continue
          echo "--- the end of the $([[ $f == "$s"/* ]] && echo slave || echo master)'s $(basename "$f")" >&2
          tail -n 20 "$f" >&2
        done
      fi
      stop_pair
    fi
    rm -f "$results"
  }
  trap bootstrap_cleanup EXIT

  # The console script that creates the tutorial's database and table and appends $1 rows: the
  # tutorial's day (generated once), then the same rows on the following days, one append (one
  # chunk) a day; the last day may be partial. Its last output: the appends' milliseconds.
  load_script() {
    local left=$1 d=0 k
    cat <<'DOS'
dbName = "dfs://testDB"
tbName = "testTB"
db = database(dbName, VALUE, 2023.01.01..2023.12.31)
colNames = `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount
colTypes = [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE]
db.createPartitionedTable(table=table(1:0, colNames, colTypes), tableName=tbName, partitionColumns=`DateTime)
n = 1210000
randPrice = round(10+rand(1.0, 100), 2)
randVolume = 100+rand(100, 100)
SecurityID = lpad(string(take(0..4999, 5000)), 6, `0)
PreClosePx = rand(randPrice, n)
OpenPx = rand(randPrice, n)
HighPx = rand(randPrice, n)
LowPx = rand(randPrice, n)
LastPx = rand(randPrice, n)
Volume = int(rand(randVolume, n))
Amount = round(LastPx*Volume, 2)
loadMs = 0
DOS
    while [ "$left" -gt 0 ]; do
      k=$((left < day ? left : day))
      echo "DateTime = (2023.01.08T09:30:00 + $((d * 86400)) + take(0..120, 121)*60).join(2023.01.08T13:00:00 + $((d * 86400)) + take(0..120, 121)*60)"
      echo "t = cj(table(SecurityID), table(DateTime)).join!(table(PreClosePx, OpenPx, HighPx, LowPx, LastPx, Volume, Amount))"
      if [ "$k" -lt "$day" ]; then echo "t = select * from t limit $k"; fi
      echo "t0 = now()"
      echo "loadTable(dbName, tbName).append!(t)"
      echo "loadMs = loadMs + long(now() - t0)"
      left=$((left - k))
      d=$((d + 1))
    done
    echo "loadMs"
  }

  for n in ${sizes//,/ }; do
    chunks=$(((n + day - 1) / day))
    start_pair 2
    load_script "$n" >"$m/load.dos"
    echo "[bootstrap $n] loading $chunks day(s) into the master (replication off)" >&2
    wall=$SECONDS
    load_ms=$("$XREPL_BIN_DIR/xrepl" --host 127.0.0.1:18849 --user "${XREPL_USER:-admin}" \
      --password "${XREPL_PASSWORD:-123456}" --format json "$m/load.dos" | tail -n 1)
    [[ $load_ms =~ ^[0-9]+$ ]] || { echo "bootstrap: the load printed '$load_ms', not its milliseconds" >&2; exit 1; }
    echo "[bootstrap $n] appends $load_ms ms ($((SECONDS - wall)) s with the generation)" >&2
    pids=""
    for pidfile in "$m"/data/run/*.pid "$s"/data/run/*.pid; do
      side=master
      [[ $pidfile == "$s"/* ]] && side=slave
      pids="$pids ${side}_$(basename "$pidfile" .pid)=$(cat "$pidfile")"
    done
    XREPL_BENCH_PIDS=$pids "$py" - "$n" "$chunks" "$load_ms" <<'PY' | tee -a "$results"
# One bootstrap measurement against the running master (dnode1 on 18849) and slave (dnode1 on
# 19849); see the comment at the top of scripts/bench.sh.
import json
import os
import sys
import time

import dolphindb as ddb
import pandas as pd

n, chunks, load_ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
DB, TB = "dfs://testDB", "testTB"
POLL = 0.05
TIMEOUT = float(os.environ.get("XREPL_BENCH_BOOTSTRAP_TIMEOUT", "1800"))
STATUS = "rpc(getControllerAlias(), getSlaveReplicationStatus)"
COUNT = f'select count(*) from loadTable("{DB}", "{TB}")'
pids = dict(p.split("=") for p in os.environ.get("XREPL_BENCH_PIDS", "").split())


def log(*a):
    print(f"[bootstrap {n}]", *a, file=sys.stderr, flush=True)


def fail(msg, status=None):
    log("FAILED:", msg)
    if status is not None:
        log("the slave's tasks:\n" + status.to_string())
    sys.exit(1)


def session(port):
    c = ddb.Session()
    c.connect("127.0.0.1", port, os.environ.get("XREPL_USER", "admin"),
              os.environ.get("XREPL_PASSWORD", "123456"))
    return c


def ns(ts):
    """Nanoseconds since the epoch of a controller's NANOTIMESTAMP (UTC)."""
    return pd.Timestamp(ts).value


def rss_mb():
    out = {}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
            out[f"{name}_peak_rss_mb"] = kb // 1024
        except (OSError, StopIteration):
            pass
    return out


master, slave = session(18849), session(19849)
if slave.run(f'existsDatabase("{DB}")'):
    fail(f"the slave already holds {DB}")
got = int(master.run(COUNT).iloc[0, 0])
if got != n:
    fail(f"the master holds {got} rows, not {n}")

# The slave is registered with the master and pulling: its lastPullTime moves (an idle slave's
# pull returns after clusterReplicationPullWaitMs, 1 s by default).
first, deadline = None, time.monotonic() + 30
while True:
    info = master.run("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)")
    row = info[info.connectedController == "127.0.0.1:19848"]
    if len(row):
        t = row.lastPullTime.iloc[0]
        if first is None:
            first = t
        elif t != first:
            break
    if time.monotonic() > deadline:
        fail(f"the slave is not pulling from the master: getRecentSlaveReplicationInfo =\n{info}")
    time.sleep(0.1)
before = slave.run(STATUS)
if len(before):
    fail("the slave has tasks before the bootstrap", before)

# Peak RSS from here on: 5 in clear_refs resets VmHWM (the load's peak is not the bootstrap's).
for pid in pids.values():
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass

log(f"{n} rows in {chunks} chunk(s) on the master, the slave pulling: setDatabaseForClusterReplication")
wall0 = time.time_ns()
t0 = time.perf_counter()
master.run(f'setDatabaseForClusterReplication(database("{DB}"), true)')
set_s = time.perf_counter() - t0
tick, t_done, shown, next_note = t0, None, None, t0 + 5
while True:
    tq = time.perf_counter()
    st = slave.run(STATUS)
    done = st.state == "FINISHED"
    snap = st.operationType == "SNAPSHOT_CHUNK"
    if (st.state == "FAILED").any():
        fail("a task FAILED on the slave", st)
    progress = (int((snap & done).sum()), int((snap & ~done).sum()), len(st))
    if progress != shown or tq >= next_note:
        log(f"  {tq - t0:7.3f} s: {progress[0]}/{chunks} chunks finished, {progress[1]} in progress, "
            f"{progress[2]} task(s)")
        shown, next_note = progress, tq + 5
    if len(st) and done.all() and progress[0] >= chunks:
        tc = time.perf_counter()
        got = int(slave.run(COUNT).iloc[0, 0])
        count_s = time.perf_counter() - tc
        if got == n:
            t_done = tq
            break
        log(f"every task FINISHED but the slave counts {got} rows, not {n}; polling on")
    if tq - t0 > TIMEOUT:
        fail(f"the slave is not done after {TIMEOUT:.0f} s (XREPL_BENCH_BOOTSTRAP_TIMEOUT)", st)
    tick += POLL
    time.sleep(max(0.0, tick - time.perf_counter()))
seconds = t_done - t0
rss = rss_mb()
log(f"done after {seconds:.3f} s (the setDatabaseForClusterReplication call {set_s:.3f} s; the final "
    f"count(*) {count_s:.2f} s, not timed)")

# Where the time went, from the controllers' task times: the master's submitTime (the chunk was
# read and its task committed), the slave's createTime (pulled) and finishTime (applied).
mst = master.run("rpc(getControllerAlias(), getMasterReplicationStatus)")
msnap = mst[mst.operationType == "SNAPSHOT_CHUNK"]
if len(msnap) != chunks:
    fail(f"the master made {len(msnap)} SNAPSHOT_CHUNK tasks for {chunks} chunk(s):\n{mst.to_string()}")
joined = st.merge(mst[["taskId", "submitTime"]], on="taskId", how="left").sort_values("taskId")
off = lambda ts: (ns(ts) - wall0) / 1e9
lines = ["  task  operation        from  master submit  slave pulled  slave finished  applied in  on"]
for r in joined.itertuples():
    sub, cre, fin = off(r.submitTime), off(r.createTime), off(r.finishTime)
    lines.append(f"  {r.taskId:4d}  {r.operationType:14s} {r.srcPort:6d}  {sub:11.3f} s  {cre:10.3f} s  "
                 f"{fin:12.3f} s  {fin - cre:8.3f} s  {r.executionNode}")
log("the tasks, seconds after the call:\n" + "\n".join(lines))
sj = joined[joined.operationType == "SNAPSHOT_CHUNK"]
submits = [off(t) for t in sj.submitTime]
applied = [(ns(f) - ns(c)) / 1e9 for c, f in zip(sj.createTime, sj.finishTime)]

# Not timed: every partition equal on both sides.
tc = time.perf_counter()
cons = slave.run(f'checkClusterReplicationConsistency("{DB}")')
log(f"checkClusterReplicationConsistency ({time.perf_counter() - tc:.2f} s):\n{cons.to_string()}")
equal = len(cons) > 0 and bool(cons.equal.all())
if not equal or len(cons) != chunks or int(cons.slaveRows.sum()) != n:
    fail(f"the slave is not equal to the master: {len(cons)} partition(s), "
         f"{int(cons.slaveRows.sum()) if len(cons) else 0} rows")

print(json.dumps({
    "workload": f"bootstrap_{n}", "rows": n, "seconds": round(seconds, 3),
    "rows_per_s": round(n / seconds), "load_s": round(load_ms / 1000, 3), "chunks": chunks,
    "equal": equal, "set_call_s": round(set_s, 3),
    "master_first_chunk_s": round(min(submits), 3), "master_last_chunk_s": round(max(submits), 3),
    "slave_apply_s_mean": round(sum(applied) / len(applied), 3),
    "slave_apply_s_max": round(max(applied), 3),
    **rss,
}), flush=True)
PY
    stop_pair
    m="" s=""
  done

  # PostgreSQL 15's initial table sync of the same sizes, after the xrepl runs (never at once).
  pg_rc=0
  python3 scripts/bench_bootstrap_pg.py --rows "$sizes" | tee -a "$results" || pg_rc=$?
  "$py" - "$results" <<'PY'
import json
import sys

by = {}
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    w = str(o.get("workload", ""))
    for side, prefix in (("xrepl", "bootstrap_"), ("pg", "pg_bootstrap_")):
        if w.startswith(prefix) and w[len(prefix):].isdigit():
            by.setdefault(o["rows"], {})[side] = o
sizes = []
fmt = lambda v, f: "-" if v is None else format(v, f)
table = ["bootstrap: xrepl (setDatabaseForClusterReplication) vs PostgreSQL 15 (CREATE SUBSCRIPTION ... copy_data = true)",
         f"{'rows':>12} {'chunks':>6} {'xrepl s':>9} {'PG s':>9} {'PG s / xrepl s':>15}"]
for rows in sorted(by):
    x, p = by[rows].get("xrepl"), by[rows].get("pg")
    xs = x["seconds"] if x else None
    ps = p["seconds"] if p else None
    ratio = round(ps / xs, 2) if xs and ps else None
    sizes.append({"rows": rows, "xrepl_s": xs, "pg_s": ps, "pg_over_xrepl": ratio})
    table.append(f"{rows:>12,} {fmt(x and x['chunks'], 'd'):>6} {fmt(xs, '.3f'):>9} {fmt(ps, '.3f'):>9} "
                 f"{fmt(ratio, '.2f'):>15}")
table.append("(PG s / xrepl s above 1: xrepl is faster)")
print("\n".join(table), file=sys.stderr, flush=True)
print(json.dumps({"workload": "bootstrap_vs_pg", "rows": 0, "seconds": 0, "sizes": sizes}), flush=True)
PY
  exit "$pg_rc"
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
