"""A self-contained model directory: config.yaml, tokenizer.json, norm.json and model.pt (weights).

Training writes one in its experiment directory; `asr-export` copies it, with the search to decode with
(search.yaml and lm/, asr/decoding/search_config.py) and a model card (README.md); `Transcriber` and `asr-decode`
load it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .data.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from .frontend import GlobalNorm, LogMel
from .models.config import read_model_config
from .models.las import LAS, build_model
from .weights import load_checkpoint

FILES = ("config.yaml", "tokenizer.json", "norm.json", "model.pt")


def load_model_dir(directory: str | Path) -> tuple[LAS, CharTokenizer | SentencePieceTokenizer, LogMel, GlobalNorm]:
    """Load a model directory for inference (model in eval mode). Errors are one line naming the path."""
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: not a model directory (missing {', '.join(missing)})")
    cfg = read_model_config(directory / "config.yaml")
    tokenizer = load_tokenizer(directory / "tokenizer.json")
    norm = GlobalNorm.load(directory / "norm.json")
    try:
        model = build_model(cfg.model, len(tokenizer), cfg.features.n_mels)
    except Exception as err:  # whatever the settings break in a constructor, the file to fix is config.yaml
        raise ValueError(f"{directory / 'config.yaml'}: cannot build the model "
                         f"({' '.join(str(err).split()) or type(err).__name__})") from None
    try:
        model.load_state_dict(load_checkpoint(directory / "model.pt"))
    except RuntimeError as err:
        raise ValueError(f"{directory / 'model.pt'}: weights do not match config.yaml "
                         f"({str(err).splitlines()[0]})") from None
    model.eval()
    try:
        logmel = LogMel.from_config(cfg.features)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{directory / 'config.yaml'}: {err}") from None
    norm.check(logmel, str(directory / "norm.json"))
    return model, tokenizer, logmel, norm


def export_model_dir(source: str | Path, target: str | Path, weights: str | Path | None = None) -> Path:
    """Copy a model directory (optionally with other weights, e.g. an average) to `target`."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"{target}: the model directory to write must differ from the source")
    missing = [f for f in FILES[:-1] if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: not a model directory (missing {', '.join(missing)})")
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES[:-1]:
        shutil.copy2(source / name, target / name)
    weights = Path(weights) if weights else source / "model.pt"
    state = load_checkpoint(weights)
    torch.save(state.get("model", state), target / "model.pt")
    return target
