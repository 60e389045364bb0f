#!/usr/bin/env python3
"""Splits replication lag: master submitTime -> slave createTime (pull and store) -> slave
finishTime (hand-out, fetch, replay). Usage: scripts/lag-split.py MASTER_DATA_NODE SLAVE_DATA_NODE [N] (host:port each; the latest N tasks, default 5000), after a stream such as xrepl-bench replication; admin/123456."""
import json, os, subprocess, sys
def rows(host, script):
    out = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "xrepl"), "--host", host, "--user", "admin",
        "--password", "123456", "--format", "json", "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
m = {r["taskId"]: r for r in rows(sys.argv[1], f"rpc(getControllerAlias(), getMasterReplicationStatus, {n})")}
s = rows(sys.argv[2], f"rpc(getControllerAlias(), getSlaveReplicationStatus, {n})")
import datetime
def ns(t):
    if isinstance(t, (int, float)): return t
    # '2026.12.01T21:38:24.123456789'
    frac = t.rsplit('.', 1)[1]
    base = datetime.datetime.strptime(t.rsplit('.', 1)[0], "%Y.%m.%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(base.timestamp()) * 10**9 + int(frac.ljust(9, '0'))
a, b, c = [], [], []
for r in s:
    if r["state"] != "FINISHED" or r["taskId"] not in m: continue
    sub = ns(m[r["taskId"]]["submitTime"]); cr = ns(r["createTime"]); fi = ns(r["finishTime"])
    a.append((cr - sub) / 1e6); b.append((fi - cr) / 1e6); c.append((fi - sub) / 1e6)
def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
for name, v in [("submit->create (pull, store)", a), ("create->finish (hand-out, fetch, replay)", b), ("total", c)]:
    print(f"{name:42s} n={len(v)} p50={pct(v,.5):.2f} ms p99={pct(v,.99):.2f} ms")
