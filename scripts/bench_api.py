"""The tutorial's 1.21 M-row K-line append through DolphinDB's Python client, next to the same
append from the console, on one cluster, one after the other (run by `scripts/bench.sh api`).

Prints one JSON object per line (workload, rows, seconds, rows_per_s):
  api_append_console   the console runs the tutorial's generation (not timed), then its
                       `append!`, timed by the data node's clock (now() before and after)
  api_append_python    the same rows built in pandas, then
                       `s.run("tableInsert{loadTable(...)}", df)`: from the call to its return
  api_select_python    `select * from loadTable(...)` back into a DataFrame
Each append goes into a freshly created database.

Usage: bench_api.py HOST:PORT XREPL_CONSOLE [ROUNDS]
"""

import json
import subprocess
import sys
import time

import dolphindb as ddb
import numpy as np
import pandas as pd

SECURITIES = 5000
CREATE = """
dbName = "dfs://testDB"
if(existsDatabase(dbName)){ dropDatabase(dbName) }
db = database(dbName, VALUE, 2023.01.01..2023.12.31)
colNames = `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount
colTypes = [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE]
db.createPartitionedTable(table=table(1:0, colNames, colTypes), tableName="testTB", partitionColumns=`DateTime)
"""
# The tutorial's generation, then its append timed on the data node.
CONSOLE = CREATE + """
n = 1210000
randPrice = round(10+rand(1.0, 100), 2)
randVolume = 100+rand(100, 100)
SecurityID = lpad(string(take(0..4999, 5000)), 6, `0)
DateTime = (2023.01.08T09:30:00 + take(0..120, 121)*60).join(2023.01.08T13:00:00 + take(0..120, 121)*60)
PreClosePx = rand(randPrice, n)
OpenPx = rand(randPrice, n)
HighPx = rand(randPrice, n)
LowPx = rand(randPrice, n)
LastPx = rand(randPrice, n)
Volume = int(rand(randVolume, n))
Amount = round(LastPx*Volume, 2)
tmp = cj(table(SecurityID), table(DateTime))
t = tmp.join!(table(PreClosePx, OpenPx, HighPx, LowPx, LastPx, Volume, Amount))
t0 = now()
loadTable(dbName, "testTB").append!(t)
long(now() - t0)
"""


def kline() -> pd.DataFrame:
    """The tutorial's rows, built in pandas as a Python user would."""
    rng = np.random.default_rng(7)
    step = np.timedelta64(60, "s")
    minutes = np.concatenate(
        [
            np.datetime64("2023-01-08T09:30:00") + np.arange(121) * step,
            np.datetime64("2023-01-08T13:00:00") + np.arange(121) * step,
        ]
    )
    n = SECURITIES * len(minutes)
    price = np.round(10 + rng.random(100), 2)
    volume = 100 + rng.integers(0, 100, 100)
    df = pd.DataFrame(
        {
            "SecurityID": np.repeat(np.char.zfill(np.arange(SECURITIES).astype(str), 6), len(minutes)),
            "DateTime": np.tile(minutes, SECURITIES).astype("datetime64[ns]"),
            **{c: rng.choice(price, n) for c in ["PreClosePx", "OpenPx", "HighPx", "LowPx", "LastPx"]},
            "Volume": rng.choice(volume, n).astype(np.int32),
        }
    )
    df["Amount"] = np.round(df.LastPx * df.Volume, 2)
    return df


def emit(workload: str, rows: int, seconds: float) -> None:
    print(json.dumps({"workload": workload, "rows": rows, "seconds": round(seconds, 4),
                      "rows_per_s": round(rows / seconds)}), flush=True)


def main() -> None:
    host, console = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    h, p = host.rsplit(":", 1)
    s = ddb.Session()
    s.connect(h, int(p), "admin", "123456")
    df = kline()
    for _ in range(rounds):
        out = subprocess.run(
            [console, "--host", host, "--user", "admin", "--password", "123456", "--format", "json", "-c", CONSOLE],
            check=True, capture_output=True, text=True).stdout
        ms = json.loads(out.strip().splitlines()[-1])
        emit("api_append_console", len(df), float(ms) / 1000)

        s.run(CREATE)
        t0 = time.perf_counter()
        rows = s.run("tableInsert{loadTable('dfs://testDB', 'testTB')}", df)
        emit("api_append_python", int(rows), time.perf_counter() - t0)

        t0 = time.perf_counter()
        back = s.run("select * from loadTable('dfs://testDB', 'testTB')")
        emit("api_select_python", len(back), time.perf_counter() - t0)
        assert len(back) == len(df), (len(back), len(df))


if __name__ == "__main__":
    main()
