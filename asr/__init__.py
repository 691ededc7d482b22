"""asr: listen-attend-spell speech recognition. `from asr import Transcriber` for the Python API."""

from collections.abc import Sequence
from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs ship inside the package (the repository's top-level conf/ links here). Absolute, because
# Hydra resolves a relative config_path against the calling module, which differs between console scripts,
# `python -m` and tests.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def compose_config(name: str, overrides: Sequence[str] = ()):
    """conf/<name>.yaml with Hydra overrides (`key=value`, `group=option`), as the console script over it composes
    it: an OmegaConf DictConfig. A missing config or a bad override raises ValueError in one line."""
    from hydra import compose, initialize_config_dir

    if not (Path(CONF_DIR) / f"{name}.yaml").is_file():
        raise ValueError(f"{Path(CONF_DIR) / name}.yaml: no such config")
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
            return compose(name, overrides=list(overrides))
    except Exception as err:  # Hydra's parse and composition errors
        raise ValueError(f"{' '.join(overrides)}: {' '.join(str(err).split())}") from None


def __getattr__(name: str):
    # lazy, so that `import asr.cli` does not pay for torch before it needs it
    if name == "Transcriber":
        from .transcriber import Transcriber

        return Transcriber
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
