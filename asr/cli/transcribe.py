"""asr-transcribe FILE... --model DIR: print `FILE<TAB>TEXT` for each file, in the order given.

A file that cannot be transcribed gives one line on stderr naming it and the problem; the other files are
still transcribed, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..transcriber import Transcriber


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="audio files in any format soundfile reads; - reads paths from stdin")
    p.add_argument("--model", required=True, help="a model directory (asr-export or a training exp dir)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = [line.strip() for line in sys.stdin if line.strip()] if args.files == ["-"] else args.files
    try:
        transcriber = Transcriber.from_pretrained(args.model)
    except (FileNotFoundError, ValueError) as err:
        print(f"asr-transcribe: {err}", file=sys.stderr)
        return 2
    failed = 0
    for result in transcriber.transcribe_many(files):
        if result.error:
            failed += 1
            print(f"asr-transcribe: {result.error}", file=sys.stderr)
        else:
            print(f"{result.source}\t{result.text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
