#!/usr/bin/env bash
# Mini recipe: synthesize an offline LibriSpeech-layout corpus with espeak-ng, prepare it, train a character
# LM and write a word lexicon, train LAS with location-aware attention, decode (beam search with CTC, the LM
# and the lexicon) and score the test parts, export a model directory.
#
#   recipes/mini/run.sh [--stage N] [--stop-stage M] [--data DIR] [--exp DIR]
#                       [--synth "k=v ..."] [--lm "k=v ..."] [--train "k=v ..."] [--decode "k=v ..."]
#
# Stages: 1 synthesize, 2 prepare, 3 lm, 4 train, 5 decode, 6 score, 7 export. Each is idempotent: finished
# audio is not re-rendered, existing manifests are kept, a finished LM or lexicon is kept, training resumes from its
# last checkpoint. Every setting lives in conf/ (synth.yaml, lm.yaml, train.yaml, decode.yaml); the options
# add Hydra overrides. Decoding uses the LM of <exp>/lm when there is one.
set -euo pipefail

stage=1
stop_stage=7
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp
synth_opts=""
train_opts=""
lm_opts=""
decode_opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --synth) synth_opts=$2; shift 2 ;;
    --train) train_opts=$2; shift 2 ;;
    --lm) lm_opts=$2; shift 2 ;;
    --decode) decode_opts=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

train=train-synth
tests="test-seen test-unseen"
subsets="$train dev-seen dev-unseen $tests"
manifests=$data/manifests
model=$exp/las
lm=$exp/lm
# the LM also reads the bundled LibriSpeech transcripts that no synthesized utterance speaks (asr-train-lm
# removes every dev and test sentence from its training text)
resources=$(python -c 'import asr, pathlib; print(pathlib.Path(asr.__file__).parent / "resources/librispeech-text")')
mkdir -p "$exp"

# shellcheck source=recipes/stages.sh
source "$here/../stages.sh"  # run_stage

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

train_lm() {
  # the character LM and the lexicon read the same text (conf/lm.yaml); each is made once
  local text=(data.manifest_dir="$manifests" data.train="$train" data.dev=dev-seen
              "extra_text=[$resources/dev-clean.trans.txt,$resources/test-other.trans.txt]")
  if [ -f "$lm/lm.pt" ]; then
    echo "LM exists: $lm"
  else
    # shellcheck disable=SC2086
    asr-train-lm out_dir="$lm" "${text[@]}" $lm_opts
  fi
  if [ -f "$lm/lexicon.tsv" ] && [ -f "$lm/bigrams.tsv" ]; then
    echo "lexicon exists: $lm/lexicon.tsv, $lm/bigrams.tsv"
  else
    # shellcheck disable=SC2086
    asr-lexicon out_dir="$lm" "${text[@]}" $lm_opts
  fi
}

decode() {
  local with_lm=""
  if [ -f "$lm/lm.pt" ]; then with_lm="search.lm_dir=$lm"; fi
  for part in $tests; do
    # shellcheck disable=SC2086
    asr-decode model_dir="$model" manifest="$manifests/$part.jsonl" out_dir="$model/decode/$part" \
      plot_alignments=3 $with_lm $decode_opts
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
run_stage 3 lm train_lm
run_stage 4 train train_model
run_stage 5 decode decode
run_stage 6 score score
run_stage 7 export export_model

if [ -f "$exp/scores.json" ]; then
  echo "=== results ($exp/results.json) ==="
  python -m asr.cli.results collect --scores "$exp/scores.json" --decode "$model/decode" \
    --stages "$exp/stage_seconds.json" --out "$exp/results.json"
fi
