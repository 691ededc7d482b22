"""Checkpoint files: written atomically, loaded safely (tensors and plain values only). Every layer that
saves or loads weights (models, the model directory, training, the CLIs) goes through these two."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write to a temporary file in the same directory, then rename: a killed run never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load with weights_only=True: a checkpoint holds tensors and plain values, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except Exception as err:
        raise ValueError(f"{path}: unreadable checkpoint ({str(err).splitlines()[0]})") from None
