"""Multi-head location-aware attention: several location-aware heads, each with its own convolution over
its own previous alignment; their contexts are concatenated (each head reads a slice of the frames, or of
their projection with value_proj, the default here) and projected back to the memory size."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .base import Attention, AttentionState, padding_mask, uniform_weights
from .location import LocationAwareAttention


class MultiHeadLocationAttention(Attention):
    """`heads` LocationAwareAttention modules. Returned weights are the heads' mean (for plots and
    timestamps); extra["head_weights"] (B, H, T) carries each head's own previous alignment.

    With the dot scorer all heads run at once (a grouped convolution, one matrix product for the scores and
    one for the contexts): 4 heads looped one by one made a training step 2.3x as slow as
    single-head location-aware attention (1.5x now). The mlp scorer runs the heads one by one (`forward_per_head`, also
    the reference the batched path is tested against)."""

    shares_memory = True

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
        if self.heads[0].scorer != "dot":
            return self.forward_per_head(query, state)
        h, b, g, first = len(self.heads), query.shape[0], state.group, self.heads[0]
        m = b // g  # utterances: rows of keys and values
        location = F.conv1d(state.extra["head_weights"], torch.cat([hd.location_conv.weight for hd in self.heads]),
                            torch.cat([hd.location_conv.bias for hd in self.heads]),
                            padding=first.location_conv.padding, groups=h)  # (B, H * C, T)
        location = F.conv1d(torch.tanh(location), torch.cat([hd.location_score.weight for hd in self.heads]),
                            groups=h)  # (B, H, T)
        queries = F.linear(query, torch.cat([hd.query_proj.weight for hd in self.heads])).view(b, h, -1)
        # block-diagonal (B, H * A_h, H): column i holds head i's query in rows i * A_h ... (i + 1) * A_h, so one
        # product with the side-by-side keys (M, T, H * A_h) gives every head's content score (the g rows that
        # share an utterance's keys side by side too)
        blocks = queries.unsqueeze(-1) * torch.eye(h, dtype=query.dtype, device=query.device)[None, :, None, :]
        blocks = blocks.reshape(m, g, -1, h).transpose(1, 2).reshape(m, -1, g * h)
        content = torch.bmm(state.keys, blocks).view(m, -1, g, h).permute(0, 2, 3, 1).reshape(b, h, -1)
        content = content * first.scale  # (B, H, T)
        energy = content + location
        weights = torch.softmax(energy.masked_fill(~state.mask.unsqueeze(1), float("-inf")), dim=-1)  # (B, H, T)
        # every head's weights against every head's values, of which the diagonal blocks are the contexts
        mixed = torch.bmm(weights.view(m, g * h, -1), state.values).view(b, h, h, -1)  # (B, H, H, D / H)
        context = mixed.diagonal(dim1=1, dim2=2).transpose(1, 2).reshape(b, -1)
        mean = weights.mean(1)
        return self.output_proj(context), mean, replace(state, weights=mean, extra={"head_weights": weights})

    def forward_per_head(self, query: torch.Tensor, state: AttentionState
                         ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        """The heads one by one through their own LocationAwareAttention.forward."""
        h = len(self.heads)
        contexts, head_weights = [], []
        for i, (head, keys, values) in enumerate(zip(self.heads, state.keys.chunk(h, -1),
                                                     state.values.chunk(h, -1))):
            part = AttentionState(keys, values, state.mask, state.extra["head_weights"][:, i], group=state.group)
            context, weights, _ = head(query, part)
            contexts.append(context)
            head_weights.append(weights)
        stacked = torch.stack(head_weights, 1)
        weights = stacked.mean(1)
        return self.output_proj(torch.cat(contexts, -1)), weights, replace(state, weights=weights,
                                                                             extra={"head_weights": stacked})
