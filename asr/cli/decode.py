"""asr-decode: greedy-decode a prepared manifest with a model directory, time it and score it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from . import CONF_DIR


def decode_manifest(cfg: DictConfig) -> dict:
    from ..data.batching import BucketBatchSampler, FeatureDataset, collate
    from ..data.librispeech import read_manifest
    from ..decoding.greedy import greedy_decode
    from ..decoding.plot import plot_alignment
    from ..modeldir import load_model_dir
    from ..scoring import score

    torch.set_num_threads(cfg.threads)
    model, tokenizer, logmel, norm = load_model_dir(cfg.model_dir)
    utts = read_manifest(cfg.manifest)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = FeatureDataset(utts, tokenizer, logmel, norm, cache=False)
    batches = BucketBatchSampler([u.duration for u in utts], cfg.max_frames).batches
    hyps, to_plot = {}, set(range(cfg.plot_alignments))
    start = time.perf_counter()
    for idx in tqdm(batches, desc=f"decode {Path(cfg.manifest).stem}", unit="batch", leave=False):
        batch = collate([dataset[i] for i in idx])
        keep = bool(to_plot.intersection(idx))
        tokens, alignments = greedy_decode(model, batch["feats"], batch["feat_lengths"], cfg.max_len_ratio,
                                           keep_alignments=keep)
        for j, (i, t) in enumerate(zip(idx, tokens)):
            hyps[utts[i].id] = tokenizer.decode(t)
            if keep and i in to_plot:
                plot_alignment(alignments[j], [tokenizer.symbols[k] for k in t] + ["<eos>"],
                               out / f"alignment-{utts[i].id}.png", title=f"{utts[i].id}: {hyps[utts[i].id]}")
    seconds = time.perf_counter() - start
    audio = sum(u.duration for u in utts)
    refs = {u.id: u.text for u in utts}
    for name, texts in (("hyp.txt", hyps), ("ref.txt", refs)):
        (out / name).write_text("".join(f"{k} {texts[k]}\n" for k in sorted(texts)))
    result = {**score(refs, hyps), "rtf": round(seconds / audio, 5), "decode_seconds": round(seconds, 2),
              "audio_seconds": round(audio, 2)}
    (out / "decode.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


@hydra.main(config_path=CONF_DIR, config_name="decode", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        result = decode_manifest(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-decode: {err}")
    print(f"asr-decode: {Path(cfg.manifest).stem}: WER {result['wer']:.2f}% CER {result['cer']:.2f}% "
          f"RTF {result['rtf']:.4f} -> {cfg.out_dir}")


if __name__ == "__main__":
    main()
