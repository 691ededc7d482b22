"""asr: listen-attend-spell speech recognition. `from asr import Transcriber` for the Python API."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `import asr.cli` does not pay for torch before it needs it
    if name == "Transcriber":
        from .transcriber import Transcriber

        return Transcriber
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
