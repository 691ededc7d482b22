"""Word and character error rates of hypotheses against references, and a Markdown table of results.

Texts are compared exactly as given apart from whitespace, which is collapsed to single spaces first: case and
punctuation are the caller's business, so that the numbers mean the same thing whatever produced the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jiwer

from .textfile import read_lines


def read_text_file(path: str | Path) -> dict[str, str]:
    """Read ``UTTID TEXT`` lines into a dict; the text may be empty (a line holding only the id).

    Blank lines are skipped. Raises FileNotFoundError ``"<path>: no such file"`` and ValueError
    ``"<path>:<line>: <problem>"`` for a duplicate id, or ``"<path>: <problem>"`` for an unreadable file.
    """
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(read_lines(path), start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        uid = parts[0]
        if uid in texts:
            raise ValueError(f"{path}:{lineno}: duplicate id {uid} (first on line {first_line[uid]})")
        texts[uid] = parts[1].strip() if len(parts) > 1 else ""
        first_line[uid] = lineno
    return texts


def score(refs: dict[str, str], hyps: dict[str, str]) -> dict:
    """Score every reference utterance against its hypothesis.

    A reference with no hypothesis is scored against an empty one (all deletions) and counted in
    ``missing``; hypotheses whose id is not among the references are ignored. Returns WER and CER in percent
    (rounded to 2 decimals) with their substitution, deletion and insertion counts and reference lengths.
    """
    ids = list(refs)
    pairs = [(_normalise(refs[uid]), _normalise(hyps.get(uid, ""))) for uid in ids]
    sub, dele, ins, words = _edit_counts(pairs, jiwer.process_words, str.split)
    csub, cdel, cins, chars = _edit_counts(pairs, jiwer.process_characters, list)
    return {
        "wer": _percent(sub + dele + ins, words),
        "cer": _percent(csub + cdel + cins, chars),
        "sub": sub,
        "del": dele,
        "ins": ins,
        "words": words,
        "cer_sub": csub,
        "cer_del": cdel,
        "cer_ins": cins,
        "chars": chars,
        "utterances": len(ids),
        "missing": sum(1 for uid in ids if uid not in hyps),
    }


def _normalise(text: str) -> str:
    # Runs of spaces would otherwise count as extra characters in the CER.
    return " ".join(text.split())


def _edit_counts(pairs: Sequence[tuple[str, str]], process: Callable,
                 units: Callable[[str], list]) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, reference length) over all pairs, in words or characters."""
    scored = [(ref, hyp) for ref, hyp in pairs if ref]
    # jiwer 3 refuses empty references; against nothing every hypothesis unit is an insertion anyway.
    ins = sum(len(units(hyp)) for ref, hyp in pairs if not ref)
    length = sum(len(units(ref)) for ref, _ in scored)
    if not scored:
        return 0, 0, ins, 0
    out = process([ref for ref, _ in scored], [hyp for _, hyp in scored])
    return out.substitutions, out.deletions, out.insertions + ins, length


def _percent(errors: int, length: int) -> float:
    # Like jiwer, divide by at least 1 so that insertions against empty references still show as errors.
    return round(100.0 * errors / max(length, 1), 2)


def format_table(rows: dict[str, dict]) -> str:
    """A Markdown table with one row per test part: keys of ``rows`` are part names, values :func:`score`'s.

    An ``RTF`` column is added when any row has an ``rtf`` entry; rows without one show ``-`` there.
    """
    with_rtf = any("rtf" in row for row in rows.values())
    header = ["part", "WER %", "CER %", "sub", "del", "ins", "words", "utts"] + (["RTF"] if with_rtf else [])
    lines = [_table_line(header), _table_line(["---"] + ["---:"] * (len(header) - 1))]
    for name, row in rows.items():
        counts = [row["sub"], row["del"], row["ins"], row["words"], row["utterances"]]
        cells = [name.replace("|", "\\|"), f"{row['wer']:.2f}", f"{row['cer']:.2f}", *map(str, counts)]
        if with_rtf:
            cells.append(f"{row['rtf']:.4f}" if row.get('rtf') is not None else "-")
        lines.append(_table_line(cells))
    return "\n".join(lines)


def _table_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
