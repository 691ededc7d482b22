"""Reading the project's small text files (manifests, transcripts, hypotheses) with one-line errors."""

from __future__ import annotations

from pathlib import Path


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file. Raises FileNotFoundError "<path>: no such file", or ValueError
    "<path>: <problem>" for a file that cannot be read or is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
