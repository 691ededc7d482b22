"""asr-average EXP_DIR --last N|--best N --out FILE: average the weights of several epochs of a training run.

The output is a weights file like EXP_DIR/model.pt; `asr-export EXP_DIR DIR --weights FILE` turns it into a
model directory."""

from __future__ import annotations

import argparse
import sys

from ..training.average import average_checkpoints, select_epochs
from ..weights import save_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asr-average", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n    asr-average exp/las --best 3 --out exp/las/avg.pt\n"
                                       "    asr-export exp/las exp/model --weights exp/las/avg.pt\n\n"
                                + "\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("exp_dir", help="training directory with epochN.pt files and train_log.csv")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, metavar="N", help="average the last N epochs")
    which.add_argument("--best", type=int, metavar="N", help="average the N epochs with the lowest dev CER")
    p.add_argument("--out", required=True, help="weights file to write")
    args = p.parse_args(argv)
    try:
        paths = select_epochs(args.exp_dir, last=args.last, best=args.best)
        save_atomic(average_checkpoints(paths), args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"asr-average: {err}", file=sys.stderr)
        return 2
    print(f"asr-average: mean of {', '.join(p.name for p in paths)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
