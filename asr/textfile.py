"""Reading the project's small text and YAML files (manifests, transcripts, hypotheses, configs) with one-line
errors, and writing text files atomically."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


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


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text to a temporary file beside `path`, then rename it over `path`: a killed run never leaves
    a torn file. The leading dot keeps the temporary file off globs such as *.trans.txt."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_yaml(path: str | Path):
    """The plain data of a YAML file (OmegaConf's safe loader, interpolations left as text), or ValueError naming
    it."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except Exception as err:  # yaml and OmegaConf raise many types; all mean the file cannot be read
        raise ValueError(f"{path}: not a readable YAML file ({' '.join(str(err).split())})") from None
