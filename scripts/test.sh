#!/usr/bin/env bash
# The test suite: builds the binaries the multi-process tests start, then runs every test
# (unit tests, in-process tests and the multi-process tests under tests/).
# Extra arguments go to cargo nextest (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --locked
scripts/python-env.sh  # DolphinDB's Python client for tests/tests/t110_dolphindb_api.rs
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test" >&2
  cargo test --workspace --locked --no-fail-fast "$@"
fi
