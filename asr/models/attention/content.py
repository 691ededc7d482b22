"""Content-only attention scorers: additive (Bahdanau et al. 2015), dot, scaled dot and general/bilinear
(Luong et al. 2015). They see only what the frames contain, not where the last alignment was."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .base import Attention, AttentionState, add_to_keys, frame_scores, padding_mask, uniform_weights, weighted_frames


class ContentAttention(Attention):
    """scorer:
    additive:   e_j = w^T tanh(W q + V h_j + b)
    dot:        e_j = (W q) . (V h_j)             (both projected to attention_dim)
    scaled_dot: e_j = (W q) . (V h_j) / sqrt(attention_dim)
    general:    e_j = q^T M h_j                   (bilinear; M is query_dim x memory_dim)
    sharpening: inverse temperature on the energies.
    """

    SCORERS = ("additive", "dot", "scaled_dot", "general")
    shares_memory = True

    def __init__(self, query_dim: int, memory_dim: int, scorer: str = "additive", attention_dim: int = 128,
                 sharpening: float = 1.0, value_proj: bool = False):
        super().__init__(query_dim, memory_dim, value_proj)
        if scorer not in self.SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(self.SCORERS)}, got {scorer!r}")
        self.scorer, self.sharpening = scorer, sharpening
        if scorer == "general":
            self.key_proj = nn.Linear(memory_dim, query_dim, bias=False)  # M h_j, so that e_j = q . (M h_j)
            self.query_proj = nn.Identity()
        else:
            self.key_proj = nn.Linear(memory_dim, attention_dim, bias=scorer == "additive")
            self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        if scorer == "additive":
            self.score = nn.Linear(attention_dim, 1, bias=False)
        self.scale = attention_dim**-0.5 if scorer == "scaled_dot" else 1.0

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        mask = padding_mask(lengths, memory.shape[1])
        return AttentionState(self.key_proj(memory), self.project_values(memory), mask, uniform_weights(mask))

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        q = self.query_proj(query)
        if self.scorer == "additive":
            energy = self.score(torch.tanh(add_to_keys(state.keys, q.unsqueeze(1), state.group))).squeeze(-1)
        else:
            energy = frame_scores(state.keys, q, state.group) * self.scale
        weights = torch.softmax((self.sharpening * energy).masked_fill(~state.mask, float("-inf")), dim=-1)
        return weighted_frames(weights, state.values, state.group), weights, replace(state, weights=weights)
