"""asr-transcribe's outputs: one transcript as text, JSON, SRT, WebVTT or CTM, and the files --output-dir writes
for each input (<name>.srt, <name>.vtt, <name>.json)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .decoding.timestamps import to_ctm, to_srt, to_vtt, words_as_dicts

if TYPE_CHECKING:
    from .transcriber import Transcript

FORMATS = ("text", "json", "srt", "vtt", "ctm")
SINGLE_FILE_FORMATS = ("srt", "vtt")  # one document per stream: several inputs cannot share stdout
FILE_FORMATS = ("srt", "vtt", "json")  # what --output-dir writes for each input


def output_names(sources: Sequence[str]) -> list[str]:
    """A distinct name per input, in order: its file name without the extension; an input whose name an earlier
    one took gets -2, -3, ... (a/x.wav, b/x.wav -> x, x-2). Names compare case-insensitively, as some file
    systems do."""
    taken, names = set(), []
    for source in sources:
        stem = Path(source).stem or "input"
        name, n = stem, 1
        while name.casefold() in taken:
            n += 1
            name = f"{stem}-{n}"
        taken.add(name.casefold())
        names.append(name)
    return names


def as_dict(result: Transcript) -> dict:
    return {"file": result.source, "text": result.text, "duration": result.duration,
            "words": words_as_dicts(result.words)}


def render(result: Transcript, fmt: str, name: str) -> str:
    """One transcript in `fmt` (FORMATS), ending with a newline where it is not empty. `name` is the CTM
    utterance id (whitespace, a column separator there, becomes _)."""
    if fmt == "json":
        return json.dumps(as_dict(result)) + "\n"
    if fmt == "srt":
        return to_srt(result.words)
    if fmt == "vtt":
        return to_vtt(result.words)
    if fmt == "ctm":
        return to_ctm(re.sub(r"\s+", "_", name), result.words)
    return f"{result.source}\t{result.text}\n"


def write_outputs(directory: str | Path, name: str, result: Transcript) -> list[Path]:
    """Write `directory`/<name>.srt, .vtt and .json for one transcript; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FILE_FORMATS:
        path = directory / f"{name}.{fmt}"
        text = json.dumps(as_dict(result), indent=1) + "\n" if fmt == "json" else render(result, fmt, name)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
