"""Decoding benchmark of a model directory: WER and real-time factor of each search, and long recordings.

    python -m asr.bench.decode --model recipes/mini/exp/model --manifests recipes/mini/data/manifests \
        [--parts test-seen test-unseen] [--lm recipes/mini/exp/lm] [--long-seconds 180]

Searches: greedy; the CTC head's best path (when the model has one); beam 8 alone and with CTC weight 0.3 (and
conf/decode.yaml's CTC weight when it differs); with CTC 0.3 and the LM (when --lm is given), and with the LM and
the word lexicon (when the LM directory has a lexicon.tsv), and the recipe's search (conf/decode.yaml's beam size
and weights, with the LM and lexicon).
Settings other than those come from conf/decode.yaml `search`. Long audio: the test utterances of the first
part, joined with 0.3 s of silence into recordings of at least --long-seconds, decoded whole (greedy, plain and
with a decode-time attention window when the model's attention is soft) and split at pauses by the segmenter
(conf/decode.yaml `segmenter` and `vad`); each is scored against the joined references next to the same
utterances decoded one by one.
Writes --out (decode_bench.json in the working directory).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.nn.utils.rnn import pad_sequence

from .. import compose_config
from ..data.batching import FeatureDataset
from ..data.librispeech import read_manifest
from ..decoding.dataset import decode_and_score
from ..decoding.search import Search
from ..frontend import SAMPLE_RATE, load_audio
from ..modeldir import load_model_dir
from ..models.attention.windowed import add_decode_window
from ..models.lexicon_lm import LEXICON_FILE
from ..scoring import score

GAP_SECONDS = 0.3


def search_config(**overrides) -> Search:
    cfg = OmegaConf.to_container(compose_config("decode").search)
    cfg.update(overrides)
    return Search.from_config(cfg)


def decode_part(model, tokenizer, logmel, norm, utts, search: Search, max_frames: int) -> dict:
    """WER, CER and the RTF of the search alone (features are not decoding time) on one part."""

    def tokens(model, feats, lengths):
        return [h.tokens for h in search(model, feats, lengths)]

    decoded = decode_and_score(model, FeatureDataset(utts, tokenizer, logmel, norm, cache=False), tokens, max_frames)
    seconds = decoded["search_seconds"]
    return {"wer": decoded["wer"], "cer": decoded["cer"], "rtf": round(seconds / decoded["audio_seconds"], 5),
            "seconds": round(seconds, 2), "utterances": len(utts), "hyps": decoded["hyps"]}


def long_recordings(utts, min_seconds: float) -> list[tuple[torch.Tensor, list]]:
    """Join utterances in manifest order into recordings of at least min_seconds: (samples, utterances)."""
    gap = torch.zeros(int(GAP_SECONDS * SAMPLE_RATE))
    recordings, wavs, members, total = [], [], [], 0.0
    for u in utts:
        wavs += [load_audio(u.audio), gap]
        members.append(u)
        total += u.duration + GAP_SECONDS
        if total >= min_seconds:
            recordings.append((torch.cat(wavs[:-1]), members))
            wavs, members, total = [], [], 0.0
    return recordings


def long_audio(model, tokenizer, logmel, norm, utts, one_by_one: dict, min_seconds: float) -> dict:
    """WER of long recordings decoded whole and segmented, against the same utterances one by one."""
    from ..segmenter import SegmenterOptions
    from ..transcriber import Transcriber
    from ..vad import VadOptions

    recordings = long_recordings(utts, min_seconds)
    if not recordings:
        return {"note": f"fewer than {min_seconds} s of test audio"}
    refs = {f"long{i}": " ".join(u.text for u in members) for i, (_, members) in enumerate(recordings)}
    separate = {f"long{i}": " ".join(one_by_one[u.id] for u in members) for i, (_, members) in enumerate(recordings)}
    result = {"recordings": len(recordings), "seconds_each": [round(len(w) / SAMPLE_RATE, 1) for w, _ in recordings],
              "one_by_one": score(refs, separate)["wer"]}
    conf = compose_config("decode")
    segmented = Transcriber(model, tokenizer, logmel, norm, segmenter=SegmenterOptions(**conf.segmenter),
                            vad=VadOptions(**conf.vad))
    start = time.perf_counter()
    texts = segmented.transcribe_many([w for w, _ in recordings])
    result["segmented"] = score(refs, {f"long{i}": t.text for i, t in enumerate(texts)})["wer"]
    result["segmented_rtf"] = round((time.perf_counter() - start) / sum(len(w) for w, _ in recordings)
                                    * SAMPLE_RATE, 5)
    trained = model.speller.attention
    variants = {"whole": trained}
    # a soft attention may jump over minutes of audio: a decode-time window keeps it local
    if add_decode_window(model):  # the window of conf/model/attention/windowed.yaml
        variants["whole_windowed"] = model.speller.attention
    features = [norm(logmel(wav)) for wav, _ in recordings]
    try:
        for name, attention in variants.items():
            model.speller.attention = attention
            whole = {}
            for i, feats in enumerate(features):
                hyp = Search()(model, pad_sequence([feats], batch_first=True), torch.tensor([len(feats)]),
                               symbols=tokenizer.symbols)
                whole[f"long{i}"] = tokenizer.decode(hyp[0].tokens)
            result[name] = score(refs, whole)["wer"]
    finally:
        model.speller.attention = trained
    for name in ("segmented", *variants):
        result[f"{name}_ratio"] = round(result[name] / max(result["one_by_one"], 1e-9), 3)
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m asr.bench.decode", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model directory to decode with")
    p.add_argument("--manifests", required=True, help="the folder of prepared manifests (asr-prepare --out)")
    p.add_argument("--parts", nargs="+", default=["test-seen", "test-unseen"])
    p.add_argument("--lm", default=None, help="an LM directory (asr-train-lm) for the beam + LM row")
    p.add_argument("--lm-weight", type=float, default=None, help="default: conf/decode.yaml's")
    p.add_argument("--lexicon-weight", type=float, default=None, help="default: conf/decode.yaml's")
    p.add_argument("--beam", type=int, default=8)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--max-utts", type=int, default=0, help="first N utterances of each part (0: all)")
    p.add_argument("--long-seconds", type=float, default=180.0, help="0 skips the long-audio part")
    p.add_argument("--max-frames", type=int, default=40000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="decode_bench.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer, logmel, norm = load_model_dir(args.model)
    searches = {"greedy": search_config(method="greedy"),
                f"beam{args.beam}": search_config(method="beam", beam_size=args.beam, ctc_weight=0.0),
                f"beam{args.beam}_ctc{args.ctc_weight}": search_config(method="beam", beam_size=args.beam,
                                                                          ctc_weight=args.ctc_weight)}
    if model.ctc_head is not None:
        searches["ctc_greedy"] = search_config(method="ctc_greedy")
    conf = compose_config("decode").search
    if conf.ctc_weight != args.ctc_weight:
        searches[f"beam{args.beam}_ctc{conf.ctc_weight}"] = search_config(method="beam", beam_size=args.beam)
    if args.lm:
        lm_weight = conf.lm_weight if args.lm_weight is None else args.lm_weight
        lexicon_weight = conf.lexicon_weight if args.lexicon_weight is None else args.lexicon_weight
        with_lm = f"beam{args.beam}_ctc{args.ctc_weight}_lm{lm_weight}"
        beam_lm = dict(method="beam", beam_size=args.beam, ctc_weight=args.ctc_weight, lm_dir=args.lm,
                       lm_weight=lm_weight)
        searches[with_lm] = search_config(**beam_lm, lexicon_weight=0.0)
        if (Path(args.lm) / LEXICON_FILE).is_file() and lexicon_weight > 0:
            lexicon = f"lexicon{lexicon_weight}" + (f"_bigram{conf.lexicon_bigram}" if conf.lexicon_bigram else "")
            searches[f"{with_lm}_{lexicon}"] = search_config(**beam_lm, lexicon_weight=lexicon_weight)
            # the recipe's search: everything from conf/decode.yaml
            recipe = f"beam{conf.beam_size}_ctc{conf.ctc_weight}_lm{lm_weight}_{lexicon}"
            searches.setdefault(recipe, search_config(method="beam", lm_dir=args.lm, lm_weight=lm_weight,
                                                      lexicon_weight=lexicon_weight))
    report = {"model": args.model, "threads": args.threads, "parts": {}}
    first_greedy = None
    for part in args.parts:
        utts = read_manifest(Path(args.manifests) / f"{part}.jsonl")
        utts = utts[: args.max_utts] if args.max_utts else utts
        rows = {}
        for name, search in searches.items():
            rows[name] = decode_part(model, tokenizer, logmel, norm, utts, search, args.max_frames)
            print(f"{part:12s} {name:24s} WER {rows[name]['wer']:6.2f} CER {rows[name]['cer']:6.2f} "
                  f"RTF {rows[name]['rtf']:.4f}", flush=True)
        if first_greedy is None:
            first_greedy = (utts, rows["greedy"]["hyps"])
        greedy_wer = rows["greedy"]["wer"]
        for row in rows.values():
            row["wer_change_vs_greedy"] = round((row["wer"] - greedy_wer) / max(greedy_wer, 1e-9), 4)
            row.pop("hyps")
        report["parts"][part] = rows
    if args.long_seconds > 0:
        report["long_audio"] = long_audio(model, tokenizer, logmel, norm, *first_greedy, args.long_seconds)
        print("long audio:", json.dumps(report["long_audio"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
