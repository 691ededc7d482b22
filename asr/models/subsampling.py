"""Convolutional front of the listeners: 4x fewer frames before the recurrent layers."""

from __future__ import annotations

import torch
from torch import nn


class Conv2dSubsampling(nn.Sequential):
    """Two strided 3x3 convolutions over (time, mel) without padding, each followed by ReLU.

    (B, T, F) -> (B, T', C * F'), T' = ((T - 3) // 2 - 2) // 2 + 1 and F' likewise: output frame i sees input
    frames 4i .. 4i + 6, so it can run on audio as it arrives (`context_frames` ahead of each step of 4).
    A Sequential, so its parameters are named conv.0 and conv.2 inside a listener.
    """

    reduction = 4
    context_frames = 7

    def __init__(self, input_dim: int, channels: int = 32):
        super().__init__(nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU())
        self.output_dim = channels * (((input_dim - 1) // 2 - 1) // 2)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for `lengths` frames in (0 or less when the input is shorter than `context_frames`)."""
        for _ in range(2):
            lengths = (lengths - 3) // 2 + 1
        return lengths

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = super().forward(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, c * f)
