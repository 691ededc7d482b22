#!/usr/bin/env bash
# Mini recipe: synthesize an offline LibriSpeech-layout corpus with espeak-ng, prepare it, train LAS with
# location-aware attention, decode and score the test parts, export a model directory.
#
#   recipes/mini/run.sh [--stage N] [--stop-stage M] [--data DIR] [--exp DIR]
#                       [--synth "key=value ..."] [--train "key=value ..."]
#
# Stages: 1 synthesize, 2 prepare, 3 train, 4 decode, 5 score, 6 export. Each is idempotent: finished
# audio is not re-rendered, existing manifests are kept, training resumes from its last checkpoint.
# Every setting lives in conf/ (synth.yaml, train.yaml, decode.yaml); --synth/--train add Hydra overrides.
set -euo pipefail

stage=1
stop_stage=6
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp
synth_opts=""
train_opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --synth) synth_opts=$2; shift 2 ;;
    --train) train_opts=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

train=train-synth
tests="test-seen test-unseen"
subsets="$train dev-seen dev-unseen $tests"
manifests=$data/manifests
model=$exp/las
mkdir -p "$exp"

run_stage() {  # run_stage N NAME COMMAND...: run a numbered stage if selected, and record its seconds
  local n=$1 name=$2; shift 2
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    echo "=== stage $n: $name ==="
    local start=$SECONDS
    "$@"
    python -m asr.cli.results stage --file "$exp/stage_seconds.json" --name "$name" --seconds $((SECONDS - start))
  fi
}

synthesize() {
  # shellcheck disable=SC2086
  asr-synth out_dir="$data" $synth_opts
}

prepare() {
  # shellcheck disable=SC2086
  asr-prepare --corpus "$data/LibriSpeech" --subsets $subsets --train "$train" --out "$manifests"
}

train_model() {
  # shellcheck disable=SC2086
  asr-train exp_dir="$model" data.manifest_dir="$manifests" data.train="$train" data.dev=dev-seen resume=true $train_opts
}

decode() {
  for part in $tests; do
    asr-decode model_dir="$model" manifest="$manifests/$part.jsonl" out_dir="$model/decode/$part" plot_alignments=3
  done
}

score() {
  local pairs=()
  for part in $tests; do
    pairs+=(--pair "$part" "$model/decode/$part/ref.txt" "$model/decode/$part/hyp.txt")
  done
  asr-score "${pairs[@]}" --json "$exp/scores.json"
}

export_model() {
  asr-export "$model" "$exp/model"
  # the exported directory must transcribe on its own
  asr-transcribe --model "$exp/model" "$(head -n 1 "$manifests/test-seen.jsonl" | python -c 'import json,sys; print(json.load(sys.stdin)["audio"])')"
}

run_stage 1 synthesize synthesize
run_stage 2 prepare prepare
run_stage 3 train train_model
run_stage 4 decode decode
run_stage 5 score score
run_stage 6 export export_model

if [ -f "$exp/scores.json" ]; then
  echo "=== results ($exp/results.json) ==="
  python -m asr.cli.results collect --scores "$exp/scores.json" --decode "$model/decode" \
    --stages "$exp/stage_seconds.json" --out "$exp/results.json"
fi
