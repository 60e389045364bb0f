"""Regressions: bugs found with DolphinDB's Python client, one class each.
tests/tests/t110_dolphindb_api.rs runs each class on its own cluster (its t5x tests).

Needs XREPL_HOST and XREPL_HOST2 (two data nodes of one cluster); see common.py.
"""

import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from common import connect, run_tests
from test_api import TABLE_INSERT, count, frame, make_db


class ConcurrentWrites(unittest.TestCase):
    """Appends of several sessions at the same time to a table whose partitions are on both
    data nodes deadlocked across the two nodes: each transaction held its locks on one node
    and waited for the other's until partitionLockTimeoutMs; then several (often all) of them
    failed with `partition dfs://.../t/2023.01.0N is locked by transaction N; gave up after ...
    ms`. docs/ARCHITECTURE.md promises that waiting transactions never deadlock; a transaction
    on several nodes now gives way to an older one (wait-die) and its append runs again."""

    def test_concurrent_appends_to_the_same_partitions_all_commit(self):
        self.maxDiff = None
        db = "dfs://concurrent"
        first = connect()
        make_db(first, db)
        first.run(TABLE_INSERT.format(db=db), frame(10, start=100000))  # every chunk exists
        sessions = [connect("XREPL_HOST" if i % 2 == 0 else "XREPL_HOST2") for i in range(4)]
        outcomes = []

        def writer(session, start, barrier):
            barrier.wait()
            t0 = time.monotonic()
            try:
                n = session.run(TABLE_INSERT.format(db=db), frame(25, start))
                outcomes.append((start, n, time.monotonic() - t0))
            except Exception as e:  # reported below
                outcomes.append((start, str(e), time.monotonic() - t0))

        for r in range(3):
            barrier = threading.Barrier(len(sessions))
            threads = [
                threading.Thread(target=writer, args=(s, 1000 * i + 25 * r, barrier))
                for i, s in enumerate(sessions)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if any(o[1] != 25 for o in outcomes):
                break
        failed = [o for o in outcomes if o[1] != 25]
        self.assertEqual(failed, [], "every concurrent append commits")
        slow = [o for o in outcomes if o[2] > 1.5]
        self.assertEqual(slow, [], "no append waits for a lock timeout")
        self.assertEqual(count(first, db), 10 + 25 * len(outcomes))


class AppendPartialApplication(unittest.TestCase):
    """`append!{loadTable('dfs://db', 't')}`, the partial application DolphinDB's own API
    examples append a DataFrame with, was a syntax error: the parser took no `{` after a name
    ending in `!` (`Syntax error at line 1, column 7: expected end of statement (a new line or
    ';') but found '!'`), in a function request and in a script alike."""

    def test_append_partial_application_appends(self):
        db = "dfs://append_partial"
        s = connect()
        make_db(s, db)
        s.run(f"append!{{loadTable('{db}', 't')}}", frame(30))
        self.assertEqual(count(s, db), 30)
        s.upload({"more": frame(20, start=30)})
        s.run(f"add = append!{{loadTable('{db}', 't')}}\nadd(more)")
        self.assertEqual(count(s, db), 50)


if __name__ == "__main__":
    run_tests()
