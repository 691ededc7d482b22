#!/usr/bin/env bash
# Create .venv and install the toolkit with its test and synthesis extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# torch first and pinned: this release is on the local disk here; torchaudio's own build works beside it
.venv/bin/pip install -q "torch==2.14.1" "torchaudio==2.11.0"
.venv/bin/pip install -q -e ".[dev]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'))"
