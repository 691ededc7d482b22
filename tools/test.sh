#!/usr/bin/env bash
# Set up (tools/setup.sh), lint with ruff, run the whole test suite. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
.venv/bin/ruff check asr tests
OMP_NUM_THREADS=2 .venv/bin/python -m pytest -q "$@"
