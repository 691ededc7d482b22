"""MoChA, monotonic chunkwise attention, Chiu & Raffel 2018: a monotonic head picks where to stop (as in
`MonotonicAttention`), then soft attention over the `chunk` frames ending there gives the context. Training
uses the expected chunk attention, computed with moving sums over frames; decoding the hard chunk.

With `heads` > 1 (Ma et al. 2019), every head has its own monotonic energy and its own chunk energy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import AttentionState
from .monotonic import MonotonicAttention


def moving_sum(x: torch.Tensor, back: int, forward: int) -> torch.Tensor:
    """y_j = sum_{k=j-back}^{j+forward} x_k over the last dim, frames outside counted as 0. x (..., T)."""
    kernel = x.new_ones(1, 1, back + forward + 1)
    flat = F.pad(x.reshape(-1, 1, x.shape[-1]), (back, forward))
    return F.conv1d(flat, kernel).view(x.shape)


def expected_chunk_attention(alpha: torch.Tensor, chunk_energy: torch.Tensor, mask: torch.Tensor, chunk: int
                             ) -> torch.Tensor:
    """beta_{k} = sum_{j=k}^{k+w-1} alpha_j * exp(u_k) / sum_{l=j-w+1}^{j} exp(u_l), all (..., T); mask
    broadcasts against them.

    The softmax of each chunk is shift-invariant, so energies are shifted by their row maximum before exp.
    """
    shifted = chunk_energy.masked_fill(~mask, float("-inf"))
    exp_u = torch.exp(shifted - shifted.max(dim=-1, keepdim=True).values).masked_fill(~mask, 0.0)
    denominators = moving_sum(exp_u, chunk - 1, 0).clamp_min(1e-30)
    return exp_u * moving_sum(alpha / denominators, 0, chunk - 1)


def hard_chunk_attention(position: torch.Tensor, chunk_energy: torch.Tensor, chunk: int) -> torch.Tensor:
    """Softmax over frames [position - chunk + 1, position]; all zero where position is -1.
    position (...), chunk_energy (..., T) -> (..., T)."""
    frames = torch.arange(chunk_energy.shape[-1], device=chunk_energy.device)
    end = position.unsqueeze(-1)
    inside = (frames <= end) & (frames > end - chunk)
    weights = torch.softmax(chunk_energy.masked_fill(~inside, float("-inf")), dim=-1)
    return torch.nan_to_num(weights, nan=0.0) * (end >= 0)


class MoChA(MonotonicAttention):
    """Monotonic chunkwise attention with chunk width `chunk` (frames). The chunk energies are a second
    energy per head over the same projected frames (scorer as the monotonic one; its bias is ignored by the
    softmax), so one batched product per step scores both.

    heads: each head's chunk attention comes from its own monotonic alignment; the context is made with the
    heads' mean chunk attention (see `MonotonicAttention` for why a mean). State: as MonotonicAttention,
    with `weights` the chunk attention the context is made of and extra["alpha"] the monotonic alignments
    (where each head's chunk ends).
    """

    energies_per_head = 2

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 128, chunk: int = 4,
                 noise: float = 1.0, init_bias: float = 0.0, scan_window: int = 8, scorer: str = "dot",
                 heads: int = 1, value_proj: bool = False):
        super().__init__(query_dim, memory_dim, attention_dim, noise, init_bias, scan_window, scorer, heads,
                         value_proj)
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
        self.chunk = chunk

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        alpha, energy, head_position = self.monotonic_weights(query, state)
        h = self.heads
        if self.training:
            beta = expected_chunk_attention(alpha, energy[:, h:], state.mask.unsqueeze(1), self.chunk)
        else:
            beta = hard_chunk_attention(head_position, self.energy(query, state.keys)[:, h:], self.chunk)
        weights = beta.mean(1) if h > 1 else beta[:, 0]
        context = torch.bmm(weights.unsqueeze(1), state.values).squeeze(1)
        return context, weights, self.next_state(state, weights, alpha, head_position)
