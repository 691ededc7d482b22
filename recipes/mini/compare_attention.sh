#!/usr/bin/env bash
# Train, decode and score the mini recipe once per attention variant, side by side.
#
#   recipes/mini/compare_attention.sh [--variants "location monotonic mocha multihead windowed"]
#                                     [--jobs N] [--data DIR] [--exp DIR] [--synth "k=v ..."]
#                                     [--train "k=v ..."] [--decode "k=v ..."]
#
# Writes <exp>/<variant>/ (a full mini-recipe experiment each) and <exp>/results.json: per variant the
# test-seen wer and cer (percent), the test-unseen ones, train_seconds and the decoding rtf.
# --jobs N trains N variants at once (give each its share of the cores, e.g. --train "threads=1"; with a
# wall-clock budget a shared machine gives each fewer epochs, so compare by epochs:
# --train "train.max_minutes=null train.max_epochs=7").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp/attention
variants="location monotonic mocha multihead windowed"
jobs=1
train_opts=""
synth_opts=""
decode_opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --variants) variants=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --train) train_opts=$2; shift 2 ;;
    --synth) synth_opts=$2; shift 2 ;;
    --decode) decode_opts=$2; shift 2 ;;
    *) echo "compare_attention.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# the corpus once (idempotent), then train, decode and score per variant (beam search with CTC, no LM: the
# comparison is of attentions)
"$here/run.sh" --stop-stage 2 --data "$data" --exp "$exp/corpus" --synth "$synth_opts"
one_variant() {
  echo "=== attention: $1 ==="
  # stage 5's refitted CTC head is left out: each attention is decoded with the CTC head it was trained with
  "$here/run.sh" --stage 4 --stop-stage 4 --data "$data" --exp "$exp/$1" --train "model/attention=$1 $train_opts"
  "$here/run.sh" --stage 6 --stop-stage 7 --data "$data" --exp "$exp/$1" --decode "$decode_opts"
}
running=0
for variant in $variants; do
  if [ "$jobs" -le 1 ]; then
    one_variant "$variant"
    continue
  fi
  mkdir -p "$exp/$variant"
  one_variant "$variant" > "$exp/$variant/log.txt" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n  # set -e: a failed variant stops the comparison
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n
  running=$((running - 1))
done
# shellcheck disable=SC2086
python -m asr.cli.results compare --exp "$exp" --variants $variants --out "$exp/results.json"
