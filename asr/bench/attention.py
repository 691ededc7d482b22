"""Time one training step (forward and backward) of the speller with each attention, side by side.

    python -m asr.bench.attention [--lengths 200 400 800 1600] [--batch 16] [--repeats 3]

Listener output is random (B, T', 512) at each length T'; the speller is the mini recipe's (LSTM 320,
embeddings 128); targets have 0.6 tokens per listener frame (characters at 4x time reduction). Writes
recipes/mini/exp/attention/step_time.json with seconds per step and each variant's ratio to location-aware.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ..cli import CONF_DIR
from ..models.speller import Speller

VARIANTS = ["location", "monotonic", "mocha", "multihead", "windowed"]


def step_seconds(attention_cfg, length: int, batch: int, repeats: int, vocab: int = 31) -> float:
    torch.manual_seed(0)
    memory_dim, hidden = 512, 320
    attention = instantiate(attention_cfg, query_dim=hidden, memory_dim=memory_dim)
    speller = Speller(vocab, memory_dim, attention, embed_dim=128, hidden=hidden).train()
    memory = torch.randn(batch, length, memory_dim, requires_grad=True)
    lengths = torch.full((batch,), length)
    tokens = torch.randint(3, vocab, (batch, int(0.6 * length)))
    times = []
    for _ in range(repeats + 1):  # the first run warms allocator and caches
        start = time.perf_counter()
        logits, _ = speller(memory, lengths, tokens)
        F.cross_entropy(logits.reshape(-1, vocab), tokens.reshape(-1)).backward()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m asr.bench.attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[200, 400, 800, 1600])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=VARIANTS)
    p.add_argument("--out", type=Path, default=Path("recipes/mini/exp/attention/step_time.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    for name in args.variants:
        cfg = OmegaConf.load(Path(CONF_DIR) / "model" / "attention" / f"{name}.yaml")
        results[name] = {"seconds": {}}
        for length in args.lengths:
            results[name]["seconds"][str(length)] = round(step_seconds(cfg, length, args.batch, args.repeats), 4)
            print(f"{name:10s} T'={length:5d}: {results[name]['seconds'][str(length)]:.3f} s/step", flush=True)
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
    meta = {"batch": args.batch, "threads": args.threads, "tokens_per_frame": 0.6, "speller_hidden": 320}
    args.out.write_text(json.dumps({"config": meta, "variants": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
