#!/usr/bin/env bash
# The chaos soak (see docs/reliability.md): a master and a slave cluster of real processes on
# 127.0.0.1, writers running a mixed workload on the master, and a seeded schedule of faults
# (SIGKILL and restart of the master controller, master data nodes, slave controller and slave
# data nodes; cuts of the slave -> master controller link and of the slave data nodes' links to
# the master data nodes, through TCP proxies; a kill while a link is cut; replication stopped
# and started). When the time is up the writers stop, the slave must catch up, and every check
# runs. Prints a JSON summary (and writes it to --out FILE); exits 0 when every check passed.
#
#   scripts/chaos.sh [--seed N] [--minutes M] [--writers K] [--out FILE] [--quiet]
#
# Defaults: seed 1, 1 minute, 4 writers. Release binaries; each run uses fresh temporary
# folders and free ports, and stops by itself (the faults for M minutes, then at most a few
# minutes of catching up and checks).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --workspace --bins
# Where cargo put them: $CARGO_TARGET_DIR (relative to the checkout) or target/.
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
XREPL_BIN_DIR="$target/release" exec "$target/release/xrepl-chaos" "$@"
