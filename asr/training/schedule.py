"""Learning-rate schedule: linear warmup, then cosine or exponential decay.

Decay progress is the larger of the step fraction and the fraction of the wall-clock budget spent, so a run
that its time budget cuts short still ends annealed instead of stopping at its peak learning rate.
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, decay: str = "cosine", final_ratio: float = 0.05,
              time_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "none":
        return 1.0
    progress = min(1.0, max((step - warmup_steps) / max(1, total_steps - warmup_steps), time_fraction))
    if decay == "cosine":
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "exponential":
        return final_ratio**progress
    raise ValueError(f"unknown lr decay {decay!r}: use cosine, exponential or none")
