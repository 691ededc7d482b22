"""Time one training step (forward and backward) of the speller with each attention, side by side.

    python -m asr.bench.attention [--lengths 200 400 800 1600] [--batch 16] [--repeats 3] [--threads 2]

Listener output is random (B, T', 512) at each length T'; the speller is the mini recipe's (LSTM 320,
embeddings 128); targets have 0.6 tokens per listener frame (characters at 4x time reduction). At each length
the variants take turns, one step each per round (the order rotating between rounds), so that a noisy shared
machine slows them alike; a variant's time is the median of its rounds. Rounds: `repeats` up to T'=400, then
fewer as steps get longer (2 at 800, 1 at 1600 by default), after one untimed warm-up round at the first length.
Writes --out (attention_step_time.json in the working directory) with seconds per step and each variant's ratio to
location-aware. A variant is a config name from conf/model/attention, optionally with overrides:
`mocha:heads=2,chunk=8`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm import tqdm

from .. import CONF_DIR
from ..models.speller import Speller

VARIANTS = ["location", "monotonic", "mocha", "multihead", "windowed"]
MEMORY_DIM, HIDDEN, EMBED, VOCAB, TOKENS_PER_FRAME = 512, 320, 128, 31, 0.6


def attention_config(variant: str):
    """'name' or 'name:key=value,key=value' -> the attention config with those overrides."""
    name, _, overrides = variant.partition(":")
    path = Path(CONF_DIR) / "model" / "attention" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"asr.bench.attention: {path}: no such attention config (variant {variant!r})")
    cfg = OmegaConf.load(path)
    for item in filter(None, overrides.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in cfg:
            raise SystemExit(f"asr.bench.attention: {path}: bad override {item!r} (want an existing key=value)")
        cfg[key] = yaml.safe_load(value)  # 2 -> int, true -> bool, as on a Hydra command line
    return cfg


class Step:
    """One variant's speller and inputs at one length; calling it runs and times one training step."""

    def __init__(self, variant: str, length: int, batch: int):
        torch.manual_seed(0)
        attention = instantiate(attention_config(variant), query_dim=HIDDEN, memory_dim=MEMORY_DIM)
        self.speller = Speller(VOCAB, MEMORY_DIM, attention, embed_dim=EMBED, hidden=HIDDEN).train()
        # the listener output needs a gradient too: in training, keys and values backpropagate into it
        self.memory = torch.randn(batch, length, MEMORY_DIM, requires_grad=True)
        self.lengths = torch.full((batch,), length)
        self.tokens = torch.randint(3, VOCAB, (batch, int(TOKENS_PER_FRAME * length)))

    def __call__(self) -> float:
        self.speller.zero_grad(set_to_none=True)
        self.memory.grad = None  # every timed step does the same work: gradients assigned, not accumulated
        start = time.perf_counter()
        logits, _ = self.speller(self.memory, self.lengths, self.tokens)
        F.cross_entropy(logits.reshape(-1, VOCAB), self.tokens.reshape(-1)).backward()
        return time.perf_counter() - start


def rounds_at(length: int, repeats: int) -> int:
    """Timed rounds at a length: `repeats` up to 400 frames, then about repeats * 400 / length (at least 1)."""
    return min(repeats, max(1, math.ceil(repeats * 400 / length)))


def run(variants: list[str], lengths: list[int], batch: int, repeats: int) -> dict[str, dict]:
    results: dict[str, dict] = {v: {"seconds": {}, "samples": {}} for v in variants}
    plan = [(n, rounds_at(n, repeats) + (i == 0)) for i, n in enumerate(lengths)]  # + the warm-up round
    bar = tqdm(total=sum(r * len(variants) for _, r in plan), desc="steps", unit="step", file=sys.stderr)
    for i, (length, rounds) in enumerate(plan):
        steps = {v: Step(v, length, batch) for v in variants}
        samples: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                bar.set_postfix_str(f"T'={length} {v}")
                seconds = steps[v]()
                if not (i == 0 and r == 0):  # the first round warms the allocator and caches
                    samples[v].append(seconds)
                bar.update()
        del steps
        for v in variants:
            results[v]["samples"][str(length)] = [round(s, 4) for s in samples[v]]
            results[v]["seconds"][str(length)] = round(statistics.median(samples[v]), 4)
            tqdm.write(f"{v:16s} T'={length:5d}: {results[v]['seconds'][str(length)]:.3f} s/step "
                       f"(median of {len(samples[v])})", file=sys.stderr)
    bar.close()
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m asr.bench.attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[200, 400, 800, 1600])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds up to T'=400 (fewer beyond)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=VARIANTS)
    p.add_argument("--out", type=Path, default=Path("attention_step_time.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for v in args.variants:
        attention_config(v)  # a bad name fails now, not after minutes of timing
    results = run(args.variants, args.lengths, args.batch, args.repeats)
    base = results["location"]["seconds"] if "location" in results else None
    lines = ["| attention | " + " | ".join(f"T'={n}" for n in args.lengths) + " |",
             "|---|" + "---:|" * len(args.lengths)]
    for name, row in results.items():
        if base:
            row["ratio_to_location"] = {k: round(v / base[k], 3) for k, v in row["seconds"].items()}
        cells = [f"{row['seconds'][str(n)]:.3f} s" + (f" ({row['ratio_to_location'][str(n)]:.2f}x)" if base else "")
                 for n in args.lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"batch": args.batch, "threads": args.threads, "tokens_per_frame": TOKENS_PER_FRAME,
            "speller_hidden": HIDDEN, "memory_dim": MEMORY_DIM, "statistic": "median",
            "rounds": {str(n): rounds_at(n, args.repeats) for n in args.lengths}}
    args.out.write_text(json.dumps({"config": meta, "variants": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
