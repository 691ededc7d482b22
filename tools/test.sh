#!/usr/bin/env bash
# Set up (tools/setup.sh), lint with ruff, then run the tests.
#   tools/test.sh          the fast lane: every test not marked slow (a few minutes)
#   tools/test.sh --all    everything, the end-to-end tests too (what .ci/run calls)
# Further arguments go to pytest, e.g. tools/test.sh --all -k beam
set -euo pipefail
cd "$(dirname "$0")/.."
lane=(-m "not slow")
if [ "${1:-}" = --all ]; then
  lane=()
  shift
fi
tools/setup.sh
.venv/bin/ruff check asr tests
OMP_NUM_THREADS=2 .venv/bin/python -m pytest -q --durations=10 "${lane[@]}" "$@"
