#!/usr/bin/env bash
# Robustness benchmark of the mini recipe's model (python -m asr.bench.robustness): WER under noise, babble,
# reverberation, a telephone channel, held-out voices, edge silence and real recordings, plus non-speech and
# looping counts, decoded with the recipe's search. Run it after recipes/mini/run.sh.
#
#   recipes/mini/robustness.sh [--stage N] [--stop-stage M] [--data DIR] [--exp DIR] [--baseline-exp DIR]
#
# Stages: 1 a baseline model trained without augmentation (the mini recipe's stages 1-5 into <baseline-exp> with
# augment=none; skipped when it exists), 2 the benchmark of <exp>/model against it, written to
# <exp>/robustness.json. --stage 2 benchmarks against whatever baseline exists, or none.
set -euo pipefail

stage=1
stop_stage=2
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp
baseline=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --baseline-exp) baseline=$2; shift 2 ;;
    *) echo "robustness.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
baseline=${baseline:-$exp/baseline}
# real LibriSpeech recordings shipped with the repository's tests
real=$here/../../tests/data/librispeech-real

# shellcheck source=recipes/stages.sh
source "$here/../stages.sh"  # run_stage

train_baseline() {
  "$here/run.sh" --stop-stage 5 --data "$data" --exp "$baseline" --augment none
}

benchmark() {
  local against=() model=$baseline/las
  if [ -f "$baseline/las_ctc/config.yaml" ]; then model=$baseline/las_ctc; fi
  if [ -f "$model/model.pt" ]; then
    against=(--baseline "$model" --baseline-lm "$baseline/lm")
  fi
  python -m asr.bench.robustness --model "$exp/model" --manifests "$data/manifests" --lm "$exp/lm" \
    --real "$real" "${against[@]}" --out "$exp/robustness.json"
}

run_stage 1 baseline train_baseline
run_stage 2 robustness benchmark
