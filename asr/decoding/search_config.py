"""The search a model directory carries: `search.yaml` (written by asr-export) holds conf/decode.yaml's `search`
block and its decode-time `window`, and `lm/` the files of the LM directory that search reads. `lm_dir` is
relative to the model directory, so the directory can be moved or copied as a whole.

    search:            # Search.from_config's keys; a key left out takes its default there
      method: beam
      beam_size: 32
      ctc_weight: 0.1
      lm_dir: lm
      ...
    window: null       # or [before, after] listener frames
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from ..models.lexicon_lm import BIGRAM_FILE, LEXICON_FILE
from ..models.lm import LM_CONFIG, LM_WEIGHTS
from ..textfile import load_yaml
from .beam import BeamOptions
from .greedy import LoopGuard
from .search import Search

SEARCH_FILE = "search.yaml"
LM_SUBDIR = "lm"
METHODS = ("greedy", "beam", "ctc_greedy")
INT_KEYS = {"beam_size", "ctc_candidates", "max_ngram_repeats", "repeat_ngram"}
OPTIONAL_KEYS = {"eos_threshold", "lm_dir"}
TEXT_KEYS = {"method", "lm_dir"}


def search_keys() -> set[str]:
    """Every key Search.from_config reads."""
    return ({f.name for f in fields(BeamOptions)} | {f.name for f in fields(LoopGuard)} - {"symbols"}
            | {"method", "max_len_ratio", "lm_dir", "lexicon_oov", "lexicon_bigram"})


@dataclass
class SearchBundle:
    """A model directory's search: `search` is Search.from_config's mapping with lm_dir made absolute, `window`
    the decode-time attention window (before, after) in listener frames, or None."""

    search: dict
    window: tuple[int, int] | None = None

    def build(self) -> Search:
        return Search.from_config(self.search)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_search(search, where: str) -> dict:
    """A `search` mapping with known keys of the right types, or ValueError naming `where` and the key."""
    if not isinstance(search, Mapping):
        raise ValueError(f"{where}: `search` must be a mapping of search settings, got {type(search).__name__}")
    known = search_keys()
    for key, value in search.items():
        if key not in known:
            raise ValueError(f"{where}: unknown search key {key!r} (conf/decode.yaml's `search` names the keys)")
        if value is None and key in OPTIONAL_KEYS:
            continue
        if key in TEXT_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"{where}: search.{key} must be text, got {value!r}")
        elif key in INT_KEYS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{where}: search.{key} must be an integer, got {value!r}")
        elif not _is_number(value):
            raise ValueError(f"{where}: search.{key} must be a number, got {value!r}")
    if search.get("method", "greedy") not in METHODS:
        raise ValueError(f"{where}: search.method must be one of {', '.join(METHODS)}, got {search['method']!r}")
    return dict(search)


def check_window(window, where: str) -> tuple[int, int] | None:
    if window is None:
        return None
    if (not isinstance(window, (list, tuple)) or len(window) != 2
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in window)):
        raise ValueError(f"{where}: window must be null or [before, after] (two frame counts), got {window!r}")
    return int(window[0]), int(window[1])


def read_search_file(directory: str | Path) -> SearchBundle | None:
    """The search of `directory`/search.yaml, or None when the directory carries none. A malformed file, or an
    LM directory it names that is not there, raises ValueError or FileNotFoundError naming the file."""
    path = Path(directory) / SEARCH_FILE
    if not path.is_file():
        return None
    data = load_yaml(path)
    if not isinstance(data, Mapping) or "search" not in data:
        raise ValueError(f"{path}: expected a mapping with a `search` block (asr-export writes it)")
    unknown = set(data) - {"search", "window"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} (search and window are known)")
    search = check_search(data["search"], str(path))
    window = check_window(data.get("window"), str(path))
    lm_dir = search.get("lm_dir")
    if lm_dir:
        resolved = path.parent / lm_dir  # relative to the model directory; an absolute path stays as it is
        if not resolved.is_dir():
            raise FileNotFoundError(f"{path}: search.lm_dir {lm_dir!r} is not a directory ({resolved} is missing)")
        search["lm_dir"] = str(resolved)
    return SearchBundle(search, window)


def lm_files(search: Mapping) -> list[str]:
    """The files of search's lm_dir that Search.from_config reads with these weights."""
    if not search.get("lm_dir"):
        return []
    names = [LM_CONFIG, LM_WEIGHTS] if search.get("lm_weight", 0.0) > 0 else []
    if search.get("lexicon_weight", 0.0) > 0:
        names += ["tokenizer.json", LEXICON_FILE] + ([BIGRAM_FILE] if search.get("lexicon_bigram", 0.0) > 0 else [])
    return names


def write_search_bundle(directory: str | Path, search: Mapping, window=None) -> SearchBundle:
    """Write `directory`/search.yaml and copy the LM files the search reads into `directory`/lm/ (replacing an
    earlier bundle's). The search is built first, so a missing or broken LM file is named before anything is
    written. Returns the bundle as read back from the directory."""
    directory = Path(directory)
    search = check_search(search, "search")
    window = check_window(list(window) if window is not None else None, "window")
    Search.from_config(search)
    target = directory / LM_SUBDIR
    names = lm_files(search)
    source = Path(search["lm_dir"]).resolve() if names else None
    if source != target.resolve():  # re-exporting a directory onto itself keeps its own lm/
        if target.is_dir():
            shutil.rmtree(target)
        if names:
            target.mkdir(parents=True)
            for name in names:
                shutil.copy2(source / name, target / name)
    search["lm_dir"] = LM_SUBDIR if names else None
    text = ("# the search asr-transcribe and Transcriber.from_pretrained use with this model directory (asr-export);"
            "\n# lm_dir is relative to the directory. asr-transcribe --greedy decodes greedily instead.\n")
    (directory / SEARCH_FILE).write_text(text + yaml.safe_dump({"search": search, "window": window and list(window)},
                                                               sort_keys=False))
    return read_search_file(directory)


def remove_search_bundle(directory: str | Path) -> None:
    """Remove an earlier export's search.yaml and lm/: the directory then decodes greedily."""
    directory = Path(directory)
    (directory / SEARCH_FILE).unlink(missing_ok=True)
    if (directory / LM_SUBDIR).is_dir():
        shutil.rmtree(directory / LM_SUBDIR)
