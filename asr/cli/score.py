"""``asr-score``: WER and CER of hypothesis files against reference files, as a Markdown table and JSON.

Both files hold ``UTTID TEXT`` lines. Examples::

    asr-score --ref data/test-clean/text --hyp exp/test-clean/hyp.txt --name test-clean --json wer.json
    asr-score --pair clean REF1 HYP1 --pair other REF2 HYP2 --json wer.json

The JSON file is always an object keyed by part name, each value as returned by :func:`asr.scoring.score`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asr.scoring import format_table, read_text_file, score

PROG = "asr-score"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Score hypotheses against references (WER, CER).")
    parser.add_argument("--ref", help="reference file of UTTID TEXT lines")
    parser.add_argument("--hyp", help="hypothesis file of UTTID TEXT lines")
    parser.add_argument("--name", help="part name of --ref/--hyp in the table and JSON (default: REF's stem)")
    parser.add_argument("--pair", nargs=3, action="append", default=[], metavar=("NAME", "REF", "HYP"),
                        help="a named reference/hypothesis pair; repeat for several parts")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    return parser


def _pairs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The (name, ref, hyp) triples asked for, refusing incomplete or ambiguous requests."""
    pairs = [tuple(pair) for pair in args.pair]
    if args.ref or args.hyp:
        if not (args.ref and args.hyp):
            parser.error("--ref and --hyp must be given together")
        pairs.insert(0, (args.name or Path(args.ref).stem, args.ref, args.hyp))
    elif args.name:
        parser.error("--name needs --ref and --hyp")
    if not pairs:
        parser.error("nothing to score: give --ref and --hyp, or --pair NAME REF HYP")
    names = [name for name, _, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            # The JSON is keyed by name, so a repeated name would silently drop a result.
            parser.error(f"part name {name!r} given more than once")
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Run ``asr-score``; returns the exit status (2 for bad input, with one line on stderr)."""
    parser = _parser()
    args = parser.parse_args(argv)
    pairs = _pairs(parser, args)

    results: dict[str, dict] = {}
    try:
        for name, ref_path, hyp_path in pairs:
            refs = read_text_file(ref_path)
            hyps = read_text_file(hyp_path)
            results[name] = score(refs, hyps)
            _warn_mismatch(name, refs, hyps, results[name]["missing"])
    except (OSError, ValueError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2

    print(format_table(results))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            print(f"{PROG}: {args.json}: cannot write ({e.strerror or e})", file=sys.stderr)
            return 2
    return 0


def _warn_mismatch(name: str, refs: dict[str, str], hyps: dict[str, str], missing: int) -> None:
    # Mismatched ids usually mean the wrong file pair; the scores are still computed but should not pass
    # unnoticed.
    if missing:
        print(f"{PROG}: {name}: {missing} of {len(refs)} references have no hypothesis (scored as deletions)",
              file=sys.stderr)
    extra = sum(1 for uid in hyps if uid not in refs)
    if extra:
        print(f"{PROG}: {name}: {extra} hypotheses have ids not in the references (ignored)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
