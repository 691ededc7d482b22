"""Multi-head location-aware attention: several location-aware heads, each with its own convolution over
its own previous alignment; their contexts are concatenated (each head reads a slice of the frames, or of
their projection with value_proj, the default here) and projected back to the memory size."""

from __future__ import annotations

import torch
from torch import nn

from .base import Attention, AttentionState, padding_mask, uniform_weights
from .location import LocationAwareAttention


class MultiHeadLocationAttention(Attention):
    """`heads` LocationAwareAttention modules. Returned weights are the heads' mean (for plots and
    timestamps); extra["head_weights"] (B, H, T) carries each head's own previous alignment."""

    def __init__(self, query_dim: int, memory_dim: int, heads: int = 4, attention_dim: int = 128,
                 conv_channels: int = 10, conv_kernel: int = 31, scorer: str = "dot", value_proj: bool = True):
        super().__init__(query_dim, memory_dim, value_proj)
        if memory_dim % heads:
            raise ValueError(f"memory_dim {memory_dim} is not divisible by heads={heads}")
        self.heads = nn.ModuleList(
            LocationAwareAttention(query_dim, memory_dim // heads, attention_dim // heads, conv_channels,
                                   conv_kernel, scorer=scorer) for _ in range(heads))
        self.output_proj = nn.Linear(memory_dim, memory_dim)

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        mask = padding_mask(lengths, memory.shape[1])
        values = self.project_values(memory)
        h = len(self.heads)
        # keys of all heads side by side: (B, T, H * A_h); values split per head inside forward
        keys = torch.cat([head.key_proj(part) for head, part in zip(self.heads, values.chunk(h, dim=-1))], -1)
        weights = uniform_weights(mask)
        return AttentionState(keys, values, mask, weights, {"head_weights": weights.unsqueeze(1).repeat(1, h, 1)})

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        h = len(self.heads)
        contexts, head_weights = [], []
        for i, (head, keys, values) in enumerate(zip(self.heads, state.keys.chunk(h, -1),
                                                     state.values.chunk(h, -1))):
            part = AttentionState(keys, values, state.mask, state.extra["head_weights"][:, i])
            context, weights, _ = head(query, part)
            contexts.append(context)
            head_weights.append(weights)
        stacked = torch.stack(head_weights, 1)
        weights = stacked.mean(1)
        new = AttentionState(state.keys, state.values, state.mask, weights, {"head_weights": stacked})
        return self.output_proj(torch.cat(contexts, -1)), weights, new
