"""The replication tutorial done from Python, as a DolphinDB user would: on the master, create
dfs://testDB and testTB, turn replication on, append K-line data built in pandas (part with
tableInsert{...}, part with TableAppender); on the slave, once it has caught up, read the same
data back, and read the status functions of both sides as DataFrames.

Needs XREPL_MASTER and XREPL_SLAVE (a data node of a master cluster and one of its slave);
see common.py.
"""

import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from common import (
    assert_frames_equal,
    connect,
    ddb,
    np,
    pd,
    run_tests,
    sorted_frame,
    wait_for,
)

DB = "dfs://testDB"
TB = "testTB"
SECURITIES = 200  # the tutorial has 5000; fewer keep a debug build in CI fast
DAYS = ["2023-01-08", "2023-01-09"]
COLUMNS = [
    "SecurityID",
    "DateTime",
    "PreClosePx",
    "OpenPx",
    "HighPx",
    "LowPx",
    "LastPx",
    "Volume",
    "Amount",
]

CREATE = f"""
dbName = "{DB}"
if (existsDatabase(dbName)) {{
  dropDatabase(dbName)
}}
db = database(dbName, VALUE, 2023.01.01..2023.12.31)
setDatabaseForClusterReplication(db, true)
tbName = "{TB}"
colNames = `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount
colTypes = [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE]
schemaTable = table(1:0, colNames, colTypes)
db.createPartitionedTable(table=schemaTable, tableName=tbName, partitionColumns=`DateTime)
"""

# Per minute: rows, and the sums a slave that lost or doubled a row would get wrong.
CHECKSUM = (
    "select count(*), sum(Volume), sum(Amount), sum(LastPx), sum(PreClosePx), "
    "min(SecurityID), max(SecurityID) "
    f"from loadTable('{DB}', '{TB}') group by DateTime"
)

MASTER_STATUS = {
    "taskId": "int64",
    "tid": "int64",
    "groupId": "int64",
    "operationType": "object",
    "submitTime": "datetime64[ns]",
    "dbName": "object",
    "tableName": "object",
    "srcIP": "object",
    "srcPort": "int32",
    "isTruncated": "bool",
}
SLAVE_STATUS = {
    "taskId": "int64",
    "masterTid": "int64",
    "groupId": "int64",
    "executionSet": "int32",
    "queueId": "int32",
    "operationType": "object",
    "createTime": "datetime64[ns]",
    "dbName": "object",
    "tableName": "object",
    "srcIP": "object",
    "srcPort": "int32",
    "finishTime": "datetime64[ns]",
    "executionNode": "object",
    "state": "object",
    "details": "object",
}
METRICS = {
    "status": "object",
    "finishedTasks": "int64",
    "unfinishedTasks": "int64",
    "finishedTasksPerSec": "float64",
    "maxCostPerTask": "object",
    "avgCostPerTask": "object",
    "averageGroupSize": "float64",
    "bootstrap": "object",
    "bootstrapChunksApplied": "int32",
    "bootstrapChunks": "int32",
    "bootstrapBytesApplied": "int64",
    "bootstrapBytesSent": "int64",
}
RECENT_SLAVES = {
    "connectedController": "object",
    "allControllersInRaft": "object",
    "lastFinishedTaskId": "int64",
    "lastPullTime": "datetime64[ns]",
}
QUEUE_STATUS = [
    "executionSet",
    "queueId",
    "unfinishedTasks",
    "executionGroupId",
    "executionNode",
    "executionTime",
    "status",
]
EXECUTION_STATUS = ["executionSet", "worker", "taskId", "state"]


def k_lines(day, seed):
    """One trading day of minute bars for SECURITIES securities (09:30-11:30 and
    13:00-15:00, 242 minutes), as the tutorial builds them, in pandas."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"{day}T09:30:00", "s")
    afternoon = np.datetime64(f"{day}T13:00:00", "s")
    minutes = np.concatenate([start + np.arange(121) * 60, afternoon + np.arange(121) * 60]).astype(
        "datetime64[ns]"
    )
    ids = np.char.zfill(np.arange(SECURITIES).astype(str), 6).astype(object)
    n = SECURITIES * len(minutes)
    prices = np.round(10 + rng.random(100), 2)
    volumes = 100 + rng.integers(0, 100, 100)
    df = pd.DataFrame(
        {
            "SecurityID": np.repeat(ids, len(minutes)),
            "DateTime": np.tile(minutes, SECURITIES),
            "PreClosePx": rng.choice(prices, n),
            "OpenPx": rng.choice(prices, n),
            "HighPx": rng.choice(prices, n),
            "LowPx": rng.choice(prices, n),
            "LastPx": rng.choice(prices, n),
            "Volume": rng.choice(volumes, n).astype(np.int32),
        }
    )
    df["Amount"] = np.round(df.LastPx * df.Volume, 2)
    return df


def assert_columns(test, df, want):
    """`df` has the columns of `want` in its order, with its dtypes (a dict) if given."""
    test.assertEqual(list(df.columns), list(want))
    if isinstance(want, dict):
        test.assertEqual({c: str(t) for c, t in df.dtypes.items()}, want)


class Tutorial(unittest.TestCase):
    def test_the_tutorial_replicates_what_python_appends(self):
        master, slave = connect("XREPL_MASTER"), connect("XREPL_SLAVE")

        # On the master: the database, replication on, the table.
        master.run(CREATE)
        self.assertTrue(master.run(f"schema(database('{DB}'))")["clusterReplicationEnabled"])
        first, second = k_lines(DAYS[0], seed=1), k_lines(DAYS[1], seed=2)
        self.assertEqual(list(first.columns), COLUMNS)
        self.assertEqual(
            [str(t) for t in first.dtypes],
            ["object", "datetime64[ns]"] + ["float64"] * 5 + ["int32", "float64"],
        )
        self.assertEqual(master.run(f"tableInsert{{loadTable('{DB}', '{TB}')}}", first), len(first))
        appender = ddb.TableAppender(dbPath=DB, tableName=TB, ddbSession=master)
        self.assertEqual(appender.append(second), len(second))
        sent = pd.concat([first, second], ignore_index=True)
        got = master.run(f"select count(*) from loadTable('{DB}', '{TB}')")
        self.assertEqual(got["count"][0], len(sent))

        # The master's send queue: one task per transaction.
        tasks = master.run("rpc(getControllerAlias(), getMasterReplicationStatus)")
        assert_columns(self, tasks, MASTER_STATUS)
        self.assertEqual(
            list(tasks["operationType"]),
            ["CREATE_DOMAIN", "CREATE_PARTITIONED_TABLE", "APPEND", "APPEND"],
        )
        self.assertEqual(list(tasks["taskId"]), [1, 2, 3, 4])
        self.assertEqual(list(tasks["dbName"]), [DB] * 4)
        self.assertEqual(list(tasks["tableName"]), ["", TB, TB, TB])
        last = int(tasks["taskId"].max())

        # The slave catches up.
        def caught_up():
            m = slave.run("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)")
            return m["finishedTasks"][0] >= last and m["unfinishedTasks"][0] == 0

        wait_for(f"the slave to finish task {last}", caught_up, limit=60)

        # The same rows on the slave, per minute and one by one.
        want = sorted_frame(master.run(CHECKSUM), ["DateTime"])
        got = sorted_frame(slave.run(CHECKSUM), ["DateTime"])
        self.assertEqual(len(got), 2 * 242)
        assert_frames_equal(got, want, check_exact=False, rtol=1e-12)
        by_minute = sent.groupby("DateTime").agg(
            count=("Volume", "size"), sum_Volume=("Volume", "sum"), sum_Amount=("Amount", "sum")
        )
        np.testing.assert_array_equal(got["count"], by_minute["count"])
        np.testing.assert_array_equal(got["sum_Volume"], by_minute["sum_Volume"])
        np.testing.assert_allclose(got["sum_Amount"], by_minute["sum_Amount"], rtol=1e-12)
        rows = slave.run(f"select * from loadTable('{DB}', '{TB}')")
        assert_frames_equal(
            sorted_frame(rows, ["SecurityID", "DateTime"]),
            sorted_frame(sent, ["SecurityID", "DateTime"]),
        )
        got = slave.run(f"select count(*) from loadTable('{DB}', '{TB}')")
        self.assertEqual(got["count"][0], len(sent))
        check = slave.run(f"checkClusterReplicationConsistency('{DB}', '{TB}')")
        self.assertTrue(check["equal"].all(), check)
        self.assertEqual(int(check["slaveRows"].sum()), len(sent))

        # The status functions, as DataFrames with the documented columns.
        tasks = slave.run("rpc(getControllerAlias(), getSlaveReplicationStatus)")
        assert_columns(self, tasks, SLAVE_STATUS)
        self.assertEqual(list(tasks["taskId"]), [1, 2, 3, 4])
        self.assertEqual(set(tasks["state"]), {"FINISHED"})
        self.assertFalse(tasks["finishTime"].isna().any())
        self.assertLessEqual(set(tasks["executionNode"]), {"dnode1", "dnode2"})
        metrics = slave.run("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)")
        assert_columns(self, metrics, METRICS)
        self.assertEqual(list(metrics["status"]), ["ENABLED"])
        self.assertEqual(list(metrics["finishedTasks"]), [4])
        queues = slave.run("rpc(getControllerAlias(), getSlaveReplicationQueueStatus)")
        assert_columns(self, queues, QUEUE_STATUS)
        self.assertEqual(set(queues["unfinishedTasks"]), {0})
        execution = slave.run("getSlaveReplicationExecutionStatus()")
        assert_columns(self, execution, EXECUTION_STATUS)

        def truncated():
            t = master.run("rpc(getControllerAlias(), getMasterReplicationStatus)")
            return bool(t["isTruncated"].all())

        wait_for("the master to truncate the finished tasks", truncated, limit=20)
        slaves = master.run("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)")
        assert_columns(self, slaves, RECENT_SLAVES)
        self.assertEqual(list(slaves["lastFinishedTaskId"]), [4])

        # The slave is read-only for users other than the replication user; they read.
        slave.run(
            "createUser('reader', '123456', false)\n"
            f"grant('reader', DB_READ, '{DB}')\n"
            f"grant('reader', DB_WRITE, '{DB}')"
        )
        reader = connect("XREPL_SLAVE", user="reader", password="123456")
        with self.assertRaisesRegex(RuntimeError, "read-only on this slave"):
            reader.run(f"tableInsert{{loadTable('{DB}', '{TB}')}}", first.head(5))
        got = reader.run(f"select count(*) from loadTable('{DB}', '{TB}')")
        self.assertEqual(got["count"][0], len(sent))
        for s in (reader, slave, master):
            s.close()


if __name__ == "__main__":
    run_tests()
