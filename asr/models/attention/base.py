"""The one attention interface every speller, search and streaming decoder talks to.

An attention prepares an `AttentionState` once per utterance batch from the listener output, then each
speller step calls `forward(query, state)` and gets back the context vector, the alignment weights over
listener frames and the next state. Whatever an attention needs to carry between steps (previous or
cumulative alignment, monotonic position) lives in the state, so callers never ask which attention they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn


@dataclass
class AttentionState:
    """Per-batch attention state. Every tensor has the batch first.

    keys:    (B, T, A) projected listener frames used to score
    values:  (B, T, D) listener frames the context is made of
    mask:    (B, T) bool, True on real frames, False on padding
    weights: (B, T) the previous step's alignment
    extra:   attention-specific tensors, batch first (e.g. cumulative alignment)
    """

    keys: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def select(self, index: torch.Tensor) -> AttentionState:
        """Reorder or repeat batch entries (beam search): every tensor is indexed on dim 0."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "extra"}
        return replace(self, **picked, extra={k: v[index] for k, v in self.extra.items()})


class Attention(nn.Module):
    """Base class. Subclasses implement `init_state` and `forward`.

    memory_dim: size D of a listener frame; query_dim: size of the speller state that queries it.
    """

    def __init__(self, query_dim: int, memory_dim: int):
        super().__init__()
        self.query_dim, self.memory_dim = query_dim, memory_dim

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        raise NotImplementedError

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        """query (B, Q) -> context (B, D), weights (B, T), new state."""
        raise NotImplementedError


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on real frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def uniform_weights(mask: torch.Tensor) -> torch.Tensor:
    """Alignment spread evenly over each utterance's real frames, zero on padding."""
    w = mask.float()
    return w / w.sum(-1, keepdim=True).clamp_min(1.0)
