"""A self-contained model directory: config.yaml, tokenizer.json, norm.json and model.pt (weights).

Training writes one in its experiment directory; `asr-export` copies it; `Transcriber` and `asr-decode` load it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .data.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from .frontend import GlobalNorm, LogMel
from .models.las import LAS, build_model
from .training.checkpoint import load_checkpoint

FILES = ("config.yaml", "tokenizer.json", "norm.json", "model.pt")


def write_model_config(directory: str | Path, model_cfg: DictConfig, n_mels: int) -> None:
    cfg = OmegaConf.create({"model": model_cfg, "features": {"n_mels": n_mels}})
    OmegaConf.save(cfg, Path(directory) / "config.yaml", resolve=True)


def load_model_dir(directory: str | Path) -> tuple[LAS, CharTokenizer | SentencePieceTokenizer, LogMel, GlobalNorm]:
    """Load a model directory for inference (model in eval mode). Errors are one line naming the path."""
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: not a model directory (missing {', '.join(missing)})")
    cfg = OmegaConf.load(directory / "config.yaml")
    tokenizer = load_tokenizer(directory / "tokenizer.json")
    norm = GlobalNorm.load(directory / "norm.json")
    model = build_model(cfg.model, len(tokenizer), cfg.features.n_mels)
    try:
        model.load_state_dict(load_checkpoint(directory / "model.pt"))
    except RuntimeError as err:
        raise ValueError(f"{directory / 'model.pt'}: weights do not match config.yaml "
                         f"({str(err).splitlines()[0]})") from None
    model.eval()
    return model, tokenizer, LogMel(cfg.features.n_mels), norm


def export_model_dir(source: str | Path, target: str | Path, weights: str | Path | None = None) -> Path:
    """Copy a model directory (optionally with other weights, e.g. an average) to `target`."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES[:-1]:
        shutil.copy2(source / name, target / name)
    weights = Path(weights) if weights else source / "model.pt"
    state = load_checkpoint(weights)
    torch.save(state.get("model", state), target / "model.pt")
    return target
