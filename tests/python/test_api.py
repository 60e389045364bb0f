"""What DolphinDB users do with the Python client, against an xrepl data node: scripts and
their values, function calls, uploads, the three ways to append a DataFrame, reading tables
back, errors as exceptions, several sessions at once.

Needs XREPL_HOST and XREPL_HOST2 (two data nodes of one cluster); see common.py.
"""

import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from common import (
    PASSWORD,
    USER,
    SessionTest,
    assert_frames_equal,
    connect,
    ddb,
    np,
    pd,
    run_tests,
    site,
    sorted_frame,
    wait_for,
)

TABLE_INSERT = "tableInsert{{loadTable('{db}', 't')}}"


def make_db(s, db):
    """A fresh database `db` (VALUE on the dates 2023.01.01..2023.01.10) with an empty
    partitioned table t(d DATE, id INT, v DOUBLE, s SYMBOL)."""
    s.run(
        f"""
        if (existsDatabase("{db}")) {{ dropDatabase("{db}") }}
        db = database("{db}", VALUE, 2023.01.01..2023.01.10)
        schemaTable = table(1:0, `d`id`v`s, [DATE, INT, DOUBLE, SYMBOL])
        pt = db.createPartitionedTable(schemaTable, "t", `d)
        """
    )


def frame(n, start=0):
    """`n` rows for t, ids from `start`, spread over the ten dates, with a NULL v every 5th
    row: the dtypes pandas users have (datetime64[ns], int32, float64, object strings)."""
    ids = np.arange(start, start + n, dtype=np.int32)
    v = ids.astype(np.float64) / 4
    v[ids % 5 == 0] = np.nan
    return pd.DataFrame(
        {
            "d": pd.Timestamp("2023-01-01") + pd.to_timedelta(ids % 10, unit="D"),
            "id": ids,
            "v": v,
            "s": [f"sym{i % 7}" for i in ids],
        }
    )


def client_output(code):
    """What a Python process that logs in at XREPL_HOST as `s` and runs `code` writes to
    its standard output and error. The client writes printed messages and its own log lines
    there from C++, out of reach of Python's redirection."""
    host, port = site("XREPL_HOST")
    prelude = (
        "import dolphindb as ddb\n"
        "s = ddb.Session()\n"
        f"assert s.connect({host!r}, {port}, {USER!r}, {PASSWORD!r})\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stdout + child.stderr
    return child.stdout + child.stderr


def count(s, db):
    return int(s.run(f"select count(*) from loadTable('{db}', 't')")["count"][0])


def read_back(s, db):
    """Every row of t, ordered by id."""
    return sorted_frame(s.run(f"select * from loadTable('{db}', 't')"), ["id"])


class Scripts(SessionTest):
    """`s.run(script)` and `s.run(function, args...)` and the Python values they give."""

    def test_scalars_become_python_and_numpy_scalars(self):
        s = self.s
        cases = [
            ("1 + 1", 2, int),
            ("3000000000", 3000000000, int),
            ("2.5 * 2", 5.0, float),
            ("1 < 2", True, bool),
            ("'abc' + 'def'", "abcdef", str),
            ("2023.01.02", np.datetime64("2023-01-02", "D"), np.datetime64),
            ("2023.01.02T03:04:05", np.datetime64("2023-01-02T03:04:05", "s"), np.datetime64),
            (
                "2023.01.02T03:04:05.123",
                np.datetime64("2023-01-02T03:04:05.123", "ms"),
                np.datetime64,
            ),
            (
                "2023.01.02T03:04:05.123456789",
                np.datetime64("2023-01-02T03:04:05.123456789", "ns"),
                np.datetime64,
            ),
        ]
        for script, want, kind in cases:
            with self.subTest(script=script):
                self.assert_value(s.run(script), want, kind)
        self.assertIsNone(s.run("NULL"))
        self.assertIsNone(s.run("int(NULL)"))
        self.assertIsNone(s.run("string(NULL)"))
        self.assertIsNone(s.run("x = 1"), "an assignment has no value")

    def test_vectors_become_numpy_arrays(self):
        s = self.s
        got = s.run("1..5")
        self.assertEqual(got.dtype, np.int32)
        np.testing.assert_array_equal(got, np.arange(1, 6, dtype=np.int32))
        got = s.run("`a`b`c")
        self.assertEqual(got.dtype, object)
        self.assertEqual(list(got), ["a", "b", "c"])
        np.testing.assert_array_equal(s.run("[1.5, 2.5] * 2"), np.array([3.0, 5.0]))
        got = s.run("2023.01.01..2023.01.03")
        self.assertEqual(got.dtype, np.dtype("datetime64[D]"))
        np.testing.assert_array_equal(
            got, np.array(["2023-01-01", "2023-01-02", "2023-01-03"], dtype="datetime64[D]")
        )
        # An INT vector with a NULL: the client gives float64 with NaN.
        got = s.run("[1, NULL, 3]")
        np.testing.assert_array_equal(got, np.array([1.0, np.nan, 3.0]))

    def test_a_table_becomes_a_dataframe(self):
        got = self.s.run("table(1..3 as id, [1.5, NULL, 3.5] as v, `a`b`c as s)")
        want = pd.DataFrame(
            {
                "id": np.array([1, 2, 3], dtype=np.int32),
                "v": [1.5, np.nan, 3.5],
                "s": ["a", "b", "c"],
            }
        )
        assert_frames_equal(got, want)

    def test_a_dictionary_becomes_a_dict(self):
        got = self.s.run("schema(table(1..2 as a, `x`y as b, [1.5, 2.5] as c))")
        self.assertIsInstance(got, dict)
        self.assertEqual(list(got), ["colDefs"])
        defs = got["colDefs"]
        self.assertEqual(list(defs.columns), ["name", "typeString", "typeInt", "extra", "comment"])
        self.assertEqual(list(defs["name"]), ["a", "b", "c"])
        self.assertEqual(list(defs["typeString"]), ["INT", "STRING", "DOUBLE"])
        self.assertEqual(list(defs["typeInt"]), [4, 18, 16])

    def test_a_pair_and_a_tuple_become_lists(self):
        self.assertEqual(self.s.run("1:3"), [1, 3])
        got = self.s.run("[`A`B, `C]")
        self.assertIsInstance(got, list)
        self.assertEqual(len(got), 2)
        self.assertEqual(list(got[0]), ["A", "B"])
        self.assertEqual(got[1], "C")

    def test_variables_live_in_the_session(self):
        s = self.s
        self.assertIsNone(s.run("y = 41"))
        self.assertEqual(s.run("y + 1"), 42)
        # A script of several statements answers its last one.
        self.assertEqual(s.run("z = y * 2\nz + 1"), 83)
        s.run("undef('y')")
        with self.assertRaisesRegex(RuntimeError, "variable 'y' is not defined"):
            s.run("y")

    def test_print_goes_to_the_clients_output(self):
        child = client_output("v = s.run('print(42)\\nprint(`abc)\\n7')\nprint('value', v)")
        words = child.split()
        # (The C++ and the Python output buffers may reach the pipe in either order.)
        self.assertEqual([w for w in words if w in ("42", "abc")], ["42", "abc"], words)
        self.assertIn("value 7", child)

    def test_functions_are_called_with_python_values(self):
        s = self.s
        self.assertEqual(s.run("size", np.array([1, 2, 3], dtype=np.int32)), 3)
        self.assertEqual(s.run("count", np.array([1.0, np.nan, 3.0])), 2)
        self.assertEqual(s.run("sum", np.array([1.5, 2.5])), 4.0)
        np.testing.assert_array_equal(s.run("take", 7, 3), [7, 7, 7])
        self.assertEqual(s.run("lpad", "7", 3, "0"), "007")
        self.assertEqual(s.run("getNodeAlias()"), "dnode1")
        perf = s.run("rpc(getControllerAlias(), getClusterPerf)")
        self.assertEqual(list(perf.columns), ["name", "site", "mode", "state", "lastHeartbeat"])
        self.assertEqual(sorted(perf["name"]), ["controller1", "dnode1", "dnode2"])
        self.assertEqual(set(perf["state"]), {"up"})


class Appends(SessionTest):
    """The ways DolphinDB users put a DataFrame into a DFS table, and read it back."""

    def test_table_insert_partial_application(self):
        db = "dfs://api_insert"
        make_db(self.s, db)
        df = frame(1000)
        self.assertEqual(self.s.run(TABLE_INSERT.format(db=db), df), 1000)
        self.assertEqual(self.s.run(TABLE_INSERT.format(db=db), frame(10, start=1000)), 10)
        assert_frames_equal(
            read_back(self.s, db), pd.concat([df, frame(10, start=1000)], ignore_index=True)
        )

    def test_table_appender(self):
        db = "dfs://api_appender"
        make_db(self.s, db)
        df = frame(500)
        # The keyword names DolphinDB's own examples use (deprecated for db_path, ...).
        appender = ddb.TableAppender(dbPath=db, tableName="t", ddbSession=self.s)
        self.assertEqual(appender.append(df), 500)
        appender = ddb.TableAppender(db_path=db, table_name="t", conn=self.s)
        self.assertEqual(appender.append(frame(5, start=500)), 5)
        assert_frames_equal(read_back(self.s, db), frame(505))

    def test_upload_then_use_in_a_script(self):
        s = self.s
        db = "dfs://api_upload"
        make_db(s, db)
        df = frame(300)
        self.assertEqual(s.upload({"newRows": df}), -1)
        got = s.run("select count(*), sum(id), max(v) from newRows")
        self.assertEqual(list(got.columns), ["count", "sum_id", "max_v"])
        self.assertEqual(got["count"][0], 300)
        self.assertEqual(got["sum_id"][0], df["id"].sum())
        self.assertEqual(got["max_v"][0], df["v"].max())
        assert_frames_equal(s.run("newRows"), df)
        self.assertEqual(s.run(f"tableInsert(loadTable('{db}', 't'), newRows)"), 300)
        assert_frames_equal(read_back(s, db), df)
        # Several variables in one upload.
        s.upload({"a": 2, "b": np.array([1.5, 2.5]), "c": "text"})
        self.assertEqual(s.run("a * 2"), 4)
        np.testing.assert_array_equal(s.run("b"), [1.5, 2.5])
        self.assertEqual(s.run("c + '!'"), "text!")

    def test_load_table_to_df(self):
        s = self.s
        db = "dfs://api_load"
        make_db(s, db)
        df = frame(200)
        s.run(TABLE_INSERT.format(db=db), df)
        t = s.loadTable(tableName="t", dbPath=db)
        assert_frames_equal(sorted_frame(t.toDF(), ["id"]), df)
        got = s.loadTable("t", db).select("count(*)").toDF()
        self.assertEqual(got["count"][0], 200)
        got = t.select(["id", "v"]).where("id >= 190").toDF()
        assert_frames_equal(
            sorted_frame(got, ["id"]), df[df.id >= 190][["id", "v"]].reset_index(drop=True)
        )

    def test_session_table_from_a_dataframe(self):
        df = frame(50)
        t = self.s.table(data=df)
        assert_frames_equal(t.toDF(), df)
        got = t.select(["id", "s"]).where("id < 5").toDF()
        assert_frames_equal(
            sorted_frame(got, ["id"]), df[df.id < 5][["id", "s"]].reset_index(drop=True)
        )
        got = self.s.run(f"select count(*) from {t.tableName()}")
        self.assertEqual(got["count"][0], 50)


class Errors(SessionTest):
    """A failure is a Python exception carrying xrepl's message, and the session goes on."""

    def test_unknown_function(self):
        with self.assertRaisesRegex(RuntimeError, "dnode1: unknown function 'nosuch'"):
            self.s.run("nosuch(1)")
        with self.assertRaisesRegex(RuntimeError, "unknown function 'nosuch'"):
            self.s.run("nosuch", 1, "a")
        self.assertEqual(self.s.run("1 + 1"), 2, "the session goes on")

    def test_syntax_error(self):
        with self.assertRaisesRegex(RuntimeError, "Syntax error at line 1, column 4"):
            self.s.run("1 +* (")
        with self.assertRaisesRegex(RuntimeError, "Syntax error at line 2"):
            self.s.run("w = 1\nw = = 2")
        with self.assertRaisesRegex(RuntimeError, "variable 'w' is not defined"):
            self.s.run("w")  # a syntax error anywhere runs nothing

    def test_wrong_password(self):
        host, port = site("XREPL_HOST")
        # The client reports a refused login at connect by its return value and a log line
        # with the reason, as with DolphinDB. (Two failures only: from the third in a row
        # the controller slows logins down.)
        output = client_output(
            f"print('connected', ddb.Session().connect({host!r}, {port}, 'admin', 'wrong'))"
        )
        self.assertIn("controller1: The user name or password is incorrect", output)
        self.assertIn("connected False", output)
        s = ddb.Session()
        self.assertTrue(s.connect(host, port))
        with self.assertRaisesRegex(RuntimeError, "Not logged in"):
            s.run("1 + 1")
        with self.assertRaisesRegex(RuntimeError, "The user name or password is incorrect"):
            s.login(USER, "wrong")
        s.login(USER, PASSWORD)
        self.assertEqual(s.run("1 + 1"), 2)
        s.close()

    def test_a_value_that_cannot_be_converted_writes_nothing(self):
        s = self.s
        db = "dfs://api_bad_insert"
        make_db(s, db)
        s.run(TABLE_INSERT.format(db=db), frame(20))
        bad = frame(20, start=20)
        bad["d"] = bad["d"].dt.strftime("%Y.%m.%d")  # text where the table has dates
        with self.assertRaisesRegex(RuntimeError, "column 'd': cannot convert STRING.* to DATE"):
            s.run(TABLE_INSERT.format(db=db), bad)
        self.assertEqual(count(s, db), 20)
        # A row outside every partition fails the whole append, the good rows too.
        outside = frame(3, start=40)
        outside.loc[2, "d"] = pd.Timestamp("2024-06-01")
        with self.assertRaisesRegex(RuntimeError, "outside every partition"):
            s.run(TABLE_INSERT.format(db=db), outside)
        self.assertEqual(count(s, db), 20)
        with self.assertRaisesRegex(RuntimeError, "has 4 columns but the new data has 2"):
            s.run(TABLE_INSERT.format(db=db), frame(3)[["d", "id"]])
        self.assertEqual(count(s, db), 20)
        assert_frames_equal(read_back(s, db), frame(20))


class Sessions(unittest.TestCase):
    """Several sessions of one user at the same time, on one data node and on two."""

    def test_two_sessions_of_one_user(self):
        a, b, c = connect(), connect(), connect("XREPL_HOST2")
        a.run("who = 'a'")
        b.run("who = 'b'")
        self.assertEqual(a.run("who"), "a", "each session has its own variables")
        self.assertEqual(b.run("who"), "b")
        with self.assertRaisesRegex(RuntimeError, "variable 'who' is not defined"):
            c.run("who")
        self.assertEqual(c.run("getNodeAlias()"), "dnode2")

        # Writes from the three sessions in turn, then reads from all at the same time.
        db = "dfs://api_sessions"
        make_db(a, db)
        for i in range(4):
            for session, start in [(a, 0), (b, 1000), (c, 2000)]:
                self.assertEqual(
                    session.run(TABLE_INSERT.format(db=db), frame(25, start + 25 * i)), 25
                )
        want = pd.concat([frame(100, start) for start in (0, 1000, 2000)], ignore_index=True)
        results, errors = [], []

        def reader(session):
            try:
                for _ in range(5):
                    results.append(read_back(session, db))
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(s,)) for s in (a, b, c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 15)
        for got in results:
            assert_frames_equal(got, want)

        # A closed session ends alone.
        a.close()
        with self.assertRaises(RuntimeError):
            a.run("1")
        self.assertEqual(b.run("who"), "b")
        self.assertEqual(c.run("1 + 2"), 3)
        b.close()
        c.close()


class Writers(unittest.TestCase):
    """The client's writers that split the data themselves: PartitionedTableAppender (by
    partition, over a connection pool) and MultithreadedTableWriter (rows buffered and sent
    by background threads). Both read `schema(loadTable(...))` as DolphinDB has it
    (`partitionType` an INT code, `partitionColumnIndex`, ...) and send request options with
    more fields than a fetch size."""

    def test_a_partitioned_table_appender(self):
        db = "dfs://api_pta"
        s = connect()
        make_db(s, db)
        host, port = site("XREPL_HOST")
        pool = ddb.DBConnectionPool(host, port, 2, USER, PASSWORD)
        try:
            appender = ddb.PartitionedTableAppender(
                dbPath=db, tableName="t", partitionColName="d", dbConnectionPool=pool
            )
            self.assertEqual(appender.append(frame(200)), 200)
        finally:
            pool.shutDown()
        assert_frames_equal(read_back(s, db), frame(200))
        s.close()

    def write_with_mtw(self, db, threads, partition_column):
        s = connect()
        make_db(s, db)
        host, port = site("XREPL_HOST")
        writer = ddb.MultithreadedTableWriter(
            host,
            port,
            USER,
            PASSWORD,
            db,
            "t",
            False,
            False,
            [],
            10,
            0.1,
            threads,
            partition_column,
        )
        rows = frame(50)
        for row in rows.itertuples(index=False):
            result = writer.insert(row.d.to_datetime64(), row.id, row.v, row.s)
            self.assertEqual(result.errorCode, "", result.errorInfo)
        writer.waitForThreadCompletion()
        status = writer.getStatus()
        self.assertEqual((status.errorInfo, status.sentRows, status.unsentRows), ("", 50, 0))
        assert_frames_equal(read_back(s, db), rows)
        s.close()

    def test_a_multithreaded_table_writer(self):
        self.write_with_mtw("dfs://api_mtw", 1, "")

    def test_a_multithreaded_table_writer_by_partition(self):
        self.write_with_mtw("dfs://api_mtw_partitioned", 2, "d")


class SessionOptions(unittest.TestCase):
    """Sessions opened with the client's options: asynchronous, compressed."""

    def test_an_asynchronous_session_runs_requests_without_replies(self):
        host, port = site("XREPL_HOST")
        db = "dfs://api_async"
        s = connect()
        make_db(s, db)
        a = ddb.Session(enableASYNC=True)
        self.assertTrue(a.connect(host, port, USER, PASSWORD))
        for i in range(5):
            self.assertIsNone(a.run(TABLE_INSERT.format(db=db), frame(20, 20 * i)))
        # No reply says when they ran: wait for the rows.
        wait_for("the asynchronous appends", lambda: count(s, db) == 100, limit=20)
        assert_frames_equal(read_back(s, db), frame(100))
        a.close()
        s.close()

    def test_a_compressed_session(self):
        host, port = site("XREPL_HOST")
        db = "dfs://api_compress"
        c = ddb.Session(compress=True)
        self.assertTrue(c.connect(host, port, USER, PASSWORD))
        make_db(c, db)
        self.assertEqual(c.run(TABLE_INSERT.format(db=db), frame(300)), 300)
        assert_frames_equal(read_back(c, db), frame(300))
        c.close()


if __name__ == "__main__":
    run_tests()
