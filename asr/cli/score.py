"""``asr-score``: WER and CER of hypothesis files against reference files, as a Markdown table and JSON, and a
paired bootstrap comparison of two systems.

Both files hold ``UTTID TEXT`` lines. Examples::

    asr-score --ref data/test-clean/text --hyp exp/test-clean/hyp.txt --name test-clean --json wer.json
    asr-score --pair clean REF1 HYP1 --pair other REF2 HYP2 --json wer.json --align-dir align --show-errors
    asr-score compare exp/a/decode exp/b/decode --json compare.json     # decode dirs (ref.txt, hyp.txt)
    asr-score compare HYP_A HYP_B --ref REF --name test-clean           # two hypothesis files, one reference

Scoring: the JSON file is an object keyed by part name, each value as returned by :func:`asr.scoring.score`
plus ``wer_ci95`` and ``cer_ci95`` (95% bootstrap intervals over utterances), ``bootstrap`` (resamples, seed),
``errors`` (the most frequent substitutions, deletions and insertions) and, with ``--align-dir``, ``alignments``
(the file of per-utterance sclite-like word alignments, ``<DIR>/<part>.align.txt``).

Comparing: A and B are two decode directories (each holding ``ref.txt`` and ``hyp.txt``, or subfolders that
do, one per part) or, with ``--ref``, two hypothesis files. Both systems must cover exactly the reference ids.
The JSON is keyed by part name, each value as returned by :func:`asr.scoring.paired_bootstrap`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asr.scoring import (
    bootstrap_ci,
    check_ids,
    format_comparison,
    format_errors,
    format_table,
    frequent_errors,
    paired_bootstrap,
    read_text_file,
    score_part,
    write_alignments,
)

PROG = "asr-score"


def _add_bootstrap_options(parser: argparse.ArgumentParser, resamples_help: str) -> None:
    parser.add_argument("--resamples", type=_non_negative, default=1000, help=resamples_help)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


EXAMPLES = "examples:\n" + __doc__.split("Examples::\n\n")[1].split("\n\n")[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Score hypotheses against references (WER, CER); "
        f"'{PROG} compare A B ...' compares two systems (see '{PROG} compare --help').",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument("--ref", help="reference file of UTTID TEXT lines")
    parser.add_argument("--hyp", help="hypothesis file of UTTID TEXT lines")
    parser.add_argument("--name", help="part name of --ref/--hyp in the table and JSON (default: REF's stem)")
    parser.add_argument("--pair", nargs=3, action="append", default=[], metavar=("NAME", "REF", "HYP"),
                        help="a named reference/hypothesis pair; repeat for several parts")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a hypothesis file whose ids differ from the reference's (otherwise a missing "
                        "hypothesis is scored as all deletions, with a warning)")
    parser.add_argument("--top", type=_non_negative, default=10,
                        help="how many of the most frequent errors to report (default 10)")
    parser.add_argument("--show-errors", action="store_true",
                        help="also print the most frequent errors of each part as Markdown tables")
    parser.add_argument("--align-dir", metavar="DIR",
                        help="write each part's per-utterance word alignments to DIR/<part>.align.txt")
    _add_bootstrap_options(parser, "bootstrap resamples of the utterances (default 1000; 0: no intervals)")
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
        if args.align_dir and ("/" in name or name in (".", "..")):
            parser.error(f"part name {name!r} cannot name a file in --align-dir")
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Run ``asr-score``; returns the exit status (2 for bad input, with one line on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    pairs = _pairs(parser, args)

    results: dict[str, dict] = {}
    try:
        if args.align_dir:
            _make_dir(Path(args.align_dir))
        for name, ref_path, hyp_path in pairs:
            refs = read_text_file(ref_path)
            hyps = read_text_file(hyp_path)
            if args.strict:
                check_ids(ref_path, refs, hyp_path, hyps)
            results[name] = _score_part(name, ref_path, refs, hyp_path, hyps, args)
            _warn_mismatch(name, refs, hyp_path, hyps)
    except (OSError, ValueError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2

    print(format_table(results))
    if args.show_errors:
        for name, result in results.items():
            print("\n" + format_errors(name, result["errors"]))
    return _write_json(args.json, results)


def _score_part(name: str, ref_path: str, refs: dict[str, str], hyp_path: str, hyps: dict[str, str],
                args: argparse.Namespace) -> dict:
    """score()'s totals plus bootstrap intervals, the most frequent errors and (asked for) the alignment file."""
    part = score_part(refs, hyps)
    result = part.summary()
    if args.resamples:
        result["wer_ci95"] = bootstrap_ci(part.word_counts, args.resamples, args.seed)
        result["cer_ci95"] = bootstrap_ci(part.char_counts, args.resamples, args.seed)
    result["bootstrap"] = {"resamples": args.resamples, "seed": args.seed}
    result["errors"] = frequent_errors(part.alignments, args.top)
    if args.align_dir:
        path = Path(args.align_dir) / f"{name}.align.txt"
        write_alignments(path, part.alignments, f"{name}: REF {ref_path}, HYP {hyp_path}")
        result["alignments"] = str(path)
    return result


def _warn_mismatch(name: str, refs: dict[str, str], hyp_path: str, hyps: dict[str, str]) -> None:
    # Mismatched ids usually mean the wrong file pair; the scores are still computed but should not pass
    # unnoticed.
    missing = [uid for uid in refs if uid not in hyps]
    if missing:
        print(f"{PROG}: {name}: {len(missing)} of {len(refs)} references have no hypothesis in {hyp_path}, "
              f"first {missing[0]} (scored as deletions)", file=sys.stderr)
    extra = sum(1 for uid in hyps if uid not in refs)
    if extra:
        print(f"{PROG}: {name}: {extra} hypotheses have ids not in the references (ignored)", file=sys.stderr)


def _compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} compare",
        description="Paired bootstrap comparison of systems A and B on the same utterances (Bisani & Ney 2004): "
        "the WER difference A - B with its 95% interval and the probability that A is better.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument("a", metavar="A", help="decode directory of system A, or its hypothesis file with --ref")
    parser.add_argument("b", metavar="B", help="decode directory of system B, or its hypothesis file with --ref")
    parser.add_argument("--ref", help="reference file when A and B are hypothesis files")
    parser.add_argument("--name", help="part name with --ref (default: REF's stem)")
    _add_bootstrap_options(parser, "bootstrap resamples of the utterances (default 1000)")
    return parser


def compare_main(argv: list[str]) -> int:
    """Run ``asr-score compare``; returns the exit status (2 for bad input, with one line on stderr)."""
    parser = _compare_parser()
    args = parser.parse_args(argv)
    if args.name and not args.ref:
        parser.error("--name needs --ref (decode directories name their parts)")
    if args.resamples == 0:
        parser.error("--resamples must be at least 1 to compare")

    rows: dict[str, dict] = {}
    try:
        if args.ref:
            parts = {args.name or Path(args.ref).stem: (Path(args.ref), Path(args.a), Path(args.ref), Path(args.b))}
        else:
            parts = _decode_parts(Path(args.a), Path(args.b))
        for name, (ref_a, hyp_a, ref_b, hyp_b) in parts.items():
            refs = read_text_file(ref_a)
            if ref_b != ref_a:
                _check_same_refs(ref_a, refs, ref_b, read_text_file(ref_b))
            hyps_a, hyps_b = read_text_file(hyp_a), read_text_file(hyp_b)
            check_ids(ref_a, refs, hyp_a, hyps_a)
            check_ids(ref_a, refs, hyp_b, hyps_b)
            row = paired_bootstrap(score_part(refs, hyps_a).word_counts, score_part(refs, hyps_b).word_counts,
                                   args.resamples, args.seed)
            rows[name] = {"a": str(hyp_a), "b": str(hyp_b), "ref": str(ref_a), **row}
    except (OSError, ValueError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2

    print(f"A: {args.a}\nB: {args.b}\n")
    print(format_comparison(rows))
    return _write_json(args.json, rows)


def _decode_parts(dir_a: Path, dir_b: Path) -> dict[str, tuple[Path, Path, Path, Path]]:
    """{part: (ref A, hyp A, ref B, hyp B)} of two decode directories, matched by part name.

    A directory holding hyp.txt is one part (two such are compared whatever their names); otherwise each of
    its subfolders holding hyp.txt is a part, and the parts of A and B must be the same.
    """
    parts_a, parts_b = _parts_of(dir_a), _parts_of(dir_b)
    if (dir_a / "hyp.txt").is_file() and (dir_b / "hyp.txt").is_file():
        parts_b = {name: dir_b for name in parts_a}
    for name in parts_a:
        if name not in parts_b:
            raise ValueError(f"{dir_b}: no part {name} (as in {dir_a})")
    for name in parts_b:
        if name not in parts_a:
            raise ValueError(f"{dir_a}: no part {name} (as in {dir_b})")
    return {name: (parts_a[name] / "ref.txt", parts_a[name] / "hyp.txt", parts_b[name] / "ref.txt",
                   parts_b[name] / "hyp.txt") for name in parts_a}


def _parts_of(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a decode directory (give --ref REF to compare two hypothesis files)")
    if (directory / "hyp.txt").is_file():
        return {directory.resolve().name: directory}
    parts = {sub.name: sub for sub in sorted(directory.iterdir()) if (sub / "hyp.txt").is_file()}
    if not parts:
        raise ValueError(f"{directory}: no hyp.txt in it or in its subfolders")
    return parts


def _check_same_refs(path_a: Path, refs_a: dict[str, str], path_b: Path, refs_b: dict[str, str]) -> None:
    # A paired comparison is only meaningful on one reference; two decodes of one manifest write the same.
    check_ids(path_a, refs_a, path_b, refs_b)
    for uid, text in refs_a.items():
        if text.split() != refs_b[uid].split():
            raise ValueError(f"{path_b}: utterance {uid} differs from {path_a}")


def _make_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{directory}: cannot create ({e.strerror or e})") from None


def _write_json(path: str | None, data: dict) -> int:
    if path:
        try:
            Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            print(f"{PROG}: {path}: cannot write ({e.strerror or e})", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
