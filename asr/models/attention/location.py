"""Location-aware (convolutional) attention, Chorowski et al. 2015, "Attention-Based Models for Speech
Recognition": the score of frame j also sees a 1-D convolution of the previous alignment around j, so the
speller knows where it attended last and moves forward instead of jumping or looping."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .base import Attention, AttentionState, add_to_keys, frame_scores, padding_mask, uniform_weights, weighted_frames


class LocationAwareAttention(Attention):
    """Scores frames from their content and from f = conv(previous alignment) [+ conv(cumulative alignment)].

    scorer "mlp" (the paper's):  e_j = w^T tanh(W q + V h_j + U f_j + b)
    scorer "dot":                e_j = (V h_j) . (W q) / sqrt(A) + u^T tanh(f_j + c)
    The MLP scorer builds a (B, T, A) tensor at every speller step, which dominates training time on a CPU
    for long inputs; the dot scorer keeps per-step work at (B, T) and (B, channels, T).
    sharpening: inverse temperature beta in softmax(beta * e) (paper section 2.3).
    smoothing: sigmoid(e) normalized instead of softmax, which keeps alignments wider (paper section 2.3).
    coverage: also convolve the sum of all previous alignments.
    """

    shares_memory = True

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 256, conv_channels: int = 10,
                 conv_kernel: int = 31, sharpening: float = 1.0, smoothing: bool = False,
                 coverage: bool = False, scorer: str = "mlp", value_proj: bool = False):
        super().__init__(query_dim, memory_dim, value_proj)
        if conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd to stay centred, got {conv_kernel}")
        if scorer not in ("mlp", "dot"):
            raise ValueError(f"scorer must be mlp or dot, got {scorer!r}")
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, attention_dim)
        in_channels = 2 if coverage else 1
        self.location_conv = nn.Conv1d(in_channels, conv_channels, conv_kernel, padding=conv_kernel // 2,
                                       bias=scorer == "dot")
        if scorer == "mlp":
            self.location_proj = nn.Linear(conv_channels, attention_dim, bias=False)
            self.score = nn.Linear(attention_dim, 1, bias=False)
        else:
            self.location_score = nn.Conv1d(conv_channels, 1, 1, bias=False)
        self.scorer, self.scale = scorer, attention_dim**-0.5
        self.sharpening, self.smoothing, self.coverage = sharpening, smoothing, coverage

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        mask = padding_mask(lengths, memory.shape[1])
        weights = uniform_weights(mask)
        extra = {"cumulative": torch.zeros_like(weights)} if self.coverage else {}
        return AttentionState(self.key_proj(memory), self.project_values(memory), mask, weights, extra)

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        previous = state.weights.unsqueeze(1)  # (B, 1, T)
        if self.coverage:
            previous = torch.cat([previous, state.extra["cumulative"].unsqueeze(1)], dim=1)
        location = self.location_conv(previous)  # (B, C, T)
        if self.scorer == "mlp":
            location = self.location_proj(location.transpose(1, 2))  # (B, T, A)
            hidden = torch.tanh(add_to_keys(state.keys, location + self.query_proj(query).unsqueeze(1), state.group))
            energy = self.score(hidden).squeeze(-1)  # (B, T)
        else:
            content = frame_scores(state.keys, self.query_proj(query), state.group) * self.scale
            energy = content + self.location_score(torch.tanh(location)).squeeze(1)
        energy = self.sharpening * energy
        if self.smoothing:
            weights = torch.sigmoid(energy) * state.mask
            weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-10)
        else:
            weights = torch.softmax(energy.masked_fill(~state.mask, float("-inf")), dim=-1)
        context = weighted_frames(weights, state.values, state.group)
        extra = {"cumulative": state.extra["cumulative"] + weights} if self.coverage else {}
        return context, weights, replace(state, weights=weights, extra=extra)
