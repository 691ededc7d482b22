"""Checkpoint averaging: the element-wise mean of the weights of several epochs, chosen as the last N or the
best N by dev CER. An average of late epochs usually decodes a little better than any single one of them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch

from ..weights import load_checkpoint

EPOCH_FILE = re.compile(r"epoch(\d+)\.pt")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean of each floating tensor over `states` (summed in float64, returned in its own dtype); integer
    tensors (counters such as BatchNorm's num_batches_tracked) are taken from the last state."""
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys:
            raise ValueError("checkpoints hold different parameters: they are not from one model")
    out = {}
    for key in keys:
        ref = states[0][key]
        if ref.is_floating_point():
            total = torch.zeros(ref.shape, dtype=torch.float64)
            for state in states:
                total += state[key].double()
            out[key] = (total / len(states)).to(ref.dtype)
        else:
            out[key] = states[-1][key].clone()
    return out


def epoch_checkpoints(exp_dir: Path) -> dict[int, Path]:
    """epochN.pt files of a training directory by epoch number."""
    found = {}
    for path in exp_dir.glob("epoch*.pt"):
        match = EPOCH_FILE.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def dev_cers(exp_dir: Path) -> dict[int, float]:
    """Dev CER per epoch from train_log.csv (the last row of an epoch wins: a resumed run may log it twice)."""
    log = exp_dir / "train_log.csv"
    try:
        with log.open() as f:
            return {int(row["epoch"]): float(row["dev_cer"]) for row in csv.DictReader(f)}
    except FileNotFoundError:
        raise FileNotFoundError(f"{log}: no training log to rank epochs by dev CER") from None
    except (KeyError, ValueError) as err:
        raise ValueError(f"{log}: not a training log ({err})") from None


def select_epochs(exp_dir: str | Path, last: int | None = None, best: int | None = None) -> list[Path]:
    """The epoch files to average: the `last` N epochs, or the `best` N by dev CER (ties: the later epoch)."""
    exp_dir = Path(exp_dir)
    if (last is None) == (best is None):
        raise ValueError("choose either last N or best N epochs")
    count = last if last is not None else best
    if count < 1:
        raise ValueError(f"cannot average {count} checkpoints")
    files = epoch_checkpoints(exp_dir)
    if len(files) < count:
        names = ", ".join(p.name for p in files.values()) or "none"
        raise ValueError(f"{exp_dir}: {count} epochs asked, {len(files)} epoch checkpoints there ({names}); "
                         "train.keep_epochs sets how many training keeps")
    if last is not None:
        return list(files.values())[-count:]
    cers = dev_cers(exp_dir)
    ranked = sorted((e for e in files if e in cers), key=lambda e: (cers[e], -e))
    if len(ranked) < count:
        raise ValueError(f"{exp_dir}/train_log.csv: dev CER of only {len(ranked)} of the kept epochs")
    return [files[e] for e in sorted(ranked[:count])]


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Load model weight files (a bare state dict, or a training checkpoint's "model") and average them."""
    states = []
    for path in paths:
        ckpt = load_checkpoint(path)
        states.append(ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt)
    return average_state_dicts(states)
