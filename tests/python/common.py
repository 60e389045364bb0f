"""What the DolphinDB API tests share: where the data nodes are, sessions, comparisons.

The tests run DolphinDB's official Python client (tests/python/requirements.txt) against the
data nodes of clusters that tests/tests/t110_dolphindb_api.rs starts; it passes their
addresses as host:port in environment variables:

    XREPL_HOST, XREPL_HOST2    two data nodes of one cluster (test_api.py, test_types.py)
    XREPL_MASTER, XREPL_SLAVE  a data node of a master cluster and one of its slave
                               (test_tutorial.py)

By hand, against clusters started with scripts/cluster.sh (scripts/python-env.sh makes the
environment):

    XREPL_HOST=127.0.0.1:8849 XREPL_HOST2=127.0.0.1:8850 \\
        target/pyenv/bin/python tests/python/test_api.py -v
"""

import os
import sys
import time
import unittest
import warnings

import dolphindb as ddb
import numpy as np
import pandas as pd

USER = "admin"
PASSWORD = "123456"
CLIENT_VERSION = "3.0.6.1"

# The client prints its own log lines on failures it reports by a return value; the tests
# assert on those return values. Its DeprecationWarnings (TableAppender's dbPath, ...) are for
# the names DolphinDB users' code has, which the tests use on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)
# `df.__DolphinDB_Type__ = {...}` is how the client is told a column's type; pandas warns.
warnings.filterwarnings("ignore", message="Pandas doesn't allow columns to be created")


def site(var):
    """(host, port) of the node named by the environment variable `var`."""
    value = os.environ.get(var)
    if not value:
        sys.exit(
            f"{var} is not set: the tests run from tests/tests/t110_dolphindb_api.rs, or by hand "
            f"with {var}=host:port (see tests/python/common.py)"
        )
    host, _, port = value.rpartition(":")
    return host, int(port)


def connect(var="XREPL_HOST", user=USER, password=PASSWORD):
    """A session logged in at the node of `var`, as DolphinDB users open one."""
    host, port = site(var)
    s = ddb.Session()
    assert s.connect(host, port, user, password), f"connect to {host}:{port} as {user} failed"
    return s


def check_client():
    """The tests are written against one client version: another one fails them loudly."""
    assert ddb.__version__ == CLIENT_VERSION, (
        f"dolphindb {ddb.__version__} is installed, the tests expect {CLIENT_VERSION}: "
        "run scripts/python-env.sh"
    )


def wait_for(what, check, limit=60.0):
    """Calls `check` every 0.2 s until it returns something true, which it returns; fails
    after `limit` seconds with the last value (or exception) seen."""
    start = time.monotonic()
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # the last reason is shown below
            last = e
        if time.monotonic() - start > limit:
            raise AssertionError(f"timed out after {limit} s waiting for {what}; last: {last!r}")
        time.sleep(0.2)


def sorted_frame(df, by):
    """`df` ordered by the columns `by`, with a fresh index (rows of a select come in no
    promised order)."""
    return df.sort_values(by, kind="stable").reset_index(drop=True)


def assert_frames_equal(got, want, **kwargs):
    """Same columns, dtypes and values (NULLs in the same places); kwargs go to pandas."""
    pd.testing.assert_frame_equal(got, want, **kwargs)


class SessionTest(unittest.TestCase):
    """Tests that share one admin session of XREPL_HOST, `cls.s`, opened once per class."""

    @classmethod
    def setUpClass(cls):
        cls.s = connect()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def assert_value(self, got, want, kind):
        """`got` is a `kind` equal to `want` (a numpy datetime64 of the same unit, too)."""
        self.assertIsInstance(got, kind)
        self.assertEqual(got, want)
        if kind is np.datetime64:
            self.assertEqual(got.dtype, want.dtype)


def run_tests():
    """unittest's main, after the client check; exits non-zero when a test fails."""
    check_client()
    # A runner of our own: unittest.main's would reset the warning filters above.
    unittest.main(testRunner=unittest.TextTestRunner(verbosity=2, warnings=None))


__all__ = [
    "ddb",
    "np",
    "pd",
    "USER",
    "PASSWORD",
    "site",
    "connect",
    "check_client",
    "wait_for",
    "sorted_frame",
    "assert_frames_equal",
    "run_tests",
]
