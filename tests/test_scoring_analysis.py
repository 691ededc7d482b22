"""asr-score beyond the totals: per-utterance alignments, frequent errors, bootstrap confidence intervals and the
paired comparison of two systems."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest

from asr.cli.score import main
from asr.scoring import (
    LEN,
    bootstrap_ci,
    frequent_errors,
    paired_bootstrap,
    read_text_file,
    resample_sums,
    score,
    score_part,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path

VOCAB = ["A", "BE", "CAT", "DOG", "EGG", "FISH", "GO", "HAT"]


def _noisy_copy(rng: np.random.Generator, words: list[str], error_rate: float) -> str:
    """words with about error_rate of them substituted, deleted or followed by an insertion."""
    out = []
    for word in words:
        roll = rng.random()
        if roll < error_rate / 2:
            out.append(VOCAB[(VOCAB.index(word) + 1) % len(VOCAB)])
        elif roll < 3 * error_rate / 4:
            continue
        elif roll < error_rate:
            out += [word, "UM"]
        else:
            out.append(word)
    return " ".join(out)


def _corpus(n: int, error_rates: tuple[float, ...], seed: int = 0) -> tuple[dict, list[dict]]:
    """n random references and one noisy hypothesis set per error rate."""
    rng = np.random.default_rng(seed)
    refs = {f"u{i:04d}": [VOCAB[k] for k in rng.integers(0, len(VOCAB), rng.integers(3, 15))] for i in range(n)}
    hyps = [{uid: _noisy_copy(rng, words, rate) for uid, words in refs.items()} for rate in error_rates]
    return {uid: " ".join(words) for uid, words in refs.items()}, hyps


def _write_texts(path: Path, texts: dict[str, str]) -> Path:
    return _write(path, "".join(f"{uid} {text}\n" for uid, text in texts.items()))


def test_cli_counts_agree_with_jiwer_on_files_with_empty_lines(tmp_path: Path):
    ref = _write(tmp_path / "ref.txt", "u1 THE CAT SAT\n\nu2 ON  THE MAT\nu3\nu4 A DOG\n\nu5 GO HOME NOW\n")
    hyp = _write(tmp_path / "hyp.txt", "u1 THE HAT SAT DOWN\nu2\n\nu3 UM\nu4 A DOG\nu5 GO NOW\n")
    out = tmp_path / "wer.json"
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--json", str(out)]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))["ref"]
    refs, hyps = read_text_file(ref), read_text_file(hyp)
    ref_list = [" ".join(refs[uid].split()) for uid in refs]
    hyp_list = [" ".join(hyps[uid].split()) for uid in refs]
    words = jiwer.process_words(ref_list, hyp_list)
    chars = jiwer.process_characters(ref_list, hyp_list)
    assert (row["sub"], row["del"], row["ins"]) == (words.substitutions, words.deletions, words.insertions)
    assert (row["cer_sub"], row["cer_del"], row["cer_ins"]) == (chars.substitutions, chars.deletions,
                                                                 chars.insertions)
    assert row["wer"] == round(100 * jiwer.wer(ref_list, hyp_list), 2)
    assert row["cer"] == round(100 * jiwer.cer(ref_list, hyp_list), 2)
    assert row["utterances"] == 5 and row["words"] == sum(len(r.split()) for r in ref_list)


def test_per_utterance_counts_and_alignments_agree_with_jiwer():
    refs, (hyps,) = _corpus(40, (0.3,))
    refs["empty-ref"], hyps["empty-ref"] = "", "UM UM"
    refs["empty-hyp"], hyps["empty-hyp"] = "A CAT", ""
    part = score_part(refs, hyps)
    for i, uid in enumerate(part.uids):
        alone = jiwer.process_words(refs[uid], hyps[uid])
        assert list(part.word_counts[i]) == [alone.substitutions, alone.deletions, alone.insertions,
                                             len(refs[uid].split())]
        chars = jiwer.process_characters(refs[uid], hyps[uid])
        assert list(part.char_counts[i, :3]) == [chars.substitutions, chars.deletions, chars.insertions]
        ops = part.alignments[i].ops
        # The alignment spells out both texts, and its ops add up to the counts.
        assert [r for _, r, _ in ops if r is not None] == refs[uid].split()
        assert [h for _, _, h in ops if h is not None] == hyps[uid].split()
        assert all((r == h) == (op == "C") for op, r, h in ops if op in "CS")
        n = part.alignments[i].counts()
        assert [n["S"], n["D"], n["I"]] == list(part.word_counts[i, :3])


def test_frequent_errors():
    refs = {"a": "THE CAT SAT", "b": "THE CAT RAN", "c": "A DOG", "d": "THE END"}
    hyps = {"a": "THE BAT SAT", "b": "THE BAT RAN UM", "c": "A DOG UM ER", "d": "END"}
    part = score_part(refs, hyps)
    errors = frequent_errors(part.alignments, top=10)
    assert errors["substitutions"] == [["CAT", "BAT", 2]]
    assert errors["deletions"] == [["THE", 1]]
    assert errors["insertions"] == [["UM", 2], ["ER", 1]]  # most frequent first, then alphabetical
    assert frequent_errors(part.alignments, top=1)["insertions"] == [["UM", 2]]
    # With room for all of them, the listed errors add up to the totals.
    refs, (hyps,) = _corpus(60, (0.4,))
    part = score_part(refs, hyps)
    total = part.summary()
    errors = frequent_errors(part.alignments, top=10**6)
    assert sum(n for *_, n in errors["substitutions"]) == total["sub"]
    assert sum(n for _, n in errors["deletions"]) == total["del"]
    assert sum(n for _, n in errors["insertions"]) == total["ins"]


def _read_alignment_file(path: Path) -> dict[str, dict]:
    """Parse an alignment file back: per id, the Scores counts, the words of REF/HYP and the Eval marks."""
    parsed = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        if not lines:
            continue
        assert lines[0].startswith("id: ") and lines[1].startswith("Scores: (#C #S #D #I) ")
        ref_line, hyp_line, eval_line = (line[6:] for line in lines[2:5])
        starts = [m.start() for m in re.finditer(r"\S+", ref_line)]
        ref_cols, hyp_cols = ref_line.split(), hyp_line.split()
        assert len(ref_cols) == len(hyp_cols) == len(starts)
        marks = [eval_line[i] if i < len(eval_line) else "C" for i in starts]
        marks = ["C" if m == " " else m for m in marks]

        def words(cols: list[str]) -> list[str]:
            return [w for w in cols if set(w) != {"*"}]

        parsed[lines[0][4:]] = {"scores": [int(x) for x in lines[1].split()[-4:]], "marks": marks,
                                "ref": words(ref_cols), "hyp": words(hyp_cols), "cols": list(zip(ref_cols, hyp_cols))}
    return parsed


def test_alignment_file_round_trips_the_counts(tmp_path: Path):
    refs, (hyps,) = _corpus(30, (0.35,), seed=3)
    refs["silent"], hyps["silent"] = "", "UM"
    ref, hyp = _write_texts(tmp_path / "ref.txt", refs), _write_texts(tmp_path / "hyp.txt", hyps)
    out = tmp_path / "wer.json"
    assert main(["--pair", "dev", str(ref), str(hyp), "--align-dir", str(tmp_path / "align"),
                 "--json", str(out)]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))["dev"]
    assert row["alignments"] == str(tmp_path / "align" / "dev.align.txt")
    parsed = _read_alignment_file(Path(row["alignments"]))
    assert list(parsed) == list(refs)
    totals = {"S": 0, "D": 0, "I": 0}
    for uid, utt in parsed.items():
        marks = utt["marks"]
        assert utt["scores"] == [marks.count(op) for op in "CSDI"]
        assert utt["ref"] == refs[uid].split() and utt["hyp"] == hyps[uid].split()
        for mark, (r, h) in zip(marks, utt["cols"]):
            assert (r == h) == (mark == "C")
        for op in totals:
            totals[op] += marks.count(op)
    assert (totals["S"], totals["D"], totals["I"]) == (row["sub"], row["del"], row["ins"])


def test_resample_sums_equal_explicit_resampling():
    values = np.random.default_rng(5).integers(-3, 20, size=(37, 3))
    fast = resample_sums(values, 200, seed=11)
    picks = np.random.default_rng(11).integers(0, len(values), size=(200, len(values)))
    assert np.array_equal(fast, values[picks].sum(axis=1))
    assert np.array_equal(resample_sums(values, 200, seed=11), fast)  # the seed fixes the draws


def test_resample_sums_in_blocks(monkeypatch):
    import asr.scoring

    monkeypatch.setattr(asr.scoring, "_BLOCK_PICKS", 3 * 37)  # 3 resamples a block, the last one short
    values = np.stack([np.ones(37), np.arange(37)], axis=1)
    sums = resample_sums(values, 100, seed=0)
    assert sums.shape == (100, 2) and np.all(sums[:, 0] == 37)  # every resample draws N utterances
    assert len(np.unique(sums[:, 1])) > 50  # and the blocks do not repeat one another


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_utterances():
    widths = []
    for n in (40, 4000):
        refs, (hyps,) = _corpus(n, (0.2,), seed=n)
        part = score_part(refs, hyps)
        wer, cer = part.summary()["wer"], part.summary()["cer"]
        low, high = bootstrap_ci(part.word_counts, 1000, seed=0)
        assert low <= wer <= high and low < high
        char_low, char_high = bootstrap_ci(part.char_counts, 1000, seed=0)
        assert char_low <= cer <= char_high
        widths.append(high - low)
    # The interval shrinks like 1/sqrt(N): 100x the utterances, about a tenth of the width.
    assert widths[1] < widths[0] / 5


def test_paired_bootstrap_of_a_system_with_itself_is_a_tie():
    refs, (hyps,) = _corpus(50, (0.3,))
    counts = score_part(refs, hyps).word_counts
    result = paired_bootstrap(counts, counts, 500, seed=0)
    assert result["p_tie"] == 1.0 and result["p_a_better"] == result["p_b_better"] == 0.0
    assert result["diff"] == 0.0 and result["diff_ci95"] == [0.0, 0.0]


def test_paired_bootstrap_of_mirror_systems_is_near_half():
    # A errs only on the first half, B the same amounts only on the second: neither is better.
    n = 200
    rng = np.random.default_rng(1)
    errors = rng.integers(1, 4, n // 2)
    counts_a, counts_b = np.zeros((n, 4), dtype=np.int64), np.zeros((n, 4), dtype=np.int64)
    counts_a[:, LEN] = counts_b[:, LEN] = 15
    counts_a[: n // 2, 0], counts_b[n // 2:, 0] = errors, errors
    ab = paired_bootstrap(counts_a, counts_b, 1000, seed=0)
    ba = paired_bootstrap(counts_b, counts_a, 1000, seed=0)
    assert ab["wer_a"] == ab["wer_b"] and ab["diff"] == 0.0
    assert abs(ab["p_a_better"] - 0.5) < 0.1 and abs(ab["p_b_better"] - 0.5) < 0.1
    assert ab["p_a_better"] + ab["p_b_better"] + ab["p_tie"] == pytest.approx(1.0)
    # Swapping the systems mirrors everything (same seed, same resamples).
    assert (ba["p_a_better"], ba["p_b_better"]) == (ab["p_b_better"], ab["p_a_better"])
    assert ba["diff_ci95"] == [-ab["diff_ci95"][1], -ab["diff_ci95"][0]]


def test_paired_bootstrap_finds_a_clearly_better_system():
    refs, (good, bad) = _corpus(300, (0.05, 0.15))
    result = paired_bootstrap(score_part(refs, good).word_counts, score_part(refs, bad).word_counts, 1000, 0)
    assert result["p_a_better"] > 0.95
    assert result["diff"] < 0 and result["diff_ci95"][0] <= result["diff"] <= result["diff_ci95"][1] < 0
    with pytest.raises(ValueError, match="not scored on the same references"):
        paired_bootstrap(score_part(refs, good).word_counts, score_part({"x": "A"}, {"x": "A"}).word_counts,
                         10, 0)


def test_cli_reports_intervals_and_errors(tmp_path: Path, capsys):
    refs, (hyps,) = _corpus(50, (0.3,))
    ref, hyp = _write_texts(tmp_path / "ref.txt", refs), _write_texts(tmp_path / "hyp.txt", hyps)
    out = tmp_path / "wer.json"
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--name", "dev", "--json", str(out), "--show-errors",
                 "--top", "3", "--resamples", "200", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    row = json.loads(out.read_text(encoding="utf-8"))["dev"]
    assert row["wer_ci95"] == bootstrap_ci(score_part(refs, hyps).word_counts, 200, 7)
    assert row["wer_ci95"][0] <= row["wer"] <= row["wer_ci95"][1]
    assert row["bootstrap"] == {"resamples": 200, "seed": 7}
    assert row["errors"] == frequent_errors(score_part(refs, hyps).alignments, 3)
    assert "| part | WER % | WER 95% CI | CER % |" in printed
    assert f"| dev | {row['wer']:.2f} | [{row['wer_ci95'][0]:.2f}, {row['wer_ci95'][1]:.2f}] |" in printed
    sub = row["errors"]["substitutions"][0]
    assert "dev: most frequent errors" in printed and f"| 1 | {sub[0]} -> {sub[1]} | {sub[2]} |" in printed
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--json", str(out), "--resamples", "0"]) == 0
    assert "wer_ci95" not in json.loads(out.read_text(encoding="utf-8"))["ref"]
    assert "CI" not in capsys.readouterr().out


def test_cli_compare_files_and_decode_dirs(tmp_path: Path, capsys):
    refs, (good, bad) = _corpus(120, (0.05, 0.2))
    parts = ("test-one", "test-two")
    for system, hyps in (("a", good), ("b", bad)):
        for part in parts:
            part_dir = tmp_path / system / "decode" / part
            part_dir.mkdir(parents=True)
            _write_texts(part_dir / "ref.txt", refs)
            _write_texts(part_dir / "hyp.txt", hyps)
    out = tmp_path / "compare.json"
    dir_a, dir_b = tmp_path / "a" / "decode", tmp_path / "b" / "decode"
    assert main(["compare", str(dir_a), str(dir_b), "--json", str(out), "--resamples", "300"]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert list(rows) == list(parts)
    for part in parts:
        row = rows[part]
        assert row["wer_a"] == score(refs, good)["wer"] and row["wer_b"] == score(refs, bad)["wer"]
        assert row["p_a_better"] > 0.95 and row["resamples"] == 300
        assert any(line.startswith(f"| {part} | 120 |") for line in printed)
    # One part directory each, or two hypothesis files and a reference: the same numbers.
    assert main(["compare", str(dir_a / "test-one"), str(dir_b / "test-one"), "--json", str(out),
                 "--resamples", "300"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["test-one"]["diff"] == rows["test-one"]["diff"]
    assert main(["compare", str(dir_a / "test-one" / "hyp.txt"), str(dir_b / "test-one" / "hyp.txt"),
                 "--ref", str(dir_a / "test-one" / "ref.txt"), "--name", "x", "--json", str(out),
                 "--resamples", "300"]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))["x"]
    assert (row["diff"], row["diff_ci95"], row["p_a_better"]) == (
        rows["test-one"]["diff"], rows["test-one"]["diff_ci95"], rows["test-one"]["p_a_better"])


def test_cli_missing_utterance_id_is_one_line(tmp_path: Path, capsys):
    ref = _write(tmp_path / "ref.txt", "u1 A B\nu2 C\nu3 D E\n")
    hyp_a = _write(tmp_path / "a.txt", "u1 A B\nu2 C\nu3 D\n")
    hyp_b = _write(tmp_path / "b.txt", "u1 A B\nu3 D E\n")
    out = tmp_path / "c.json"
    assert main(["compare", str(hyp_a), str(hyp_b), "--ref", str(ref), "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"asr-score: {hyp_b}: utterance u2 of {ref} is missing\n"
    assert captured.out == "" and not out.exists()
    assert main(["--ref", str(ref), "--hyp", str(hyp_b), "--strict"]) == 2
    assert capsys.readouterr().err == f"asr-score: {hyp_b}: utterance u2 of {ref} is missing\n"
    # Without --strict a missing hypothesis is scored as deletions, with a warning naming the file and id.
    assert main(["--ref", str(ref), "--hyp", str(hyp_b)]) == 0
    assert f"1 of 3 references have no hypothesis in {hyp_b}, first u2" in capsys.readouterr().err
    extra = _write(tmp_path / "extra.txt", "u1 A B\nu2 C\nu3 D E\nu9 X\n")
    assert main(["compare", str(hyp_a), str(extra), "--ref", str(ref)]) == 2
    assert capsys.readouterr().err == f"asr-score: {extra}: utterance u9 is not in {ref}\n"


def test_cli_compare_refuses_different_references_and_bad_paths(tmp_path: Path, capsys):
    for system, text in (("a", "u1 A B\nu2 C\n"), ("b", "u1 A B\nu2 D\n")):
        (tmp_path / system).mkdir()
        _write(tmp_path / system / "ref.txt", text)
        _write(tmp_path / system / "hyp.txt", "u1 A B\nu2 C\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == f"asr-score: {tmp_path / 'b' / 'ref.txt'}: utterance u2 differs from " \
                                      f"{tmp_path / 'a' / 'ref.txt'}\n"
    hyp = tmp_path / "a" / "hyp.txt"
    assert main(["compare", str(hyp), str(hyp)]) == 2
    assert capsys.readouterr().err == (f"asr-score: {hyp}: not a decode directory "
                                       "(give --ref REF to compare two hypothesis files)\n")
    assert main(["compare", str(tmp_path), str(tmp_path / "a")]) == 2  # parts a, b against one part
    assert "no part" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(hyp), str(hyp), "--resamples", "0", "--ref", str(hyp)])
    assert exc.value.code == 2
