"""Every column type xrepl has, with NULLs, through DolphinDB's Python client: a DFS table
appended from a DataFrame and read back, and scalars, vectors, dictionaries, tuples, pairs and
tables uploaded and read back.

Needs XREPL_HOST (a data node); see common.py.
"""

import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from common import SessionTest, assert_frames_equal, connect, ddb, np, pd, run_tests, sorted_frame

DB = "dfs://types"
COLUMNS = ["k", "b", "i", "l", "d", "str", "sym", "dt", "dtm", "ts", "nts"]
TYPES = [
    "INT",
    "BOOL",
    "INT",
    "LONG",
    "DOUBLE",
    "STRING",
    "SYMBOL",
    "DATE",
    "DATETIME",
    "TIMESTAMP",
    "NANOTIMESTAMP",
]
# DolphinDB's type codes of TYPES, as schema(...).colDefs.typeInt gives them.
TYPE_CODES = [4, 1, 4, 5, 16, 18, 17, 6, 11, 12, 14]
BIG_LONG = 2**53 + 1  # not a float64: read back exactly only from a column without NULLs


def sent():
    """Four rows: ordinary values, NULLs in every column (None, pd.NA, NaN, NaT), edge
    values (before 1970, empty strings, -0.0), extremes. pandas' nullable Int32/Int64 carry
    the integer NULLs."""
    return pd.DataFrame(
        {
            "k": np.array([1, 2, 3, 4], dtype=np.int32),
            "b": [True, None, False, True],
            "i": pd.array([1, None, -3, 2147483647], dtype="Int32"),
            "l": pd.array([1, None, -3, BIG_LONG], dtype="Int64"),
            "d": [1.5, np.nan, -0.0, 1e300],
            "str": ["a", None, "", "héllo wörld"],
            "sym": ["x", None, "y", "x"],
            "dt": pd.to_datetime(["2023-01-02", None, "1969-12-31", "2100-02-28"]),
            "dtm": pd.to_datetime(
                ["2023-01-02 03:04:05", None, "1969-12-31 23:59:59", "2038-01-19 03:14:07"]
            ),
            "ts": pd.to_datetime(
                [
                    "2023-01-02 03:04:05.123",
                    None,
                    "1969-12-31 23:59:59.999",
                    "2100-01-01 00:00:00.001",
                ]
            ),
            "nts": pd.to_datetime(
                [
                    "2023-01-02 03:04:05.123456789",
                    None,
                    "1969-12-31 23:59:59.999999999",
                    "2200-01-01 00:00:00.000000001",
                ]
            ),
        }
    )


def received():
    """What the client gives back for sent(): an integer column with NULLs is float64 with
    NaN, a NULL BOOL is None in an object column, a NULL string is '', a NULL temporal NaT;
    DATE, DATETIME and TIMESTAMP are datetime64[ns] in a DataFrame."""
    want = sent()
    want["i"] = np.array([1.0, np.nan, -3.0, 2147483647.0])
    want["l"] = np.array([1.0, np.nan, -3.0, float(BIG_LONG)])
    want["str"] = ["a", "", "", "héllo wörld"]
    want["sym"] = ["x", "", "y", "x"]
    return want


def make_table(s):
    names = "`" + "`".join(COLUMNS)
    s.run(
        f"""
        if (existsDatabase("{DB}")) {{ dropDatabase("{DB}") }}
        db = database("{DB}", VALUE, 1..8)
        pt = db.createPartitionedTable(table(1:0, {names}, [{", ".join(TYPES)}]), "t", `k)
        """
    )


class DfsTable(SessionTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        make_table(cls.s)

    def test_every_type_and_null_round_trips(self):
        s = self.s
        defs = s.run(f"schema(loadTable('{DB}', 't'))")["colDefs"]
        self.assertEqual(list(defs["name"]), COLUMNS)
        self.assertEqual(list(defs["typeString"]), TYPES)
        self.assertEqual(list(defs["typeInt"]), TYPE_CODES)

        self.assertEqual(s.run(f"tableInsert{{loadTable('{DB}', 't')}}", sent()), 4)
        # The same rows again through TableAppender (which converts by the table's schema)
        # under other keys.
        again = sent()
        again["k"] = again["k"] + 4
        appender = ddb.TableAppender(db_path=DB, table_name="t", conn=s)
        self.assertEqual(appender.append(again), 4)

        want = received()
        want_again = received()
        want_again["k"] = want_again["k"] + 4
        want = pd.concat([want, want_again], ignore_index=True)
        got = sorted_frame(s.run(f"select * from loadTable('{DB}', 't')"), ["k"])
        assert_frames_equal(got, want)
        # Value by value too (assert_frame_equal treats None and NaN alike in object columns).
        for col in COLUMNS:
            for row, (g, w) in enumerate(zip(got[col], want[col])):
                with self.subTest(column=col, row=row):
                    if pd.isna(w):
                        self.assertTrue(pd.isna(g), f"{g!r} is not NULL")
                        self.assertIs(type(g), type(w))
                    else:
                        self.assertEqual(g, w)
        assert_frames_equal(sorted_frame(s.loadTable("t", DB).toDF(), ["k"]), want)

        # A LONG beyond float64 comes back exactly where its column has no NULL.
        got = s.run(f"select k, l from loadTable('{DB}', 't') where k == 4")
        self.assertEqual(got["l"].dtype, np.int64)
        self.assertEqual(int(got["l"][0]), BIG_LONG)
        # NULLs are NULLs on the server too.
        got = s.run(
            f"select count(*), count(b), count(i), count(l), count(d), count(dt), count(nts) "
            f"from loadTable('{DB}', 't')"
        )
        self.assertEqual(list(got.iloc[0]), [8, 6, 6, 6, 6, 6, 6])
        got = s.run(f"select k from loadTable('{DB}', 't') where str == '' order by k")
        self.assertEqual(list(got["k"]), [2, 3, 6, 7])


class Uploads(SessionTest):
    """`s.upload({name: value})` then `s.run(name)`: the value comes back as it went."""

    def round_trip(self, value):
        self.s.upload({"x": value})
        return self.s.run("x")

    def test_scalars(self):
        cases = [
            (True, True, bool),
            (False, False, bool),
            (42, 42, int),
            (-(2**40), -(2**40), int),
            (np.int32(7), 7, int),
            (2.5, 2.5, float),
            ("héllo", "héllo", str),
            (np.datetime64("2023-01-02", "D"), np.datetime64("2023-01-02", "D"), np.datetime64),
            (
                np.datetime64("1969-12-31T23:59:59", "s"),
                np.datetime64("1969-12-31T23:59:59", "s"),
                np.datetime64,
            ),
            (
                np.datetime64("2023-01-02T03:04:05.123", "ms"),
                np.datetime64("2023-01-02T03:04:05.123", "ms"),
                np.datetime64,
            ),
            (
                np.datetime64("2023-01-02T03:04:05.123456789", "ns"),
                np.datetime64("2023-01-02T03:04:05.123456789", "ns"),
                np.datetime64,
            ),
        ]
        for value, want, kind in cases:
            with self.subTest(value=value):
                self.assert_value(self.round_trip(value), want, kind)
        # DolphinDB's NULL STRING is the empty string: the client gives None for both.
        for null in (
            "",
            None,
            np.nan,
            np.datetime64("NaT", "D"),
            np.datetime64("NaT", "ns"),
            pd.NaT,
        ):
            with self.subTest(null=null):
                self.assertIsNone(self.round_trip(null))
                self.assertTrue(self.s.run("x == NULL"))

    def test_vectors_with_nulls(self):
        cases = [
            (np.array([True, False]), np.array([True, False])),
            (
                np.array([True, None, False], dtype=object),
                np.array([True, None, False], dtype=object),
            ),
            (np.array([1, 2, 3], dtype=np.int32), np.array([1, 2, 3], dtype=np.int32)),
            # INT_MIN is DolphinDB's INT NULL: the client reads it back as NaN.
            (
                np.array([1, np.iinfo(np.int32).min, 3], dtype=np.int32),
                np.array([1.0, np.nan, 3.0]),
            ),
            (np.array([1, 2**40, -5], dtype=np.int64), np.array([1, 2**40, -5], dtype=np.int64)),
            (np.array([1, np.iinfo(np.int64).min, 3]), np.array([1.0, np.nan, 3.0])),
            (np.array([1.5, np.nan, -2.0]), np.array([1.5, np.nan, -2.0])),
            (np.array(["a", None, ""], dtype=object), np.array(["a", "", ""], dtype=object)),
            (["a", "b", None], np.array(["a", "b", ""], dtype=object)),
            ([1.0, None], np.array([1.0, np.nan])),
            (pd.Series([1.0, None, 3.0]), np.array([1.0, np.nan, 3.0])),
        ] + [
            (v, v)
            for v in (
                np.array(["2023-01-02", "NaT", "1969-12-31"], dtype="datetime64[D]"),
                np.array(["2023-01-02T03:04:05", "NaT"], dtype="datetime64[s]"),
                np.array(["2023-01-02T03:04:05.123", "NaT"], dtype="datetime64[ms]"),
                np.array(["2023-01-02T03:04:05.123456789", "NaT"], dtype="datetime64[ns]"),
            )
        ]
        for value, want in cases:
            with self.subTest(value=value):
                got = self.round_trip(value)
                self.assertIsInstance(got, np.ndarray)
                self.assertEqual(got.dtype, want.dtype)
                if want.dtype == object:
                    self.assertEqual(list(got), list(want))
                else:
                    np.testing.assert_array_equal(got, want)
        # NULLs are NULLs on the server too: count skips them.
        self.s.upload({"x": np.array([1.5, np.nan, -2.0])})
        self.assertEqual(self.s.run("count(x)"), 2)
        self.assertEqual(self.s.run("size(x)"), 3)

    def test_a_dictionary(self):
        value = {"a": 1, "b": 2, "c": -3}
        got = self.round_trip(value)
        self.assertIsInstance(got, dict)
        self.assertEqual(got, value)
        got = self.round_trip({"x": "p", "y": "q"})
        self.assertEqual(got, {"x": "p", "y": "q"})
        self.assertEqual(self.s.run("x.y"), "q")

    def test_a_tuple(self):
        value = [1, "a", 2.5, None, True, np.datetime64("2023-01-02", "D")]
        got = self.round_trip(value)
        self.assertIsInstance(got, list)
        self.assertEqual(got, value)
        self.assertEqual(self.s.run("size(x)"), 6)
        # Nested: a vector in a tuple.
        got = self.round_trip([np.array([1, 2], dtype=np.int32), "b"])
        self.assertEqual(len(got), 2)
        np.testing.assert_array_equal(got[0], np.array([1, 2], dtype=np.int32))
        self.assertEqual(got[1], "b")

    def test_a_pair(self):
        self.assertEqual(self.s.run("1:3"), [1, 3])
        self.assertEqual(
            self.s.run("2023.01.01:2023.01.05"),
            [np.datetime64("2023-01-01", "D"), np.datetime64("2023-01-05", "D")],
        )
        self.assertEqual(self.s.run("'a':'b'"), ["a", "b"])

    def test_an_in_memory_table(self):
        got = self.round_trip(sent())
        assert_frames_equal(got, received())
        self.assertEqual(self.s.run("size(x)"), 4)
        got = self.s.run("select k, str from x where k >= 3")
        assert_frames_equal(got, received()[["k", "str"]].iloc[2:].reset_index(drop=True))

    def test_a_symbol_column_stays_a_symbol(self):
        df = pd.DataFrame({"s": ["a", "b", "a", None], "n": np.arange(4, dtype=np.int32)})
        df.__DolphinDB_Type__ = {"s": ddb.settings.DT_SYMBOL}
        self.s.upload({"x": df})
        defs = self.s.run("schema(x)")["colDefs"]
        self.assertEqual(list(defs["typeString"]), ["SYMBOL", "INT"])
        got = self.s.run("x")
        self.assertEqual(list(got["s"]), ["a", "b", "a", ""])
        # Without the hint pandas strings arrive as STRING.
        self.s.upload({"y": df[["n"]].assign(s=["a", "b", "a", None])})
        self.assertEqual(list(self.s.run("schema(y)")["colDefs"]["typeString"]), ["INT", "STRING"])


if __name__ == "__main__":
    run_tests()
