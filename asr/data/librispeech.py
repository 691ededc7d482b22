"""Read a LibriSpeech-layout subset into a list of utterances, and store them as a JSON-lines manifest.

The layout is ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one
``<speaker>-<chapter>.trans.txt`` per chapter directory holding ``UTTID TEXT`` lines.

Scanning never stops at a bad file: each problem becomes one line naming the file (and line) and the
utterance concerned is left out, so one broken download does not cost a whole subset.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf

from ..textfile import read_lines

TRANSCRIPT_SUFFIX = ".trans.txt"
AUDIO_SUFFIX = ".flac"

# Three dash-separated parts: speaker, chapter, utterance. Not restricted to digits so that synthetic
# corpora written in the same layout can use readable names.
_UTT_ID = re.compile(r"^([^\s-]+)-([^\s-]+)-([^\s-]+)$")

# libsndfile reports this frame count (SF_COUNT_MAX) when a FLAC header does not say how many samples follow.
_UNKNOWN_FRAMES = 2**63 - 1

MANIFEST_KEYS = ("id", "audio", "duration", "speaker", "text")


@dataclass
class Utterance:
    """One recording with its transcript; ``audio`` is an absolute path, ``duration`` is in seconds."""

    id: str
    audio: str
    duration: float
    speaker: str
    text: str


def scan_subset(subset_dir: str | Path) -> tuple[list[Utterance], list[str]]:
    """Collect the utterances of a LibriSpeech-layout subset directory.

    Returns the good utterances sorted by id and a list of one-line problems such as
    ``".../1272-128104.trans.txt:3: no audio file 1272-128104-0002.flac"``. Raises FileNotFoundError
    only when ``subset_dir`` itself does not exist.
    """
    root = Path(subset_dir)
    if not root.is_dir():
        if root.exists():
            raise NotADirectoryError(f"{root}: not a directory")
        raise FileNotFoundError(f"{root}: no such directory")

    utts: dict[str, Utterance] = {}
    problems: list[str] = []
    first_seen: dict[str, str] = {}  # id -> "file:line" of its first transcript line
    duplicates: set[str] = set()
    any_transcript = False

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # os.walk order is arbitrary; sorting keeps the problem list reproducible
        directory = Path(dirpath)
        audio_files = {name[: -len(AUDIO_SUFFIX)]: directory / name
                       for name in sorted(filenames) if name.endswith(AUDIO_SUFFIX)}
        transcripts = [directory / name for name in sorted(filenames) if name.endswith(TRANSCRIPT_SUFFIX)]
        if not transcripts:
            if audio_files:
                # One line for the directory rather than one "no transcript line" per file.
                problems.append(f"{directory}: no transcript file for {len(audio_files)} audio files")
            continue
        any_transcript = True

        lines: dict[str, tuple[str, str]] = {}  # id -> (text, "file:line")
        for transcript in transcripts:
            for uid, text, where in _read_transcript(transcript, problems):
                if uid in first_seen:
                    problems.append(f"{where}: duplicate id {uid} (first at {first_seen[uid]})")
                    duplicates.add(uid)
                    continue
                first_seen[uid] = where
                lines[uid] = (text, where)

        for uid, (_, where) in lines.items():
            if uid not in audio_files:
                problems.append(f"{where}: no audio file {uid}{AUDIO_SUFFIX}")
        for uid, path in audio_files.items():
            if uid not in lines:
                if uid not in duplicates:
                    problems.append(f"{path}: no transcript line")
                continue
            duration, problem = _audio_duration(path)
            if problem is not None:
                problems.append(f"{path}: {problem}")
                continue
            utts[uid] = Utterance(id=uid, audio=os.path.abspath(path), duration=duration,
                                  speaker=uid.split("-")[0], text=lines[uid][0])

    if not any_transcript:
        problems.append(f"{root}: no transcript files found")
    # Which copy of a duplicated id is right cannot be told, so every copy goes.
    good = [utt for uid, utt in utts.items() if uid not in duplicates]
    return sorted(good, key=lambda utt: utt.id), problems


def _read_transcript(path: Path, problems: list[str]) -> list[tuple[str, str, str]]:
    """Parse one ``.trans.txt`` into ``(id, text, "file:line")`` triples, appending problems for bad lines."""
    try:
        with open(path, encoding="utf-8") as f:
            raw_lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: unreadable transcript ({_one_line(e)})")
        return []
    entries = []
    for lineno, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) < 2 or not _UTT_ID.match(parts[0]):
            problems.append(f"{path}:{lineno}: malformed line")
            continue
        entries.append((parts[0], parts[1].strip(), f"{path}:{lineno}"))
    return entries


def _audio_duration(path: Path) -> tuple[float, str | None]:
    """Duration in seconds from the audio header alone, or a problem description instead."""
    try:
        if path.stat().st_size == 0:
            return 0.0, "empty audio"
        info = sf.info(str(path))
    except (OSError, RuntimeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        return 0.0, f"unreadable audio ({_one_line(e)})"
    if info.frames >= _UNKNOWN_FRAMES:
        # libsndfile cannot decode such files reliably (it fails seeking past the end), so reject them.
        return 0.0, "unknown length (no sample count in the header)"
    if info.frames <= 0 or info.samplerate <= 0:
        return 0.0, "empty audio"
    return info.frames / info.samplerate, None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def write_manifest(utts: list[Utterance], path: str | Path) -> None:
    """Write utterances as JSON lines: one object per utterance, keys id, audio, duration, speaker, text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt in utts:
            f.write(json.dumps(asdict(utt), ensure_ascii=False) + "\n")


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest`.

    Raises FileNotFoundError for a missing file and ValueError ``"<path>:<line>: <problem>"`` for a bad line.
    Blank lines are skipped and unknown keys ignored, so manifests may carry extra fields.
    """
    utts = []
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            utts.append(_utterance_from_json(line))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {e}") from None
    return utts


def _utterance_from_json(line: str) -> Utterance:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    missing = [key for key in MANIFEST_KEYS if key not in obj]
    if missing:
        raise ValueError(f"missing {'key' if len(missing) == 1 else 'keys'} {', '.join(missing)}")
    for key in ("id", "audio", "speaker", "text"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key} must be a string")
    duration = obj["duration"]
    # bool is an int subclass; true/false as a duration is a bug upstream, not a length.
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration < 0:
        raise ValueError("duration must be a non-negative number")
    return Utterance(id=obj["id"], audio=obj["audio"], duration=float(duration), speaker=obj["speaker"],
                     text=obj["text"])
