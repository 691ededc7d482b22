"""Tune search weights on dev sets: decode with every combination of a grid and rank them by WER.

    python -m asr.bench.tune --model recipes/mini/exp/las --manifests recipes/mini/data/manifests \
        --parts dev-seen dev-unseen --set lm_dir=recipes/mini/exp/lm \
        --grid lm_weight=0.3,0.5,0.7 lexicon_weight=0,0.5,1.0 [--out tune.json]

Keys are those of conf/decode.yaml's `search` block; `--set` fixes some, `--grid` lists values to try. Each
combination is scored by its WER over all parts together (words pooled). The table is printed best first and
written as JSON with the best combination under "best", ready to pass as search.* overrides to asr-decode.
Tune on dev, never on test: the test figures are only honest for weights chosen elsewhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.librispeech import read_manifest
from ..modeldir import load_model_dir
from .decode import decode_part, search_config


def parse_value(text: str):
    """'0.5' -> 0.5, '8' -> 8, 'null' -> None, anything else stays a string."""
    if text in ("null", "none", "None"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: list[str], many: bool) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"tune: expected KEY=VALUE{',VALUE...' if many else ''}, got {item!r}")
        out[key] = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m asr.bench.tune", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model directory or training exp dir")
    p.add_argument("--manifests", required=True, help="the folder of prepared manifests (asr-prepare --out)")
    p.add_argument("--parts", nargs="+", default=["dev-seen", "dev-unseen"])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed search settings")
    p.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2", help="search settings to try")
    p.add_argument("--max-frames", type=int, default=40000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file for the table and the best settings")
    args = p.parse_args(argv)
    fixed, grid = parse_assignments(args.set, many=False), parse_assignments(args.grid, many=True)
    torch.set_num_threads(args.threads)
    model, tokenizer, logmel, norm = load_model_dir(args.model)
    parts = {part: read_manifest(Path(args.manifests) / f"{part}.jsonl") for part in args.parts}
    words = {part: sum(len(u.text.split()) for u in utts) for part, utts in parts.items()}

    rows = []
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    for combo in tqdm(combos, desc="tune", unit="setting", dynamic_ncols=True):
        search = search_config(method="beam", **fixed, **combo)
        row = {"settings": combo, "parts": {}}
        for part, utts in parts.items():
            result = decode_part(model, tokenizer, logmel, norm, utts, search, args.max_frames)
            row["parts"][part] = {k: result[k] for k in ("wer", "cer", "rtf")}
        errors = sum(row["parts"][q]["wer"] * words[q] for q in parts) / 100
        row["wer"] = round(100 * errors / sum(words.values()), 2)
        rows.append(row)
        tqdm.write(f"{json.dumps(combo)}: WER {row['wer']:.2f} "
                   + " ".join(f"{q} {row['parts'][q]['wer']:.2f}" for q in parts))
    rows.sort(key=lambda r: r["wer"])

    keys = list(grid)
    print("| " + " | ".join(keys + [f"{q} WER" for q in parts] + ["WER"]) + " |")
    print("|" + " ---: |" * (len(keys) + len(parts) + 1))
    for row in rows:
        cells = [str(row["settings"][k]) for k in keys] + [f"{row['parts'][q]['wer']:.2f}" for q in parts]
        print("| " + " | ".join(cells + [f"{row['wer']:.2f}"]) + " |")
    report = {"model": args.model, "parts": args.parts, "fixed": fixed, "best": {**fixed, **rows[0]["settings"]},
              "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
