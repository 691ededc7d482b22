"""MoChA, monotonic chunkwise attention, Chiu & Raffel 2018: a monotonic head picks where to stop (as in
`MonotonicAttention`), then soft attention over the `chunk` frames ending there gives the context. Training
uses the expected chunk attention, computed with moving sums over frames; decoding the hard chunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import AttentionState
from .monotonic import MonotonicAttention


def moving_sum(x: torch.Tensor, back: int, forward: int) -> torch.Tensor:
    """y_j = sum_{k=j-back}^{j+forward} x_k over the last dim, frames outside counted as 0. x (B, T)."""
    kernel = x.new_ones(1, 1, back + forward + 1)
    return F.conv1d(F.pad(x.unsqueeze(1), (back, forward)), kernel).squeeze(1)


def expected_chunk_attention(alpha: torch.Tensor, chunk_energy: torch.Tensor, mask: torch.Tensor, chunk: int
                             ) -> torch.Tensor:
    """beta_{k} = sum_{j=k}^{k+w-1} alpha_j * exp(u_k) / sum_{l=j-w+1}^{j} exp(u_l), all (B, T).

    The softmax of each chunk is shift-invariant, so energies are shifted by their row maximum before exp.
    """
    shifted = chunk_energy.masked_fill(~mask, float("-inf"))
    exp_u = torch.exp(shifted - shifted.max(dim=-1, keepdim=True).values).masked_fill(~mask, 0.0)
    denominators = moving_sum(exp_u, chunk - 1, 0).clamp_min(1e-30)
    return exp_u * moving_sum(alpha / denominators, 0, chunk - 1)


def hard_chunk_attention(position: torch.Tensor, chunk_energy: torch.Tensor, chunk: int) -> torch.Tensor:
    """Softmax over frames [position - chunk + 1, position]; all zero where position is -1. (B, T)."""
    frames = torch.arange(chunk_energy.shape[1], device=chunk_energy.device)[None, :]
    inside = (frames <= position[:, None]) & (frames > position[:, None] - chunk)
    weights = torch.softmax(chunk_energy.masked_fill(~inside, float("-inf")), dim=-1)
    return torch.nan_to_num(weights, nan=0.0) * (position >= 0).unsqueeze(1)


class MoChA(MonotonicAttention):
    """Monotonic chunkwise attention with chunk width `chunk` (frames). The chunk energies are a separate
    additive (MLP) scorer over the same listener frames.

    State: as MonotonicAttention, with `weights` the monotonic alignment (where the chunk ends); the
    weights returned to the speller are the chunk attention the context is made of.
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 128, chunk: int = 4,
                 noise: float = 1.0, init_bias: float = -4.0, scan_window: int = 8):
        super().__init__(query_dim, memory_dim, attention_dim, noise, init_bias, scan_window)
        self.chunk = chunk
        self.chunk_query = nn.Linear(query_dim, attention_dim, bias=False)
        self.chunk_key = nn.Linear(memory_dim, attention_dim)
        self.chunk_score = nn.Linear(attention_dim, 1, bias=False)

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        state = super().init_state(memory, lengths)
        state.extra["chunk_keys"] = self.chunk_key(memory)
        return state

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        alpha, position = self.monotonic_weights(query, state)
        hidden = torch.tanh(state.extra["chunk_keys"] + self.chunk_query(query).unsqueeze(1))
        chunk_energy = self.chunk_score(hidden).squeeze(-1)
        if self.training:
            weights = expected_chunk_attention(alpha, chunk_energy, state.mask, self.chunk)
        else:
            weights = hard_chunk_attention(position, chunk_energy, self.chunk)
        context = torch.bmm(weights.unsqueeze(1), state.values).squeeze(1)
        extra = {"position": position, "chunk_keys": state.extra["chunk_keys"]}
        return context, weights, AttentionState(state.keys, state.values, state.mask, alpha, extra)
