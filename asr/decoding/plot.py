"""Attention alignment plots: listener frames against output tokens."""

from __future__ import annotations

from pathlib import Path

import torch


def plot_alignment(alignment: torch.Tensor, tokens: list[str], path: str | Path, title: str = "",
                   frame_seconds: float = 0.04) -> None:
    """alignment (U, T') -> PNG with one row per emitted token, time on the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u, t = alignment.shape
    fig, ax = plt.subplots(figsize=(max(6, t / 25), max(3, u / 8)))
    ax.imshow(alignment.float().numpy(), aspect="auto", origin="lower", interpolation="nearest",
              cmap="viridis", extent=(0, t * frame_seconds, -0.5, u - 0.5))
    ax.set_yticks(range(u))
    ax.set_yticklabels([("␣" if c == " " else c) for c in tokens[:u]] + [""] * (u - len(tokens[:u])),
                       fontsize=6)
    ax.set_xlabel("listener time (s)")
    ax.set_ylabel("output token")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
