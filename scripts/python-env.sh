#!/usr/bin/env bash
# The Python environment of the DolphinDB API tests (tests/tests/t110_dolphindb_api.rs):
# a virtual environment in $CARGO_TARGET_DIR/pyenv (default target/pyenv) holding
# tests/python/requirements.txt (DolphinDB's official Python client, numpy, pandas).
#
# Creates the environment when it is missing or broken, and installs the requirements when
# they changed since the last successful install (a stamp file keeps their hash and the
# interpreter's version). Quiet and fast when there is nothing to do; on failure, says what
# failed with pip's output. Safe to run again, and from two shells at once.
#
# The base interpreter is $PYTHON, else python3.11 when there is one, else python3 (3.9 or
# later; the pinned versions are known to install on 3.11). pip needs to reach PyPI (or the index of $PIP_INDEX_URL) when it
# installs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
venv=$target/pyenv
requirements=$root/tests/python/requirements.txt
stamp=$venv/.requirements.sha256
# The pinned versions have wheels for 3.11: prefer it where several Pythons are installed.
if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif command -v python3.11 >/dev/null 2>&1; then python=python3.11
else python=python3; fi

fail() { echo "python-env.sh: error: $*" >&2; exit 1; }

[ -f "$requirements" ] || fail "$requirements is missing"
command -v "$python" >/dev/null 2>&1 ||
  fail "no Python interpreter '$python' (install Python 3.11, or set PYTHON to one)"
version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') ||
  fail "'$python' does not run"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  fail "'$python' is Python $version; 3.9 or later is needed (3.11 is known to work)"

want="$(sha256sum "$requirements" | cut -d' ' -f1) python-$version"

# The fast path: nothing changed since the last install.
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
  "$venv/bin/python" -c '' 2>/dev/null; then
  exit 0
fi

mkdir -p "$target"
# One install at a time (two test runs started together wait for each other).
exec 9>"$target/pyenv.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# Another run may have finished the install while this one waited.
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
  "$venv/bin/python" -c '' 2>/dev/null; then
  exit 0
fi

log=$(mktemp "${TMPDIR:-/tmp}/xrepl-pyenv.XXXXXX")
trap 'rm -f "$log"' EXIT

# A missing, broken or other-version environment is made again from scratch.
have=$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null ||
  true)
if [ "$have" != "$version" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >"$log" 2>&1 || {
    cat "$log" >&2
    fail "cannot create the virtual environment $venv with $python (on Debian and Ubuntu: apt-get install python3-venv)"
  }
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  -r "$requirements" >"$log" 2>&1 || {
  cat "$log" >&2
  fail "pip could not install $requirements into $venv (output above)"
}
"$venv/bin/python" -c 'import dolphindb, numpy, pandas' >"$log" 2>&1 || {
  cat "$log" >&2
  fail "the packages of $requirements were installed into $venv but do not import (output above)"
}
echo "$want" >"$stamp"
