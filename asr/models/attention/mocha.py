"""MoChA, monotonic chunkwise attention, Chiu & Raffel 2018: a monotonic head picks where to stop (as in
`MonotonicAttention`), then soft attention over the `chunk` frames ending there gives the context. Training
uses the expected chunk attention, computed chunk by chunk in log space; decoding the hard chunk.

With `heads` > 1 (Ma et al. 2019), every head has its own monotonic energy and its own chunk energy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import AttentionState
from .monotonic import MonotonicAttention


def expected_chunk_attention(alpha: torch.Tensor, chunk_energy: torch.Tensor, mask: torch.Tensor, chunk: int
                             ) -> torch.Tensor:
    """beta_{k} = sum_{j=k}^{k+w-1} alpha_j * exp(u_k) / sum_{l=j-w+1}^{j} exp(u_l), all (..., T); mask
    broadcasts against them.

    Each term is alpha_j * exp(u_k - log D_j), with log D_j the log-sum-exp of chunk j's own energies: k lies in
    chunk j, so the exponent is at most 0 and no chunk loses its mass, whatever the scale of the energies (a
    shift by the row maximum underflows every chunk that sits far below the row's best).
    """
    floor = torch.finfo(chunk_energy.dtype).min / 2  # finite where frames are masked: gradients stay finite
    u = chunk_energy.masked_fill(~mask, floor)
    frames = u.shape[-1]
    log_den = torch.logsumexp(F.pad(u, (chunk - 1, 0), value=floor).unfold(-1, chunk, 1), dim=-1)  # (..., T)
    # chunks that end past the last frame: no alpha, and +inf makes their terms exactly 0
    alpha = F.pad(alpha, (0, chunk - 1))
    log_den = F.pad(log_den, (0, chunk - 1), value=float("inf"))
    beta = sum(alpha[..., d:d + frames] * torch.exp(u - log_den[..., d:d + frames]) for d in range(chunk))
    return beta.masked_fill(~mask, 0.0)


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
