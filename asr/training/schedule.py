"""Learning-rate schedule: linear warmup, then cosine or exponential decay, as a LambdaLR factor."""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, decay: str = "cosine",
              final_ratio: float = 0.05) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "none":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if decay == "cosine":
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "exponential":
        return final_ratio**progress
    raise ValueError(f"unknown lr decay {decay!r}: use cosine, exponential or none")
