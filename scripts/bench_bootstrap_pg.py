#!/usr/bin/env python3
"""PostgreSQL 15 baseline for xrepl's bootstrap (initial copy of existing data).

What it measures: the initial table synchronisation of PostgreSQL 15 logical replication,
i.e. how long a new subscriber takes to copy a K-line table that already holds N rows
on the publisher:

  CREATE SUBSCRIPTION ... WITH (copy_data = true)   -> until every table of the subscription
  is 'r' (ready) in pg_subscription_rel and count(*) on the subscriber equals N.

For each size in --rows (default 1,210,000 and 12,100,000):
  1. two fresh instances (initdb in a temp dir under /tmp; publisher with wal_level=logical,
     subscriber with wal_level=replica; the settings of ../shared/bench/pg_logical/setup.sh),
     the K-line table of pg_logical (same columns and primary key) on both;
  2. the N rows loaded into the publisher with one COPY (timed: load_s), then
     VACUUM (ANALYZE) (an ANALYZE that also leaves autovacuum nothing to do during the
     measurement), CREATE PUBLICATION, CHECKPOINT on both;
  3. clock starts; CREATE SUBSCRIPTION (it also creates the slot on the publisher); every
     20 ms pg_subscription_rel is polled; clock stops at the start of the first poll that
     saw every table 'r' (count(*) is then checked to equal N right after; it is not timed,
     as a full count over 12 M rows costs about a second itself);
  4. one JSON line on stdout:
       {"workload":"pg_bootstrap_<N>","rows":N,"seconds":S,"rows_per_s":R,"load_s":L}
  then both instances are stopped and the temp dir removed (also on error or Ctrl-C).

The rows are the tutorial's K-line table (shared/seeds/dolphindb-async-replication-tutorial.md):
5,000 securities ("000000".."004999") x 242 minutes (09:30-11:30, 13:00-15:00) of one day,
security-major like the tutorial's cj(SecurityID, DateTime) and xrepl-bench's kline();
1,210,000 rows a day. Larger sizes add days (2023-01-08, 2023-01-09, ...): 12,100,000 rows
are ten days. Values as xrepl-bench's kline(): prices 10.00..110.99, volume 100..199,
amount = round(lastpx * volume, 2). One day's values are generated (seeded) and reused for
every day, only the date changes (PostgreSQL stores these fixed-width columns the same
whatever their value).

Usage (from the checkout):  python3 scripts/bench_bootstrap_pg.py [--rows 1210000,12100000]
Needs the PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin, or $PG_BIN) and
psycopg: when the running python has none, the script re-runs itself with the venv of
../shared/bench/pg_logical/run.sh ($PG_BENCH_VENV, default /tmp/pg-bench-venv), creating it
the same way if it is missing. As root the servers run as the OS user postgres (created if
missing, like setup.sh). Ports 55442 (publisher) and 55443 (subscriber) by default, so it
does not collide with pg_logical's 55432/55433. Progress goes to stderr.
"""
import argparse
import datetime as dt
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
VENV = os.environ.get("PG_BENCH_VENV", "/tmp/pg-bench-venv")
DB = "bench"
DBUSER = "bench"
ROWS_PER_DAY = 5000 * 242
FIRST_DAY = dt.date(2023, 1, 8)


def log(*a):
    print("[bench_bootstrap_pg]", *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- psycopg
def ensure_psycopg():
    """import psycopg, or re-exec this script with the pg_logical venv's python."""
    try:
        import psycopg  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("BENCH_BOOTSTRAP_PG_REEXEC") == "1":
        sys.exit(f"psycopg not importable even in {VENV}")
    vpy = os.path.join(VENV, "bin", "python")
    ok = os.path.exists(vpy) and subprocess.run(
        [vpy, "-c", "import psycopg"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not ok:  # as pg_logical/run.sh does it
        log(f"creating venv {VENV} with psycopg")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=sys.stderr)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "psycopg[binary]>=3.1"],
                       check=True, stdout=sys.stderr)
    os.environ["BENCH_BOOTSTRAP_PG_REEXEC"] = "1"
    os.execv(vpy, [vpy, os.path.abspath(__file__)] + sys.argv[1:])


# ----------------------------------------------------------------------------- rows
def minutes():
    out = []
    for h0, m0, h1, m1 in ((9, 30, 11, 30), (13, 0, 15, 0)):
        t, end = h0 * 60 + m0, h1 * 60 + m1
        while t <= end:
            out.append(f"{t // 60:02d}:{t % 60:02d}:00")
            t += 1
    assert len(out) == 242
    return out


def cents(c):
    return f"{c // 100}.{c % 100:02d}"


def one_day(seed):
    """COPY text of one day (date written as FIRST_DAY), as a list of 10,000-row chunks."""
    rng = random.Random(seed)
    r = rng.randrange
    day = FIRST_DAY.isoformat()
    mins = minutes()
    chunks, buf = [], []
    for s in range(5000):
        sid = f"{s:06d}"
        for m in mins:
            pre, o, hi, lo, last = (r(1000, 11100) for _ in range(5))
            vol = r(100, 200)
            buf.append(f"{sid}\t{day} {m}\t{cents(pre)}\t{cents(o)}\t{cents(hi)}\t{cents(lo)}\t"
                       f"{cents(last)}\t{vol}\t{cents(last * vol)}\n")
            if len(buf) == 10000:
                chunks.append("".join(buf).encode())
                buf = []
    if buf:
        chunks.append("".join(buf).encode())
    return chunks


def chunks_for(n, day_chunks):
    """yield COPY chunks for the first n rows: day after day, only the date replaced."""
    left = n
    d = 0
    first = FIRST_DAY.isoformat().encode()
    while left > 0:
        date = (FIRST_DAY + dt.timedelta(days=d)).isoformat().encode()
        for ch in day_chunks:
            if left <= 0:
                break
            if d:
                ch = ch.replace(first, date)  # only the datetime column has dashes
            k = ch.count(b"\n")
            if k > left:
                ch = b"".join(ch.splitlines(keepends=True)[:left])
                k = left
            yield ch
            left -= k
        d += 1


# ----------------------------------------------------------------------------- instances
SCHEMA = """
CREATE TABLE kline(
  securityid text,
  datetime   timestamp,
  preclosepx double precision,
  openpx     double precision,
  highpx     double precision,
  lowpx      double precision,
  lastpx     double precision,
  volume     int,
  amount     double precision,
  PRIMARY KEY (securityid, datetime)
)"""


def conf(base, port, wal_level):
    # the settings of pg_logical/setup.sh (common_conf)
    return f"""
# ---- bench_bootstrap_pg settings ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '{base}/sock'
port = {port}
shared_buffers = 512MB
max_wal_size = 4GB
min_wal_size = 1GB
synchronous_commit = on
fsync = on
full_page_writes = on
track_wal_io_timing = on
max_wal_senders = 10
max_replication_slots = 10
max_logical_replication_workers = 4
max_worker_processes = 8
log_min_messages = warning
log_line_prefix = '%m [%p] '
wal_level = {wal_level}
"""


class Pair:
    """a publisher and a subscriber instance in a fresh temp dir."""

    def __init__(self, pub_port, sub_port):
        self.ports = {"pub": pub_port, "sub": sub_port}
        self.base = None
        self.started = []
        self.prefix = []
        self.user = None

    def run(self, args):
        return subprocess.run(self.prefix + args, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        for p in self.ports.values():
            if subprocess.run(["ss", "-Hltn", f"sport = :{p}"], capture_output=True,
                              text=True).stdout.strip():
                raise RuntimeError(f"port {p} is already in use")
        self.base = tempfile.mkdtemp(prefix="pg-bootstrap-bench.", dir="/tmp")
        if os.geteuid() == 0:  # initdb refuses root: run the servers as postgres (as setup.sh)
            self.user = "postgres"
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", self.user], check=True)
            self.prefix = ["runuser", "-u", self.user, "--"]
        os.makedirs(f"{self.base}/sock")
        os.makedirs(f"{self.base}/log")
        if self.user:
            subprocess.run(["chown", "-R", f"{self.user}:", self.base], check=True)
        for node, wal in (("pub", "logical"), ("sub", "replica")):
            d = f"{self.base}/{node}"
            with open(f"{self.base}/log/initdb-{node}.log", "w") as lf:
                subprocess.run(self.prefix + [f"{PG_BIN}/initdb", "-D", d, "-U", DBUSER, "-A", "trust",
                                              "-E", "UTF8", "--locale=C"], check=True, stdout=lf, stderr=lf)
            with open(f"{d}/postgresql.conf", "a") as f:
                f.write(conf(self.base, self.ports[node], wal))
            self.run([f"{PG_BIN}/pg_ctl", "-D", d, "-l", f"{self.base}/log/{node}.log", "-w", "-t", "60",
                      "start"])
            self.started.append(node)
        for node in ("pub", "sub"):
            with psycopg.connect(self.dsn(node, "postgres"), autocommit=True) as c:
                c.execute(f"CREATE DATABASE {DB}")
            with psycopg.connect(self.dsn(node), autocommit=True) as c:
                c.execute(SCHEMA)

    def dsn(self, node, db=DB):
        return f"host=127.0.0.1 port={self.ports[node]} dbname={db} user={DBUSER}"

    def log_tail(self, lines=20):
        for node in ("pub", "sub"):
            p = f"{self.base}/log/{node}.log"
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                if tail:
                    log(f"--- last lines of the {node} server log ---")
                    sys.stderr.write("".join(tail))

    def stop(self):
        # subscriber first (its workers hold the publisher's walsender), then publisher
        for node in ("sub", "pub"):
            if node not in self.started:
                continue
            d = f"{self.base}/{node}"
            r = subprocess.run(self.prefix + [f"{PG_BIN}/pg_ctl", "-D", d, "-m", "fast", "-w", "-t", "60",
                                              "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode != 0 and os.path.exists(f"{d}/postmaster.pid"):
                # last resort: immediate shutdown of that postmaster only
                with open(f"{d}/postmaster.pid") as f:
                    pid = int(f.readline())
                try:
                    os.kill(pid, signal.SIGQUIT)
                    time.sleep(2)
                except ProcessLookupError:
                    pass
            self.started.remove(node)
        if self.base and self.base.startswith("/tmp/pg-bootstrap-bench."):
            shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


# ----------------------------------------------------------------------------- one size
def measure(n, day_chunks, args):
    pair = Pair(args.pub_port, args.sub_port)
    try:
        log(f"{n} rows: initdb + start publisher :{args.pub_port}, subscriber :{args.sub_port}")
        pair.start()
        pub = psycopg.connect(pair.dsn("pub"), autocommit=True)
        sub = psycopg.connect(pair.dsn("sub"), autocommit=True)

        # 1. load the publisher: one COPY, one transaction
        conn = psycopg.connect(pair.dsn("pub"))
        cur = conn.cursor()
        t0 = time.monotonic()
        with cur.copy("COPY kline FROM STDIN") as cp:
            for ch in chunks_for(n, day_chunks):
                cp.write(ch)
        conn.commit()
        load_s = time.monotonic() - t0
        conn.close()
        got = pub.execute("SELECT count(*) FROM kline").fetchone()[0]
        assert got == n, f"publisher has {got} rows, expected {n}"
        log(f"{n} rows: COPY into the publisher {load_s:.2f} s; VACUUM (ANALYZE), publication, checkpoints")
        pub.execute("VACUUM (ANALYZE) kline")
        pub.execute("CREATE PUBLICATION pub_kline FOR TABLE kline")
        pub.execute("CHECKPOINT")
        sub.execute("CHECKPOINT")
        size_mb = pub.execute("SELECT pg_total_relation_size('kline')").fetchone()[0] / 2**20
        log(f"{n} rows: publisher table + index {size_mb:.0f} MB; CREATE SUBSCRIPTION")

        # 2. the measurement
        conninfo = f"host=127.0.0.1 port={args.pub_port} dbname={DB} user={DBUSER}"
        t_start = time.monotonic()
        sub.execute(f"CREATE SUBSCRIPTION sub_kline CONNECTION '{conninfo}' "
                    "PUBLICATION pub_kline WITH (copy_data = true)")
        t_created = time.monotonic()
        tick = t_start
        next_progress = t_start + 5.0
        t_ready = None
        prev_states = None
        while True:
            tq = time.monotonic()
            total, ready, states = sub.execute(
                "SELECT count(*), count(*) FILTER (WHERE srsubstate = 'r'), "
                "coalesce(string_agg(srsubstate::text, ','), '') FROM pg_subscription_rel").fetchone()
            if states != prev_states:  # i init, d copying, f copied, s synced, r ready
                log(f"  {tq - t_start:7.3f} s: pg_subscription_rel states '{states}'")
                prev_states = states
            if total > 0 and ready == total:
                tc = time.monotonic()
                got = sub.execute("SELECT count(*) FROM kline").fetchone()[0]
                count_s = time.monotonic() - tc
                if got == n:
                    t_ready = tq
                    break
                log(f"all tables ready but the subscriber counts {got} rows, expected {n}; polling on")
            if tq >= next_progress:
                r = sub.execute("SELECT tuples_processed FROM pg_stat_progress_copy").fetchone()
                log(f"  {tq - t_start:7.3f} s: COPY on the subscriber at {r[0] if r else '-'} rows")
                next_progress += 5.0
            if tq - t_start > args.timeout:
                raise RuntimeError(f"initial sync of {n} rows not done after {args.timeout} s")
            tick += 0.020
            time.sleep(max(0.0, tick - time.monotonic()))
        seconds = t_ready - t_start
        # a cheap content check outside the timing
        s_pub = pub.execute("SELECT sum(volume::bigint), max(datetime) FROM kline").fetchone()
        s_sub = sub.execute("SELECT sum(volume::bigint), max(datetime) FROM kline").fetchone()
        assert s_pub == s_sub, f"publisher {s_pub} != subscriber {s_sub}"
        log(f"{n} rows: ready after {seconds:.3f} s (CREATE SUBSCRIPTION itself {t_created - t_start:.3f} s, "
            f"final count(*) {count_s:.2f} s, not timed); sum(volume) and max(datetime) match")
        pub.close()
        sub.close()
        return {"workload": f"pg_bootstrap_{n}", "rows": n, "seconds": round(seconds, 3),
                "rows_per_s": round(n / seconds), "load_s": round(load_s, 3)}
    except BaseException:
        if pair.base:
            pair.log_tail()
        raise
    finally:
        log(f"{n} rows: stopping the instances, removing {pair.base}")
        pair.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="1210000,12100000", help="comma list of table sizes")
    ap.add_argument("--pub-port", type=int, default=55442)
    ap.add_argument("--sub-port", type=int, default=55443)
    ap.add_argument("--seed", type=int, default=20230108)
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up on one size after this (s)")
    args = ap.parse_args()
    sizes = [int(x.replace("_", "")) for x in args.rows.split(",") if x.strip()]
    if not os.path.exists(f"{PG_BIN}/initdb"):
        sys.exit(f"PostgreSQL 15 server not found in {PG_BIN}: apt-get install -y postgresql-15")

    # SIGTERM/SIGHUP -> exception, so the finally blocks stop the servers
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t = time.monotonic()
    day_chunks = one_day(args.seed)
    log(f"generated one day ({ROWS_PER_DAY} rows) in {time.monotonic() - t:.1f} s")
    for n in sizes:
        print(json.dumps(measure(n, day_chunks, args)), flush=True)


if __name__ == "__main__":
    ensure_psycopg()
    import psycopg
    try:
        main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); instances stopped")
        sys.exit(130)
