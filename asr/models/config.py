"""A model directory's config.yaml: the model's blocks (listener, attention, speller, each naming its class)
and the features it was trained on. Reading it checks every class it names is one of asr.models."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..textfile import load_yaml

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


def write_model_config(directory: str | Path, model_cfg: DictConfig, features: Mapping) -> None:
    """config.yaml: the model's blocks and the front end's settings (`LogMel.settings`)."""
    cfg = OmegaConf.create({"model": model_cfg, "features": dict(features)})
    OmegaConf.save(cfg, Path(directory) / "config.yaml", resolve=True)
