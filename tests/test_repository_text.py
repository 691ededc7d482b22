"""Lint: no tracked file uses the words of the project's own development process.

Names such as a numbered stop, a lettered run, a numbered tuning grid or a work session mean something only to
the people who were there. Code, configs, recipes and docs say what a thing does; measurements live in docs/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# (name for the failure message, pattern). Case-insensitive except where a capital letter is the point.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("numbered stop", re.compile(r"(?<![-\w])stops? \d+\b", re.IGNORECASE)),
    ("lettered run", re.compile(r"\b[Rr]uns? [A-K]\b(?![\w-])")),
    ("slow day", re.compile(r"\bslow day\b", re.IGNORECASE)),
    ("from nothing", re.compile(r"\bfrom nothing\b", re.IGNORECASE)),
    ("numbered grid", re.compile(r"\bgrid \d+\b", re.IGNORECASE)),
    ("work session", re.compile(r"\bwork session", re.IGNORECASE)),
]


def tracked_text_files() -> list[str]:
    """Paths (relative to the repository root) of the files git tracks that are UTF-8 text."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = []
    for name in out.decode().split("\0"):
        if not name or name == THIS_FILE:
            continue
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        paths.append(name)
    return paths


def find_phrases(text: str) -> list[tuple[int, str, str]]:
    """(line number, pattern name, matched text) of every development-process phrase in text."""
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in PATTERNS:
            for match in pattern.finditer(line):
                hits.append((number, name, match.group(0)))
    return hits


def test_no_development_process_words():
    files = tracked_text_files()
    assert files, "git ls-files listed no text files"
    hits = []
    for name in files:
        for number, pattern_name, matched in find_phrases((ROOT / name).read_text(encoding="utf-8")):
            hits.append(f"{name}:{number}: {matched!r} ({pattern_name})")
    assert not hits, "development-process words (say what the thing does instead):\n" + "\n".join(hits)


OFFENDING = [
    "stop 19's model: 16: 22.98",
    "the model of Stop 13, the best so far",
    "measured on stops 14 and 15",
    "README, run K)",
    "as in runs H and J",
    "Run A trained for 7 epochs",
    "a slow day on the shared machine",
    "Runs from nothing",
    "checked again on the present model, grid 18",
    "in the last work session",
    "Work sessions 3-4",
]

LEGITIMATE = [
    'run.sh --stop-stage 5 --data "$data"',
    "--stop-stage 2",
    "stop_after_steps: 8",
    "run a test",
    "runs a listener over the batch",
    "run_stage 5 ctc fit_ctc",
    "stage 5's refitted CTC head",
    "the CTC head of stage 5",
    "--grid lm_weight=0.3,0.5",
    "recipes/mini/exp/tune/grid18.json",
    "a session object",
    "run Adam for 4 passes",
    "we run K-means",
    "I COULD DO NOTHING BUT CLUTCH AT HER",
    "the decoder stops after 40 tokens per second",
]


def test_patterns_catch_offending_text():
    missed = [text for text in OFFENDING if not find_phrases(text)]
    assert not missed, f"not caught: {missed}"


def test_patterns_pass_legitimate_text():
    flagged = [(text, find_phrases(text)) for text in LEGITIMATE if find_phrases(text)]
    assert not flagged, f"flagged wrongly: {flagged}"


def test_every_command_help_shows_an_example():
    """Config-driven commands take Hydra overrides, file tools take flags; either way --help shows the command
    used, on a line of its own."""
    import subprocess
    import sys

    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    bin_dir = Path(sys.executable).parent
    for name in scripts:
        out = subprocess.run([str(bin_dir / name), "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{name} --help: {out.stderr[-500:]}"
        assert re.search(rf"^\s+{re.escape(name)} \S", out.stdout, re.MULTILINE), f"{name} --help shows no example"
