"""asr-decode: decode a prepared manifest with a model directory (greedy or beam search, conf/decode.yaml
`search`), time it and score it."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from .. import CONF_DIR


def decode_manifest(cfg: DictConfig) -> dict:
    from ..data.batching import FeatureDataset
    from ..data.librispeech import read_manifest
    from ..decoding.dataset import decode_and_score
    from ..decoding.greedy import greedy_decode
    from ..decoding.plot import plot_alignment
    from ..decoding.search import Search
    from ..modeldir import load_model_dir
    from ..models.attention.windowed import add_decode_window

    torch.set_num_threads(cfg.threads)
    model, tokenizer, logmel, norm = load_model_dir(cfg.model_dir)
    if cfg.get("window"):
        add_decode_window(model, *cfg.window)
    search = Search.from_config(cfg.search)
    utts = read_manifest(cfg.manifest)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_plot = set(range(cfg.plot_alignments))

    def tokens(model, feats, lengths):
        return [h.tokens for h in search(model, feats, lengths, symbols=tokenizer.symbols)]

    def plot(idx, batch, _):  # alignments come from the greedy search; drawing is kept out of the RTF
        for j in [j for j, i in enumerate(idx) if i in to_plot]:
            greedy, alignments = greedy_decode(model, batch["feats"][j:j + 1], batch["feat_lengths"][j:j + 1],
                                               cfg.search.max_len_ratio, keep_alignments=True,
                                               guard=replace(search.guard, symbols=tokenizer.symbols))
            u = utts[idx[j]]
            plot_alignment(alignments[0], [tokenizer.symbols[k] for k in greedy[0]] + ["<eos>"],
                           out / f"alignment-{u.id}.png", title=f"{u.id}: {tokenizer.decode(greedy[0])}")

    decoded = decode_and_score(model, FeatureDataset(utts, tokenizer, logmel, norm, cache=False), tokens,
                               cfg.max_frames, after_batch=plot if to_plot else None,
                               progress=lambda b: tqdm(b, desc=f"decode {Path(cfg.manifest).stem}", unit="batch",
                                                       leave=False))
    refs, hyps = decoded.pop("refs"), decoded.pop("hyps")
    for name, texts in (("hyp.txt", hyps), ("ref.txt", refs)):
        (out / name).write_text("".join(f"{k} {texts[k]}\n" for k in sorted(texts)))
    result = {**{k: v for k, v in decoded.items() if k not in ("seconds", "search_seconds", "audio_seconds", "rtf")},
              "model_dir": str(cfg.model_dir), "search": search.method, "rtf": round(decoded["rtf"], 5),
              "decode_seconds": round(decoded["seconds"], 2), "audio_seconds": round(decoded["audio_seconds"], 2)}
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
