"""Tests for WER/CER scoring, the results table and the asr-score command."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from asr.cli.score import main
from asr.scoring import (
    format_table,
    read_text_file,
    score,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_hand_counted_example():
    result = score({"u1": "A B C D"}, {"u1": "A X C D E"})
    assert (result["sub"], result["del"], result["ins"], result["words"]) == (1, 0, 1, 4)
    assert result["wer"] == 50.0
    # Characters "A B C D" (7) against "A X C D E" (9): one substitution, two insertions (" E").
    assert (result["cer_sub"], result["cer_del"], result["cer_ins"], result["chars"]) == (1, 0, 2, 7)
    assert result["cer"] == round(100 * 3 / 7, 2)
    assert (result["utterances"], result["missing"]) == (1, 0)


def test_several_utterances_add_up():
    refs = {"a": "THE CAT SAT", "b": "ON THE MAT", "c": "HELLO"}
    hyps = {"a": "THE CAT SAT", "b": "ON MAT", "c": "HELLO THERE WORLD"}
    result = score(refs, hyps)
    assert (result["sub"], result["del"], result["ins"], result["words"]) == (0, 1, 2, 7)
    assert result["wer"] == round(100 * 3 / 7, 2)


def test_missing_hypotheses_are_deletions():
    refs = {"a": "ONE TWO", "b": "THREE FOUR FIVE"}
    result = score(refs, {"a": "ONE TWO", "zzz": "IGNORED WORDS"})
    assert (result["sub"], result["del"], result["ins"]) == (0, 3, 0)
    assert result["missing"] == 1
    assert result["wer"] == 60.0
    assert result["cer_del"] == len("THREE FOUR FIVE")
    assert result["chars"] == len("ONE TWO") + len("THREE FOUR FIVE")


def test_empty_references_are_insertions_only():
    result = score({"a": "", "b": "HI"}, {"a": "NOISE HERE", "b": "HI"})
    assert (result["sub"], result["del"], result["ins"], result["words"]) == (0, 0, 2, 1)
    assert (result["cer_ins"], result["chars"]) == (len("NOISE HERE"), 2)
    assert result["wer"] == 200.0
    only_empty = score({"a": ""}, {"a": ""})
    assert only_empty["wer"] == 0.0 and only_empty["words"] == 0
    assert score({}, {})["utterances"] == 0


def test_whitespace_runs_do_not_count():
    assert score({"a": "A  B "}, {"a": " A B"})["cer"] == 0.0


def test_counts_agree_with_jiwer():
    rng = random.Random(0)
    vocab = ["A", "BE", "CAT", "DOG", "EGG", "FISH"]
    refs, hyps = {}, {}
    for i in range(20):
        refs[f"u{i}"] = " ".join(rng.choices(vocab, k=rng.randint(1, 8)))
        hyps[f"u{i}"] = " ".join(rng.choices(vocab, k=rng.randint(0, 8)))
    result = score(refs, hyps)
    ref_list, hyp_list = list(refs.values()), list(hyps.values())
    words = jiwer.process_words(ref_list, hyp_list)
    chars = jiwer.process_characters(ref_list, hyp_list)
    assert (result["sub"], result["del"], result["ins"]) == (
        words.substitutions, words.deletions, words.insertions)
    assert (result["cer_sub"], result["cer_del"], result["cer_ins"]) == (
        chars.substitutions, chars.deletions, chars.insertions)
    assert result["wer"] == round(100 * words.wer, 2)
    assert result["cer"] == round(100 * chars.cer, 2)


def test_read_text_file(tmp_path: Path):
    path = _write(tmp_path / "t.txt", "u1 HELLO  WORLD\n\nu2\nu3 X\n")
    assert read_text_file(path) == {"u1": "HELLO  WORLD", "u2": "", "u3": "X"}
    _write(path, "u1 A\nu2 B\nu1 C\n")
    with pytest.raises(ValueError, match=r"t\.txt:3: duplicate id u1 \(first on line 1\)"):
        read_text_file(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.txt: no such file"):
        read_text_file(tmp_path / "nope.txt")
    path.write_bytes(b"u1 \xff\xfe\n")
    with pytest.raises(ValueError, match=r"t\.txt: not UTF-8"):
        read_text_file(path)


def test_format_table():
    rows = {"clean": score({"a": "A B C D"}, {"a": "A X C D E"}), "other": score({"a": "X"}, {"a": "X"})}
    table = format_table(rows).splitlines()
    assert table[0] == "| part | WER % | CER % | sub | del | ins | words | utts |"
    assert table[1].startswith("| --- |")
    assert table[2] == "| clean | 50.00 | 42.86 | 1 | 0 | 1 | 4 | 1 |"
    assert table[3] == "| other | 0.00 | 0.00 | 0 | 0 | 0 | 1 | 1 |"
    rows["clean"]["rtf"] = 0.0456
    table = format_table(rows).splitlines()
    assert table[0].endswith("| utts | RTF |")
    assert table[2].endswith("| 0.0456 |") and table[3].endswith("| - |")


def test_cli_single_pair(tmp_path: Path, capsys):
    ref = _write(tmp_path / "ref.txt", "u1 A B C D\nu2 HELLO\n")
    hyp = _write(tmp_path / "hyp.txt", "u1 A X C D E\nu2 HELLO\n")
    out = tmp_path / "wer.json"
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--name", "dev", "--json", str(out)]) == 0
    assert "| dev | 40.00 |" in capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["dev"]
    assert data["dev"]["wer"] == 40.0 and data["dev"]["words"] == 5 and data["dev"]["missing"] == 0


def test_cli_several_pairs(tmp_path: Path, capsys):
    ref1 = _write(tmp_path / "r1.txt", "u1 A B\n")
    hyp1 = _write(tmp_path / "h1.txt", "u1 A B\n")
    ref2 = _write(tmp_path / "r2.txt", "u1 A B\nu2 C\n")
    hyp2 = _write(tmp_path / "h2.txt", "u1 A\n")
    out = tmp_path / "all.json"
    argv = ["--pair", "clean", str(ref1), str(hyp1), "--pair", "other", str(ref2), str(hyp2),
            "--json", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| clean |") and lines[3].startswith("| other |")
    assert "other: 1 of 2 references have no hypothesis" in captured.err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["clean", "other"]
    assert data["other"]["del"] == 2 and data["other"]["missing"] == 1


def test_cli_missing_file_is_one_line(tmp_path: Path, capsys):
    ref = _write(tmp_path / "ref.txt", "u1 A\n")
    missing = tmp_path / "nope.txt"
    assert main(["--ref", str(ref), "--hyp", str(missing), "--json", str(tmp_path / "o.json")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"asr-score: {missing}: no such file\n"
    assert captured.out == ""
    assert not (tmp_path / "o.json").exists()


def test_cli_bad_line_is_one_line(tmp_path: Path, capsys):
    ref = _write(tmp_path / "ref.txt", "u1 A\nu1 B\n")
    assert main(["--pair", "x", str(ref), str(ref)]) == 2
    assert capsys.readouterr().err == f"asr-score: {ref}:2: duplicate id u1 (first on line 1)\n"


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--ref", "only-ref.txt"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_cli_subprocess_exit_status(tmp_path: Path):
    missing = tmp_path / "nope.txt"
    command = [sys.executable, "-m", "asr.cli.score", "--ref", str(missing), "--hyp", str(missing)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"asr-score: {missing}: no such file\n"
    assert "Traceback" not in proc.stderr
