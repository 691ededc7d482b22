"""Subtitles (SRT, WebVTT), CTM and the per-input files of asr-transcribe --output-dir, parsed back."""

import json
import re
import shutil

import pytest

from asr.cli.transcribe import main as transcribe_main
from asr.decoding.timestamps import Word, to_ctm, to_srt, to_vtt
from asr.outputs import output_names

SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = map(int, match)
    assert m < 60 and s < 60
    return h * 3600 + m * 60 + s + ms / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a SubRip file; fails on anything that is not one."""
    if not text:
        return []
    assert text.endswith("\n\n") and "\n\n\n" not in text
    cues = []
    for number, block in enumerate(text[:-2].split("\n\n"), 1):
        index, timing, *lines = block.split("\n")
        assert index == str(number)
        m = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", timing)
        assert m, timing
        assert lines and all(lines), block
        cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), " ".join(lines)))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a WebVTT file (no identifiers, settings or notes: we write none)."""
    assert text.startswith("WEBVTT\n\n")
    body = text[len("WEBVTT\n\n"):]
    if not body:
        return []
    assert body.endswith("\n\n") and "\n\n\n" not in body
    cues = []
    for block in body[:-2].split("\n\n"):
        timing, *lines = block.split("\n")
        m = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", timing)
        assert m, timing
        assert lines and all(lines) and not any("-->" in line or "<" in line for line in lines), block
        text = " ".join(lines).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), text))
    return cues


def check_cues(cues, words: list[str]) -> None:
    """Ordered, non-overlapping cues of positive length whose text is the words, in order."""
    previous_end = 0.0
    for start, end, _ in cues:
        assert previous_end <= start < end
        previous_end = end
    assert " ".join(text for _, _, text in cues).split() == words


def parse_ctm(text: str) -> list[tuple[str, str, float, float, str]]:
    rows = []
    for line in text.splitlines():
        utt, channel, start, duration, word = line.split(" ")
        assert re.fullmatch(r"\d+\.\d\d", start) and re.fullmatch(r"\d+\.\d\d", duration), line
        rows.append((utt, channel, float(start), float(duration), word))
    return rows


WORDS = [Word(f"W{i}", 0.3 * i, 0.3 * i + 0.25) for i in range(23)]
# a weak model's attended frames can go backwards and overlap; an hour-long file has hour-long times
AWKWARD = [Word("ONE", 1.0, 1.5), Word("TWO", 0.8, 1.2), Word("A&B<C>", 1.2, 1.2), Word("FOUR", 3599.9, 3601.25)]


@pytest.mark.parametrize("words", [WORDS, AWKWARD, []], ids=["regular", "awkward", "empty"])
def test_srt_and_vtt_parse_back(words):
    texts = [w.word for w in words]
    for parse, write in ((parse_srt, to_srt), (parse_vtt, to_vtt)):
        cues = parse(write(words, max_words=10, max_seconds=5.0))
        check_cues(cues, texts)
        if words is WORDS:
            assert len(cues) == 3 and cues[0][:2] == (0.0, 2.95)  # 10 + 10 + 3 words
        if words is AWKWARD:
            assert cues[-1][:2] == (3599.9, 3601.25)
    assert to_srt([]) == "" and to_vtt([]) == "WEBVTT\n\n"


def test_cues_split_at_max_seconds():
    words = [Word("A", 0.0, 0.5), Word("B", 4.0, 4.5), Word("C", 5.2, 5.6)]
    assert [c[2] for c in parse_srt(to_srt(words, max_words=10, max_seconds=5.0))] == ["A B", "C"]


def test_ctm_lines():
    rows = parse_ctm(to_ctm("utt-1", WORDS[:3]))
    assert rows == [("utt-1", "1", 0.0, 0.25, "W0"), ("utt-1", "1", 0.3, 0.25, "W1"), ("utt-1", "1", 0.6, 0.25, "W2")]
    assert parse_ctm(to_ctm("u", [Word("X", 2.0, 2.0)]))[0][3] == 0.01  # no word lasts nothing
    assert to_ctm("u", []) == ""


def test_output_names_are_distinct():
    assert output_names(["a/x.wav", "b/x.wav", "c/X.flac", "x-2.wav", "y.flac"]) == ["x", "x-2", "X-3", "x-2-2", "y"]


@pytest.fixture(scope="module")
def same_stem(tiny_corpus, tmp_path_factory):
    """Two different utterances of the tiny corpus, both named utt.flac, in a/ and b/."""
    tmp = tmp_path_factory.mktemp("same-stem")
    files = []
    for name, line in zip("ab", (tiny_corpus / "manifests" / "test-seen.jsonl").read_text().splitlines()):
        (tmp / name).mkdir()
        files.append(str(shutil.copy(json.loads(line)["audio"], tmp / name / "utt.flac")))
    return files


def test_output_dir_writes_valid_files_per_input(tiny_model, same_stem, tmp_path, capsys):
    out = tmp_path / "out"
    assert transcribe_main([*same_stem, "--model", str(tiny_model), "--output-dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == same_stem
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{e}" for n in ("utt", "utt-2")
                                                           for e in ("srt", "vtt", "json"))
    for name, source, line in zip(("utt", "utt-2"), same_stem, lines):
        record = json.loads((out / f"{name}.json").read_text())
        words = [w["word"] for w in record["words"]]
        assert record["file"] == source and record["text"] == line.split("\t")[1]
        assert words and words == record["text"].split()  # the trained tiny model hears words in these
        for parse, ext in ((parse_srt, "srt"), (parse_vtt, "vtt")):
            cues = parse((out / f"{name}.{ext}").read_text())
            check_cues(cues, words)
            assert 1 <= len(cues) <= len(words) and cues[-1][1] <= record["duration"] + 0.5


def test_stdout_formats(tiny_model, same_stem, capsys):
    model = ["--model", str(tiny_model)]
    for fmt in ("srt", "vtt"):  # one document per stream: several inputs would make stdout invalid
        assert transcribe_main([*same_stem, *model, "--format", fmt]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "--output-dir" in err
    assert transcribe_main([same_stem[0], *model, "--format", "json"]) == 0
    words = [w["word"] for w in json.loads(capsys.readouterr().out)["words"]]
    assert words
    assert transcribe_main([same_stem[0], *model, "--format", "srt"]) == 0
    check_cues(parse_srt(capsys.readouterr().out), words)
    assert transcribe_main([same_stem[0], *model, "--format", "vtt"]) == 0
    check_cues(parse_vtt(capsys.readouterr().out), words)
    assert transcribe_main([*same_stem, *model, "--format", "ctm"]) == 0
    rows = parse_ctm(capsys.readouterr().out)
    assert [r[4] for r in rows if r[0] == "utt"] == words
    assert {r[0] for r in rows} == {"utt", "utt-2"} and {r[1] for r in rows} == {"1"}
