"""A self-contained model directory: config.yaml, tokenizer.json, norm.json and model.pt (weights).

Training writes one in its experiment directory; `asr-export` copies it, with the search to decode with
(search.yaml and lm/, asr/decoding/search_config.py) and a model card (README.md); `Transcriber` and `asr-decode`
load it.
"""

from __future__ import annotations

import importlib
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .data.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from .frontend import GlobalNorm, LogMel
from .models.las import LAS, build_model
from .textfile import load_yaml
from .weights import load_checkpoint

FILES = ("config.yaml", "tokenizer.json", "norm.json", "model.pt")


MODEL_CLASS = re.compile(r"asr\.models(\.\w+)+")


def _targets(node, key: str = "model") -> Iterator[tuple[str, object]]:
    """Every `_target_` in a nested config, with the dotted key of the block that holds it."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "_target_":
                yield key, v
            else:
                yield from _targets(v, f"{key}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def check_model_class(target, where: str) -> None:
    """A `_target_` must name a torch module class of asr.models: a model directory passed around builds the
    package's own layers and never calls anything else it names."""
    cls = None
    if isinstance(target, str) and MODEL_CLASS.fullmatch(target):
        module, _, name = target.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{where}: {target!r} is not a model class of the asr package (asr.models...)")


def read_model_config(path: str | Path) -> DictConfig:
    """config.yaml of a model directory: `model` with listener, attention and speller, and `features.n_mels`.
    A file that is not YAML, lacks one of these or names a class outside asr.models raises ValueError naming
    it."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping with `model` and `features`")
    for key in ("model", "model.listener", "model.attention", "model.speller", "features"):
        node = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise ValueError(f"{path}: missing the `{key}` block")
    n_mels = data["features"].get("n_mels")
    if not isinstance(n_mels, int) or isinstance(n_mels, bool) or n_mels < 1:
        raise ValueError(f"{path}: features.n_mels must be a positive integer, got {n_mels!r}")
    for block in ("listener", "attention"):
        if "_target_" not in data["model"][block]:
            raise ValueError(f"{path}: model.{block} names no class (`_target_`)")
    for key, target in _targets(data["model"]):
        check_model_class(target, f"{path}: {key}._target_")
    return OmegaConf.create(data)


def write_model_config(directory: str | Path, model_cfg: DictConfig, n_mels: int) -> None:
    cfg = OmegaConf.create({"model": model_cfg, "features": {"n_mels": n_mels}})
    OmegaConf.save(cfg, Path(directory) / "config.yaml", resolve=True)


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
    return model, tokenizer, LogMel(cfg.features.n_mels), norm


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
