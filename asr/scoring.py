"""Word and character error rates of hypotheses against references: counts, word alignments, the most frequent
errors, bootstrap confidence intervals, a paired bootstrap comparison of two systems, and Markdown tables.

Texts are compared exactly as given apart from whitespace, which is collapsed to single spaces first: case and
punctuation are the caller's business, so that the numbers mean the same thing whatever produced the text.

Alignments come from jiwer (``process_words`` / ``process_characters``); per-utterance counts are summed from its
alignment chunks, so the totals are jiwer's own. Confidence intervals follow Bisani & Ney (2004), "Bootstrap
estimates for confidence intervals in ASR performance evaluation": utterances (not words) are resampled with
replacement, since errors within an utterance are not independent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from .textfile import read_lines

# Columns of the per-utterance count arrays (N, 4).
SUB, DEL, INS, LEN = range(4)
# Bootstrap draws are made in blocks of about this many utterance picks, to bound memory on large test sets.
_BLOCK_PICKS = 1 << 22


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


def check_ids(ref_path: str | Path, refs: dict[str, str], path: str | Path, texts: dict[str, str]) -> None:
    """Refuse ``texts`` (read from ``path``) unless it holds exactly the utterance ids of ``refs``.

    Raises ValueError ``"<path>: utterance <id> of <ref_path> is missing"`` naming the first missing id, or
    ``"<path>: utterance <id> is not in <ref_path>"`` for the first extra one.
    """
    missing = [uid for uid in refs if uid not in texts]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{path}: utterance {missing[0]} of {ref_path} is missing{more}")
    extra = [uid for uid in texts if uid not in refs]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ValueError(f"{path}: utterance {extra[0]} is not in {ref_path}{more}")


@dataclass(frozen=True)
class Alignment:
    """One utterance aligned word by word.

    ``ops`` holds ``(op, ref_word, hyp_word)`` in order, op one of ``C`` (correct), ``S`` (substitution),
    ``D`` (deletion, hyp_word None) and ``I`` (insertion, ref_word None).
    """

    uid: str
    ops: tuple[tuple[str, str | None, str | None], ...]

    def counts(self) -> dict[str, int]:
        """Number of each op: ``{"C": .., "S": .., "D": .., "I": ..}``."""
        found = Counter(op for op, _, _ in self.ops)
        return {op: found[op] for op in "CSDI"}


@dataclass(frozen=True)
class ScoredPart:
    """A test part scored utterance by utterance, in reference order.

    ``word_counts`` and ``char_counts`` are (N, 4) integer arrays: substitutions, deletions, insertions and
    reference length of each of the N utterances (columns SUB, DEL, INS, LEN).
    """

    uids: list[str]
    alignments: list[Alignment]
    word_counts: np.ndarray
    char_counts: np.ndarray
    missing: int

    def summary(self) -> dict:
        """The totals as :func:`score` returns them."""
        sub, dele, ins, words = (int(x) for x in self.word_counts.sum(axis=0))
        csub, cdel, cins, chars = (int(x) for x in self.char_counts.sum(axis=0))
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
            "utterances": len(self.uids),
            "missing": self.missing,
        }


def score_part(refs: dict[str, str], hyps: dict[str, str]) -> ScoredPart:
    """Align every reference utterance with its hypothesis, in words and in characters.

    A reference with no hypothesis is aligned with an empty one (all deletions) and counted in ``missing``;
    hypotheses whose id is not among the references are ignored.
    """
    uids = list(refs)
    ref_texts = [_normalise(refs[uid]) for uid in uids]
    hyp_texts = [_normalise(hyps.get(uid, "")) for uid in uids]
    words = _process(ref_texts, hyp_texts, jiwer.process_words)
    chars = _process(ref_texts, hyp_texts, jiwer.process_characters)
    alignments = [Alignment(uid, _ops(ref, hyp, chunks)) for uid, (ref, hyp, chunks) in zip(uids, words)]
    return ScoredPart(uids=uids, alignments=alignments,
                      word_counts=_counts([(len(ref), chunks) for ref, _, chunks in words]),
                      char_counts=_counts([(len(ref), chunks) for ref, _, chunks in chars]),
                      missing=sum(1 for uid in uids if uid not in hyps))


def score(refs: dict[str, str], hyps: dict[str, str]) -> dict:
    """Score every reference utterance against its hypothesis.

    A reference with no hypothesis is scored against an empty one (all deletions) and counted in
    ``missing``; hypotheses whose id is not among the references are ignored. Returns WER and CER in percent
    (rounded to 2 decimals) with their substitution, deletion and insertion counts and reference lengths.
    """
    return score_part(refs, hyps).summary()


def _normalise(text: str) -> str:
    # Runs of spaces would otherwise count as extra characters in the CER.
    return " ".join(text.split())


def _process(refs: list[str], hyps: list[str], process: Callable) -> list[tuple[list[str], list[str], list]]:
    """(reference units, hypothesis units, jiwer alignment chunks) per utterance; jiwer 4 accepts empty texts."""
    if not refs:
        return []  # jiwer turns no sentences at all into one empty sentence
    out = process(refs, hyps)
    return list(zip(out.references, out.hypotheses, out.alignments))


def _ops(ref: list[str], hyp: list[str], chunks: list) -> tuple[tuple[str, str | None, str | None], ...]:
    ops: list[tuple[str, str | None, str | None]] = []
    for chunk in chunks:
        ref_part = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        hyp_part = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "equal":
            ops += [("C", r, h) for r, h in zip(ref_part, hyp_part)]
        elif chunk.type == "substitute":
            ops += [("S", r, h) for r, h in zip(ref_part, hyp_part)]
        elif chunk.type == "delete":
            ops += [("D", r, None) for r in ref_part]
        else:
            ops += [("I", None, h) for h in hyp_part]
    return tuple(ops)


def _counts(utterances: Sequence[tuple[int, list]]) -> np.ndarray:
    """(N, 4) substitutions, deletions, insertions, reference length from (reference length, chunks) pairs."""
    counts = np.zeros((len(utterances), 4), dtype=np.int64)
    column = {"substitute": SUB, "delete": DEL, "insert": INS}
    for i, (length, chunks) in enumerate(utterances):
        counts[i, LEN] = length
        for chunk in chunks:
            if chunk.type in column:
                # A deletion spans only reference units, an insertion only hypothesis units.
                span = chunk.hyp_end_idx - chunk.hyp_start_idx if chunk.type == "insert" else (
                    chunk.ref_end_idx - chunk.ref_start_idx)
                counts[i, column[chunk.type]] += span
    return counts


def _percent(errors: float, length: float) -> float:
    # Like jiwer, divide by at least 1 so that insertions against empty references still show as errors.
    return round(100.0 * errors / max(length, 1), 2)


def frequent_errors(alignments: Sequence[Alignment], top: int) -> dict[str, list]:
    """The ``top`` most frequent substitution pairs, deleted words and inserted words, most frequent first.

    Returns ``{"substitutions": [[ref, hyp, n], ...], "deletions": [[word, n], ...], "insertions": [...]}``;
    equal counts are ordered alphabetically so that the lists do not depend on utterance order.
    """
    subs = Counter((r, h) for a in alignments for op, r, h in a.ops if op == "S")
    dels = Counter(r for a in alignments for op, r, _ in a.ops if op == "D")
    ins = Counter(h for a in alignments for op, _, h in a.ops if op == "I")

    def most(counter: Counter) -> list:
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]

    return {"substitutions": [[r, h, n] for (r, h), n in most(subs)],
            "deletions": [[w, n] for w, n in most(dels)],
            "insertions": [[w, n] for w, n in most(ins)]}


def resample_sums(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column sums of ``values`` (N, K) over ``resamples`` bootstrap resamples of its N rows: (resamples, K).

    Each resample draws N rows with replacement. The draws depend only on N, ``resamples`` and ``seed``, so
    the same seed resamples the same utterances for any values (what makes a comparison paired).
    """
    n = len(values)
    sums = np.zeros((resamples, values.shape[1]))
    if n == 0:
        return sums
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_PICKS // n)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        # How often each utterance was drawn in each resample (rows, N): a matrix product then sums the
        # values exactly (integers below 2**53 in float64) and fast.
        times = np.bincount((picks + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        sums[start:start + rows] = times.reshape(rows, n).astype(np.float64) @ values.astype(np.float64)
    return sums


def bootstrap_ci(counts: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval ``[low, high]`` of the error rate in percent (rounded like :func:`score`).

    counts: (N, 4) per-utterance substitutions, deletions, insertions, reference length (``ScoredPart``'s).
    """
    errors = counts[:, [SUB, DEL, INS]].sum(axis=1)
    sums = resample_sums(np.stack([errors, counts[:, LEN]], axis=1), resamples, seed)
    rates = 100.0 * sums[:, 0] / np.maximum(sums[:, 1], 1)
    low, high = np.percentile(rates, [50 * (1 - level), 50 * (1 + level)])
    return [round(float(low), 2), round(float(high), 2)]


def paired_bootstrap(counts_a: np.ndarray, counts_b: np.ndarray, resamples: int, seed: int,
                     level: float = 0.95) -> dict:
    """Paired bootstrap comparison of systems A and B on the same utterances (Bisani & Ney 2004).

    counts_a, counts_b: (N, 4) per-utterance counts of the two systems against the same references, rows in
    the same utterance order. Every resample draws N utterances with replacement and compares the two error
    totals on that draw. Returns both WERs, their difference ``diff`` = WER A - WER B in percent with its
    percentile interval ``diff_ci95``, and the shares of resamples in which A makes fewer errors
    (``p_a_better``), more (``p_b_better``) or as many (``p_tie``); the three add up to 1.
    """
    if counts_a.shape != counts_b.shape or not np.array_equal(counts_a[:, LEN], counts_b[:, LEN]):
        raise ValueError("paired bootstrap: the two systems were not scored on the same references")
    errors_a = counts_a[:, [SUB, DEL, INS]].sum(axis=1)
    errors_b = counts_b[:, [SUB, DEL, INS]].sum(axis=1)
    lengths = counts_a[:, LEN]
    sums = resample_sums(np.stack([errors_a - errors_b, lengths], axis=1), resamples, seed)
    # The error difference is a sum of integers, so ties are exact.
    diff = np.rint(sums[:, 0])
    rates = 100.0 * diff / np.maximum(sums[:, 1], 1)
    low, high = np.percentile(rates, [50 * (1 - level), 50 * (1 + level)])
    words = int(lengths.sum())
    return {
        "wer_a": _percent(int(errors_a.sum()), words),
        "wer_b": _percent(int(errors_b.sum()), words),
        "diff": _percent(int(errors_a.sum() - errors_b.sum()), words),
        "diff_ci95": [round(float(low), 2), round(float(high), 2)],
        "p_a_better": float(np.mean(diff < 0)),
        "p_b_better": float(np.mean(diff > 0)),
        "p_tie": float(np.mean(diff == 0)),
        "utterances": len(lengths),
        "words": words,
        "resamples": resamples,
        "seed": seed,
    }


def format_alignment(alignment: Alignment) -> str:
    """An sclite-like block: id, counts, and REF/HYP/Eval lines with the words of each column aligned.

    A gap (the missing side of a deletion or insertion) is written as asterisks; Eval marks errors with
    S, D or I and leaves correct words blank::

        id: u1
        Scores: (#C #S #D #I) 3 1 0 1
        REF:  A B C D *
        HYP:  A X C D E
        Eval:   S     I
    """
    widths = [max(len(r or ""), len(h or ""), 1) for _, r, h in alignment.ops]
    ref = " ".join((r if r is not None else "*" * w).ljust(w) for (_, r, _), w in zip(alignment.ops, widths))
    hyp = " ".join((h if h is not None else "*" * w).ljust(w) for (_, _, h), w in zip(alignment.ops, widths))
    marks = " ".join(("" if op == "C" else op).ljust(w) for (op, _, _), w in zip(alignment.ops, widths))
    n = alignment.counts()
    return "\n".join([f"id: {alignment.uid}", f"Scores: (#C #S #D #I) {n['C']} {n['S']} {n['D']} {n['I']}",
                      f"REF:  {ref}".rstrip(), f"HYP:  {hyp}".rstrip(), f"Eval: {marks}".rstrip()])


def write_alignments(path: str | Path, alignments: Sequence[Alignment], title: str) -> None:
    """Write every utterance's :func:`format_alignment` block to ``path``, after a ``#`` comment ``title``.

    Raises ValueError ``"<path>: cannot write (<reason>)"``.
    """
    blocks = [f"# {title}\n# Eval: S substitution, D deletion, I insertion; asterisks fill the gap in the other line"]
    blocks += [format_alignment(a) for a in alignments]
    try:
        Path(path).write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot write ({e.strerror or e})") from None


def format_table(rows: dict[str, dict]) -> str:
    """A Markdown table with one row per test part: keys of ``rows`` are part names, values :func:`score`'s.

    A ``WER 95% CI`` column is added when any row has a ``wer_ci95`` entry, an ``RTF`` column when any row has
    an ``rtf`` entry; rows without one show ``-`` there.
    """
    with_ci = any("wer_ci95" in row for row in rows.values())
    with_rtf = any("rtf" in row for row in rows.values())
    header = (["part", "WER %"] + (["WER 95% CI"] if with_ci else []) + ["CER %", "sub", "del", "ins", "words",
                                                                          "utts"] + (["RTF"] if with_rtf else []))
    lines = [_table_line(header), _table_line(["---"] + ["---:"] * (len(header) - 1))]
    for name, row in rows.items():
        counts = [row["sub"], row["del"], row["ins"], row["words"], row["utterances"]]
        cells = [_cell(name), f"{row['wer']:.2f}"]
        if with_ci:
            cells.append(_interval(row.get("wer_ci95")))
        cells += [f"{row['cer']:.2f}", *map(str, counts)]
        if with_rtf:
            cells.append(f"{row['rtf']:.4f}" if row.get('rtf') is not None else "-")
        lines.append(_table_line(cells))
    return "\n".join(lines)


def format_errors(name: str, errors: dict[str, list]) -> str:
    """A Markdown table of :func:`frequent_errors`, one rank per line, under a line naming the part."""
    subs, dels, ins = errors["substitutions"], errors["deletions"], errors["insertions"]
    lines = [f"{name}: most frequent errors", "",
             _table_line(["#", "substitution", "n", "deletion", "n", "insertion", "n"]),
             _table_line(["---:", "---", "---:", "---", "---:", "---", "---:"])]
    for rank in range(max(len(subs), len(dels), len(ins))):
        cells = [str(rank + 1)]
        cells += [_cell(f"{subs[rank][0]} -> {subs[rank][1]}"), str(subs[rank][2])] if rank < len(subs) else ["", ""]
        for entries in (dels, ins):
            cells += [_cell(entries[rank][0]), str(entries[rank][1])] if rank < len(entries) else ["", ""]
        lines.append(_table_line(cells))
    return "\n".join(lines)


def format_comparison(rows: dict[str, dict]) -> str:
    """A Markdown table with one row per test part from :func:`paired_bootstrap` results."""
    header = ["part", "utts", "words", "WER A %", "WER B %", "A - B %", "95% CI", "p(A better)", "p(B better)",
              "p(tie)"]
    lines = [_table_line(header), _table_line(["---"] + ["---:"] * (len(header) - 1))]
    for name, row in rows.items():
        lines.append(_table_line([_cell(name), str(row["utterances"]), str(row["words"]), f"{row['wer_a']:.2f}",
                                  f"{row['wer_b']:.2f}", f"{row['diff']:+.2f}", _interval(row["diff_ci95"]),
                                  f"{row['p_a_better']:.3f}", f"{row['p_b_better']:.3f}", f"{row['p_tie']:.3f}"]))
    return "\n".join(lines)


def _interval(bounds: Sequence[float] | None) -> str:
    return "-" if bounds is None else f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
