#!/usr/bin/env bash
# LibriSpeech recipe: download the corpus (and the MUSAN and RIRS_NOISES noise corpora) from openslr, prepare it,
# train LAS (or MoChA), average checkpoints, decode every dev and test subset, score, and write exp/results.json.
#
#   recipes/librispeech/run.sh [--stage N] [--stop-stage M] [--data DIR] [--exp DIR] [--ngpu N]
#                              [--config NAME] [--data-opts "key=value ..."] [--augment musan|none]
#                              [--train "key=value ..."] [--average N] [--ctc "key=value ..."]
#                              [--decode "key=value ..."]
#
# Stages: 1 download, 2 extract, 3 noise download (MUSAN, RIRS_NOISES), 4 noise extract, 5 manifests,
# 6 normalization stats, 7 tokenizer, 8 train, 9 average checkpoints, 10 ctc (fit the decoding CTC head),
# 11 decode, 12 score, 13 results. Each is idempotent: verified archives are not fetched again (a partial download
# resumes), finished extractions are marked, manifests/stats/tokenizer are kept, training resumes from last.pt, a
# fitted head newer than its model is kept.
#
# Settings:
#   conf/librispeech/data.yaml   subsets (train-clean-100 by default; 960 h or mini LibriSpeech by override),
#                                openslr URLs and MD5 sums (the noise corpora's too), the tokenizer (characters, or
#                                SentencePiece unigram/bpe)
#                                --data-opts passes Hydra overrides to it, e.g.
#                                --data-opts "train=[train-clean-5] dev=[dev-clean-2] test=[dev-clean-2]"   (quick)
#                                --data-opts "tokenizer.type=unigram tokenizer.vocab_size=5000"
#   --augment musan|none         multi-condition training (default musan): stage 8 adds noise from MUSAN and
#                                reverberation from RIRS_NOISES (conf/augment/musan.yaml, the corpora that stages 3
#                                and 4 put in DATA/musan and DATA/RIRS_NOISES); none trains on clean speech and
#                                skips stages 3 and 4
#   conf/librispeech/<NAME>.yaml the model and training recipe (--config, default las_100h; also las_960h,
#                                mocha_100h, mocha_960h): each lists `train` in its defaults and overrides it, and
#                                names the paper it follows. --train adds Hydra overrides on top, e.g.
#                                --train "train.precision=bf16 train.accum_steps=2 data.speed_perturb=null"
#   conf/fit_ctc.yaml            stage 10 (asr-fit-ctc: a CTC head fitted on the frozen listener for beam search,
#                                the listener run again in every pass); --ctc adds overrides. To decode with the
#                                trained head instead, run --stop-stage 9, then --stage 11
#   conf/decode.yaml             decoding; --decode adds overrides
#
# Needs: about 16 GB of disk for train-clean-100 + dev/test (7.7 GB of archives in DATA/archives, which can be
# deleted after extraction, and as much extracted) and about 25 GB more for the noise corpora (12.4 GB of
# archives, about as much extracted; none with --augment none), network access to openslr.org (or a mirror:
# --data-opts base_url=...), and a GPU to train in reasonable time. With --ngpu N > 1 training runs under `torchrun --nproc_per_node=N`.
# Checkpoint averaging uses `asr-average` when it is installed (--average 0 skips it; decoding then uses the best
# dev epoch's model.pt).
set -euo pipefail

stage=1
stop_stage=13
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
exp=$here/exp
ngpu=1
config=las_100h
data_opts=""
train_opts=""
decode_opts=""
ctc_opts=""
average=10
augment=musan
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --ngpu) ngpu=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --data-opts) data_opts=$2; shift 2 ;;
    --train) train_opts=$2; shift 2 ;;
    --decode) decode_opts=$2; shift 2 ;;
    --ctc) ctc_opts=$2; shift 2 ;;
    --average) average=$2; shift 2 ;;
    --augment) augment=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$augment" in
  musan|none) ;;
  *) echo "run.sh: --augment is musan or none, not $augment" >&2; exit 2 ;;
esac

# Values of conf/librispeech/data.yaml with the --data-opts overrides applied, one line each.
# shellcheck disable=SC2086
values=$(asr-download --get train --get dev --get test --get tokenizer.type --get tokenizer.vocab_size \
  --get tokenizer.character_coverage --get noise.musan.folder --get noise.rirs_noises.folder out_dir="$data" \
  $data_opts)
mapfile -t conf <<< "$values"
train_sets=${conf[0]} dev_sets=${conf[1]} test_sets=${conf[2]}
tokenizer=${conf[3]} vocab_size=${conf[4]} coverage=${conf[5]}
noise_dir=$data/${conf[6]} rir_dir=$data/${conf[7]}
# the training audio of stage 8, and of the CTC head's fit in stage 10 (it learns from the same listener outputs)
augment_args=(augment=none)
if [ "$augment" = musan ]; then
  augment_args=(augment=musan augment.noise_dir="$noise_dir" augment.rir_dir="$rir_dir")
fi
valid=${dev_sets%% *}  # the first dev subset picks the best epoch
all_sets=$(echo "$train_sets $dev_sets $test_sets" | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')
eval_sets=$(echo "$dev_sets $test_sets" | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')
manifests=$data/manifests
model=$exp/las
with_ctc=$exp/las_ctc  # stage 10's model: the trained (or averaged) one with the fitted CTC head
mkdir -p "$exp"

# shellcheck source=recipes/stages.sh
source "$here/../stages.sh"  # run_stage

download() {
  # shellcheck disable=SC2086
  asr-download --step fetch out_dir="$data" $data_opts
}

extract() {
  # shellcheck disable=SC2086
  asr-download --step extract out_dir="$data" $data_opts
}

noise_download() {
  # shellcheck disable=SC2086
  asr-download --noise --step fetch out_dir="$data" $data_opts
}

noise_extract() {
  # shellcheck disable=SC2086
  asr-download --noise --step extract out_dir="$data" $data_opts
}

noise_stage() {  # noise_stage N NAME COMMAND...: run_stage, or a note that --augment none needs no noise corpora
  if [ "$augment" != none ]; then
    run_stage "$@"
  elif [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
    echo "=== stage $1: $2 skipped (--augment none) ==="
  fi
}

prepare() {  # prepare STEP: manifests, stats or tokenizer (asr-prepare skips what exists)
  # shellcheck disable=SC2086
  asr-prepare --corpus "$data/LibriSpeech" --subsets $all_sets --train $train_sets --combine train \
    --out "$manifests" --steps "$1" --tokenizer "$tokenizer" --vocab-size "$vocab_size" --character-coverage "$coverage"
}

train_model() {
  local args=(--config-name "librispeech/$config" exp_dir="$model" data.manifest_dir="$manifests" data.train=train
              data.dev="$valid" resume=true "${augment_args[@]}")
  if [ "$ngpu" -gt 1 ]; then
    # shellcheck disable=SC2086
    torchrun --standalone --nproc_per_node="$ngpu" -m asr.cli.train "${args[@]}" $train_opts
  else
    # shellcheck disable=SC2086
    asr-train "${args[@]}" $train_opts
  fi
}

average_checkpoints() {
  if [ "$average" -le 0 ]; then
    echo "averaging off (--average 0): decoding $model/model.pt"
  elif ! command -v asr-average > /dev/null; then
    echo "asr-average is not installed: decoding $model/model.pt (the best dev epoch) instead of an average"
  else
    asr-average "$model" --last "$average" --out "$exp/average.pt"
    asr-export "$model" "$exp/model_avg" --weights "$exp/average.pt"
  fi
}

trained_dir() {  # the trained model: the average when the average stage made one
  if [ -f "$exp/model_avg/model.pt" ]; then echo "$exp/model_avg"; else echo "$model"; fi
}

ctc_is_current() {  # stage 10's model exists and was fitted after the trained model was written
  [ -f "$with_ctc/config.yaml" ] && [ "$with_ctc/config.yaml" -nt "$(trained_dir)/model.pt" ]
}

fit_ctc() {
  if ctc_is_current; then
    echo "CTC head exists: $with_ctc"
  else
    # every pass of conf/fit_ctc.yaml: its wall-clock budget is the mini recipe's
    # shellcheck disable=SC2086
    asr-fit-ctc model_dir="$(trained_dir)" out_dir="$with_ctc" data.manifest_dir="$manifests" data.train=train \
      data.dev="$valid" fit.cache_listener=false fit.max_minutes=null "${augment_args[@]}" $ctc_opts
  fi
}

decode_dir() {  # the model directory to decode: stage 10's when it is current, else the trained one
  if ctc_is_current; then echo "$with_ctc"; else trained_dir; fi
}

decode() {
  local dir
  dir=$(decode_dir)
  for part in $eval_sets; do
    # shellcheck disable=SC2086
    asr-decode model_dir="$dir" manifest="$manifests/$part.jsonl" out_dir="$exp/decode/$part" $decode_opts
  done
}

score() {
  local pairs=()
  for part in $eval_sets; do
    pairs+=(--pair "$part" "$exp/decode/$part/ref.txt" "$exp/decode/$part/hyp.txt")
  done
  asr-score "${pairs[@]}" --json "$exp/scores.json"
}

results() {
  python -m asr.cli.results collect --scores "$exp/scores.json" --decode "$exp/decode" \
    --stages "$exp/stage_seconds.json" --out "$exp/results.json"
}

run_stage 1 download download
run_stage 2 extract extract
noise_stage 3 noise_download noise_download
noise_stage 4 noise_extract noise_extract
run_stage 5 manifests prepare manifests
run_stage 6 stats prepare stats
run_stage 7 tokenizer prepare tokenizer
run_stage 8 train train_model
run_stage 9 average average_checkpoints
run_stage 10 ctc fit_ctc
run_stage 11 decode decode
run_stage 12 score score
run_stage 13 results results
