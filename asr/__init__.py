"""asr: listen-attend-spell speech recognition. `from asr import Transcriber` for the Python API."""

from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs ship inside the package (the repository's top-level conf/ links here). Absolute, because
# Hydra resolves a relative config_path against the calling module, which differs between console scripts,
# `python -m` and tests.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def __getattr__(name: str):
    # lazy, so that `import asr.cli` does not pay for torch before it needs it
    if name == "Transcriber":
        from .transcriber import Transcriber

        return Transcriber
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
