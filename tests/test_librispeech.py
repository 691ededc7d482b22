"""Tests for scanning LibriSpeech-layout subsets and for JSON-lines manifests."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from asr.data.librispeech import Utterance, read_manifest, scan_subset, write_manifest

REAL = Path(__file__).parent / "data" / "librispeech-real" / "LibriSpeech" / "dev-clean"

EXPECTED = {
    "1272-128104-0001": ("1272", 4.815, "NOR IS MISTER QUILTER'S MANNER LESS INTERESTING THAN HIS MATTER"),
    "1272-141231-0000": ("1272", 4.65, "A MAN SAID TO THE UNIVERSE SIR I EXIST"),
    "1272-141231-0002": ("1272", 13.335, None),
    "2412-153948-0000": ("2412", 11.66, None),
    "2412-153948-0001": ("2412", 10.51, None),
}


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    """A writable copy of the real subset, for breaking."""
    return Path(shutil.copytree(REAL, tmp_path / "dev-clean"))


def _ids(utts: list[Utterance]) -> list[str]:
    return [utt.id for utt in utts]


def _remove_line(transcript: Path, uid: str) -> None:
    lines = transcript.read_text(encoding="utf-8").splitlines(keepends=True)
    transcript.write_text("".join(line for line in lines if not line.startswith(uid + " ")), encoding="utf-8")


def test_real_subset_scans_cleanly():
    utts, problems = scan_subset(REAL)
    assert problems == []
    assert _ids(utts) == sorted(EXPECTED)
    for utt in utts:
        speaker, duration, text = EXPECTED[utt.id]
        assert utt.speaker == speaker
        assert utt.duration == pytest.approx(duration, abs=1e-6)
        assert Path(utt.audio).is_absolute() and Path(utt.audio).is_file()
        assert Path(utt.audio).name == f"{utt.id}.flac"
        if text is not None:
            assert utt.text == text
    assert sum(utt.duration for utt in utts) == pytest.approx(44.97, abs=1e-6)
    assert utts[2].text.startswith("THE CUT ON HIS CHEST")
    assert utts[2].text.endswith("NOT WORTH THINKING ABOUT")


def test_missing_subset_raises(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope"):
        scan_subset(tmp_path / "nope")


def test_missing_audio_file(subset: Path):
    chapter = subset / "1272" / "141231"
    (chapter / "1272-141231-0002.flac").unlink()
    utts, problems = scan_subset(subset)
    assert problems == [f"{chapter / '1272-141231.trans.txt'}:2: no audio file 1272-141231-0002.flac"]
    assert _ids(utts) == sorted(set(EXPECTED) - {"1272-141231-0002"})


def test_missing_transcript_line(subset: Path):
    chapter = subset / "2412" / "153948"
    _remove_line(chapter / "2412-153948.trans.txt", "2412-153948-0000")
    utts, problems = scan_subset(subset)
    assert problems == [f"{chapter / '2412-153948-0000.flac'}: no transcript line"]
    assert _ids(utts) == sorted(set(EXPECTED) - {"2412-153948-0000"})


def test_garbage_audio(subset: Path):
    bad = subset / "1272" / "128104" / "1272-128104-0001.flac"
    bad.write_bytes(b"this is not a flac file at all")
    utts, problems = scan_subset(subset)
    assert len(problems) == 1
    assert problems[0].startswith(f"{bad}: unreadable audio (")
    assert "\n" not in problems[0]
    assert _ids(utts) == sorted(set(EXPECTED) - {"1272-128104-0001"})


def test_zero_byte_audio(subset: Path):
    bad = subset / "1272" / "128104" / "1272-128104-0001.flac"
    bad.write_bytes(b"")
    utts, problems = scan_subset(subset)
    assert problems == [f"{bad}: empty audio"]
    assert _ids(utts) == sorted(set(EXPECTED) - {"1272-128104-0001"})


def test_header_only_flac(subset: Path):
    # A valid FLAC signature and STREAMINFO block with a sample count of 0 ("unknown") and no audio frames:
    # what an encoder writes for empty input.
    bad = subset / "2412" / "153948" / "2412-153948-0001.flac"
    streaminfo = bytearray(bad.read_bytes()[4:42])
    streaminfo[0] |= 0x80  # mark it as the last metadata block
    streaminfo[17] &= 0xF0  # total samples: low 4 bits of this byte and the next four bytes
    streaminfo[18:22] = bytes(4)
    bad.write_bytes(b"fLaC" + bytes(streaminfo))
    utts, problems = scan_subset(subset)
    assert problems == [f"{bad}: unknown length (no sample count in the header)"]
    assert _ids(utts) == sorted(set(EXPECTED) - {"2412-153948-0001"})


def test_malformed_line(subset: Path):
    transcript = subset / "1272" / "141231" / "1272-141231.trans.txt"
    with open(transcript, "a", encoding="utf-8") as f:
        f.write("\nNOT-AN-ID-AT-ALL SOME TEXT\n1272-141231-0009\n")
    utts, problems = scan_subset(subset)
    # Line 3 is blank and skipped; line 4 has a bad id, line 5 has no text.
    assert problems == [f"{transcript}:4: malformed line", f"{transcript}:5: malformed line"]
    assert _ids(utts) == sorted(EXPECTED)


def test_duplicate_id_drops_every_copy(subset: Path):
    transcript = subset / "1272" / "141231" / "1272-141231.trans.txt"
    with open(transcript, "a", encoding="utf-8") as f:
        f.write("1272-141231-0000 A DIFFERENT TEXT\n")
    utts, problems = scan_subset(subset)
    assert problems == [f"{transcript}:3: duplicate id 1272-141231-0000 (first at {transcript}:1)"]
    assert _ids(utts) == sorted(set(EXPECTED) - {"1272-141231-0000"})


def test_directory_without_transcripts(subset: Path):
    chapter = subset / "2412" / "153948"
    (chapter / "2412-153948.trans.txt").unlink()
    utts, problems = scan_subset(subset)
    assert problems == [f"{chapter}: no transcript file for 2 audio files"]
    assert {utt.speaker for utt in utts} == {"1272"}


def test_empty_subset(tmp_path: Path):
    utts, problems = scan_subset(tmp_path)
    assert utts == []
    assert problems == [f"{tmp_path}: no transcript files found"]


def test_manifest_round_trip(tmp_path: Path):
    utts, _ = scan_subset(REAL)
    utts.append(Utterance(id="x-y-z", audio="/a/b.flac", duration=1.5, speaker="x", text="ÜBER “QUOTES”"))
    path = tmp_path / "sub" / "manifest.jsonl"
    write_manifest(utts, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(utts)
    assert set(json.loads(lines[0])) == {"id", "audio", "duration", "speaker", "text"}
    assert read_manifest(path) == utts


def test_manifest_bad_line_names_the_line(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    good = json.dumps({"id": "a-b-c", "audio": "/x.flac", "duration": 1.0, "speaker": "a", "text": "HI"})
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: invalid JSON"):
        read_manifest(path)
    path.write_text(good + "\n\n" + json.dumps({"id": "a-b-d", "audio": "/y.flac"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: missing keys duration, speaker, text"):
        read_manifest(path)
    path.write_text(good.replace("1.0", '"long"') + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: duration must be"):
        read_manifest(path)


def test_manifest_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl: no such file"):
        read_manifest(tmp_path / "missing.jsonl")
