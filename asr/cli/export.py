"""asr-export SRC DST: copy a training exp dir's best model into a self-contained model directory."""

from __future__ import annotations

import argparse
import sys

from ..modeldir import export_model_dir, load_model_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asr-export", description=__doc__)
    p.add_argument("source", help="training exp dir (config.yaml, tokenizer.json, norm.json, model.pt)")
    p.add_argument("target", help="model directory to write")
    p.add_argument("--weights", help="other weights to export instead of SOURCE/model.pt")
    args = p.parse_args(argv)
    try:
        target = export_model_dir(args.source, args.target, args.weights)
        load_model_dir(target)  # a directory that does not load is not exported
    except (FileNotFoundError, ValueError) as err:
        print(f"asr-export: {err}", file=sys.stderr)
        return 2
    print(f"asr-export: model directory {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
