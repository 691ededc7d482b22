"""asr-decode: decode a prepared manifest with a model directory (greedy or beam search), time it and score it.
The search is the model directory's own when it carries one (search.yaml and lm/, from asr-export), with the
`search.*` and `window` keys given on the command line changed; else conf/decode.yaml's `search` block."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .. import CONF_DIR


def search_settings(cfg: DictConfig, given: Collection[str] = ()) -> tuple[dict, list | None]:
    """(Search.from_config's settings, decode window) for cfg.model_dir: its bundled search (with
    cfg.bundled_search) and the keys of `given` (dotted config keys set by the caller, e.g. "search.beam_size",
    "window") taken from cfg; without a bundle, cfg's own."""
    from ..decoding.search_config import read_search_file

    search, window = OmegaConf.to_container(cfg.search), cfg.get("window")
    bundle = read_search_file(cfg.model_dir) if cfg.get("bundled_search", True) else None
    if bundle is None:
        return search, window
    settings = dict(bundle.search)
    settings.update({k: v for k, v in search.items() if f"search.{k}" in given})
    return settings, (window if "window" in given else bundle.window)


def given_keys() -> set[str]:
    """The config keys this Hydra run's command line sets (`key=value`, `+key=value`)."""
    from hydra.core.hydra_config import HydraConfig

    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def decode_manifest(cfg: DictConfig, given: Collection[str] = ()) -> dict:
    """Decode and score cfg.manifest; `given`: the keys the caller set (see search_settings)."""
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
    settings, window = search_settings(cfg, given)
    if window:
        add_decode_window(model, *window)
    search = Search.from_config(settings)
    utts = read_manifest(cfg.manifest)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_plot = set(range(cfg.plot_alignments))

    def tokens(model, feats, lengths):
        return [h.tokens for h in search(model, feats, lengths, symbols=tokenizer.symbols)]

    def plot(idx, batch, _):  # alignments come from the greedy search; drawing is kept out of the RTF
        for j in [j for j, i in enumerate(idx) if i in to_plot]:
            greedy, alignments = greedy_decode(model, batch["feats"][j:j + 1], batch["feat_lengths"][j:j + 1],
                                               search.max_len_ratio, keep_alignments=True,
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
        result = decode_manifest(cfg, given_keys())
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-decode: {err}")
    print(f"asr-decode: {Path(cfg.manifest).stem}: WER {result['wer']:.2f}% CER {result['cer']:.2f}% "
          f"RTF {result['rtf']:.4f} -> {cfg.out_dir}")


if __name__ == "__main__":
    main()
