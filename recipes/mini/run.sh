#!/usr/bin/env bash
# Mini recipe: synthesize an offline LibriSpeech-layout corpus with espeak-ng, prepare it, train a character
# LM and write a word lexicon, train LAS with location-aware attention, fit a stronger CTC head on its listener
# for decoding, decode (beam search with CTC, the LM and the lexicon) and score the test parts, export a model
# directory.
#
#   recipes/mini/run.sh [--stage N] [--stop-stage M] [--data DIR] [--exp DIR] [--augment multi|none]
#                       [--synth "k=v ..."] [--lm "k=v ..."] [--train "k=v ..."] [--ctc "k=v ..."]
#                       [--decode "k=v ..."]
#
# Stages: 1 synthesize, 2 prepare, 3 lm, 4 train, 5 ctc (fit the decoding CTC head), 6 decode, 7 score, 8 export.
# Each is idempotent: finished audio is not re-rendered, existing manifests are kept, a finished LM, lexicon or
# CTC head is kept, training resumes from its last checkpoint. LAS trains multi-condition (conf/augment/multi.yaml:
# generated noise, babble, simulated rooms, telephone and band limits, gain, pitch) unless --augment none. Every
# setting lives in conf/: the recipe's own in conf/mini/ (las.yaml, lm.yaml, fit_ctc.yaml: the time budgets and what
# differs from the defaults), the rest in synth.yaml, lm.yaml, train.yaml, augment/, fit_ctc.yaml, decode.yaml; the
# options add Hydra overrides. Decoding uses the LM of <exp>/lm when there is one, and the model of <exp>/las_ctc (stage 5)
# when there is one, else <exp>/las.
set -euo pipefail

stage=1
stop_stage=8
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp
synth_opts=""
train_opts=""
lm_opts=""
ctc_opts=""
decode_opts=""
augment=multi
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --synth) synth_opts=$2; shift 2 ;;
    --augment) augment=$2; shift 2 ;;
    --train) train_opts=$2; shift 2 ;;
    --lm) lm_opts=$2; shift 2 ;;
    --ctc) ctc_opts=$2; shift 2 ;;
    --decode) decode_opts=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

train=train-synth
tests="test-seen test-unseen"
subsets="$train dev-seen dev-unseen $tests"
manifests=$data/manifests
trained=$exp/las    # asr-train's experiment directory
with_ctc=$exp/las_ctc  # the same model with the CTC head of stage 5
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
  asr-train --config-name mini/las exp_dir="$trained" data.manifest_dir="$manifests" data.train="$train" data.dev=dev-seen resume=true \
    augment="$augment" $train_opts
}

train_lm() {
  # the character LM and the lexicon read the same text (conf/lm.yaml); each is made once
  local text=(data.manifest_dir="$manifests" data.train="$train" data.dev=dev-seen
              "extra_text=[$resources/dev-clean.trans.txt,$resources/test-other.trans.txt]")
  if [ -f "$lm/lm.pt" ]; then
    echo "LM exists: $lm"
  else
    # shellcheck disable=SC2086
    asr-train-lm --config-name mini/lm out_dir="$lm" "${text[@]}" $lm_opts
  fi
  if [ -f "$lm/lexicon.tsv" ] && [ -f "$lm/bigrams.tsv" ]; then
    echo "lexicon exists: $lm/lexicon.tsv, $lm/bigrams.tsv"
  else
    # shellcheck disable=SC2086
    asr-lexicon out_dir="$lm" "${text[@]}" $lm_opts
  fi
}

fit_ctc() {
  if [ -f "$with_ctc/config.yaml" ] && [ "$with_ctc/config.yaml" -nt "$trained/model.pt" ]; then
    echo "CTC head exists: $with_ctc"
  else
    # shellcheck disable=SC2086
    asr-fit-ctc --config-name mini/fit_ctc model_dir="$trained" out_dir="$with_ctc" data.manifest_dir="$manifests" data.train="$train" \
      data.dev=dev-seen augment="$augment" $ctc_opts
  fi
}

model_dir() {  # the model that decoding, scoring and export use
  if [ -f "$with_ctc/config.yaml" ]; then echo "$with_ctc"; else echo "$trained"; fi
}

decode() {
  local with_lm="" model
  model=$(model_dir)
  if [ -f "$lm/lm.pt" ]; then with_lm="search.lm_dir=$lm"; fi
  for part in $tests; do
    # shellcheck disable=SC2086
    asr-decode model_dir="$model" manifest="$manifests/$part.jsonl" out_dir="$model/decode/$part" \
      plot_alignments=3 $with_lm $decode_opts
  done
}

score() {
  local pairs=() model
  model=$(model_dir)
  for part in $tests; do
    pairs+=(--pair "$part" "$model/decode/$part/ref.txt" "$model/decode/$part/hyp.txt")
  done
  asr-score "${pairs[@]}" --json "$exp/scores.json"
}

export_model() {
  # the model directory carries the search of stage 6 (with the LM and lexicon) and a model card with the
  # training data and the scores of stage 7
  local decode=() results=()
  if [ -f "$lm/lm.pt" ]; then decode+=("search.lm_dir=$lm"); fi
  # shellcheck disable=SC2206
  decode+=($decode_opts)
  if [ -f "$exp/scores.json" ]; then results=(--results "$exp/scores.json"); fi
  asr-export "$(model_dir)" "$exp/model" --train-manifest "$manifests/$train.jsonl" "${results[@]}" \
    --decode "${decode[@]}"
  # the exported directory must transcribe on its own
  asr-transcribe --model "$exp/model" "$(head -n 1 "$manifests/test-seen.jsonl" | python -c 'import json,sys; print(json.load(sys.stdin)["audio"])')"
}

run_stage 1 synthesize synthesize
run_stage 2 prepare prepare
run_stage 3 lm train_lm
run_stage 4 train train_model
run_stage 5 ctc fit_ctc
run_stage 6 decode decode
run_stage 7 score score
run_stage 8 export export_model

if [ -f "$exp/scores.json" ]; then
  echo "=== results ($exp/results.json) ==="
  python -m asr.cli.results collect --scores "$exp/scores.json" --decode "$(model_dir)/decode" \
    --stages "$exp/stage_seconds.json" --out "$exp/results.json"
fi
