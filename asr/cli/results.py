"""Recipe bookkeeping: record how long each stage took, and gather the final results.json and table.

    python -m asr.cli.results stage --file exp/stage_seconds.json --name train --seconds 1234.5
    python -m asr.cli.results collect --scores exp/scores.json --decode exp/las/decode \
        --stages exp/stage_seconds.json --out exp/results.json
    python -m asr.cli.results compare --exp exp/attention --variants location mocha --out exp/attention/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..scoring import format_table

KEYS = ("wer", "cer", "sub", "del", "ins", "words", "utterances")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None


def record_stage(path: Path, name: str, seconds: float) -> None:
    stages = read_json(path)
    stages[name] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stages, indent=1) + "\n")


def collect(scores_path: Path, decode_dir: Path, stages_path: Path, out: Path) -> dict:
    """One entry per scored test part (wer, cer, sub, del, ins, words, utterances, rtf) + stage_seconds."""
    scores = read_json(scores_path)
    if not scores:
        raise ValueError(f"{scores_path}: no scores (run the score stage)")
    parts = {}
    for name, row in scores.items():
        decode = read_json(decode_dir / name / "decode.json")
        parts[name] = {k: row[k] for k in KEYS} | {"rtf": decode.get("rtf")}
    stages = read_json(stages_path)
    results = {**parts, "stage_seconds": stages, "total_seconds": round(sum(stages.values()), 1)}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(format_table(parts))
    print("\nstage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
          + f"; total {results['total_seconds'] / 60:.1f} min")
    return results


def compare(exp: Path, variants: list[str], out: Path) -> dict:
    """One row per attention variant from <exp>/<variant>/ experiments (compare_attention.sh)."""
    rows = {}
    for variant in variants:
        scores = read_json(exp / variant / "scores.json")
        stages = read_json(exp / variant / "stage_seconds.json")
        if not scores:
            raise ValueError(f"{exp / variant / 'scores.json'}: no scores for {variant}")
        rtf = read_json(exp / variant / "las" / "decode" / "test-seen" / "decode.json").get("rtf")
        rows[variant] = {"wer": scores["test-seen"]["wer"], "cer": scores["test-seen"]["cer"],
                         "wer_unseen": scores["test-unseen"]["wer"], "cer_unseen": scores["test-unseen"]["cer"],
                         "train_seconds": stages.get("train"), "rtf": rtf}
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print("| attention | WER % | CER % | WER % unseen | CER % unseen | train s | RTF |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['wer']:.2f} | {r['cer']:.2f} | {r['wer_unseen']:.2f} | {r['cer_unseen']:.2f} | "
              f"{r['train_seconds']} | {r['rtf']} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr.cli.results", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stage")
    s.add_argument("--file", required=True, type=Path)
    s.add_argument("--name", required=True)
    s.add_argument("--seconds", required=True, type=float)
    c = sub.add_parser("collect")
    c.add_argument("--scores", required=True, type=Path)
    c.add_argument("--decode", required=True, type=Path, help="folder with <part>/decode.json")
    c.add_argument("--stages", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path)
    m = sub.add_parser("compare")
    m.add_argument("--exp", required=True, type=Path)
    m.add_argument("--variants", required=True, nargs="+")
    m.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        if args.command == "stage":
            record_stage(args.file, args.name, args.seconds)
        elif args.command == "collect":
            collect(args.scores, args.decode, args.stages, args.out)
        else:
            compare(args.exp, args.variants, args.out)
    except ValueError as err:
        print(f"results: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
