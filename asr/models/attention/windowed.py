"""Windowed attention: any soft attention, restricted to a window of frames around the centre of the
previous alignment (Chorowski et al. 2015 use it to keep long utterances from drifting). Usable at decode
time only (default) or in training too."""

from __future__ import annotations

from dataclasses import replace

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from .base import Attention, AttentionState


def window_mask(weights: torch.Tensor, mask: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(B, T) bool: real frames within [c - before, c + after] of each row's alignment peak c."""
    centre = weights.argmax(dim=-1, keepdim=True)
    frames = torch.arange(weights.shape[1], device=weights.device)[None, :]
    return mask & (frames >= centre - before) & (frames <= centre + after)


class WindowedAttention(Attention):
    """Wraps `inner` (an attention config with `_target_`, or a module) and masks frames outside the window.

    The first step has no alignment peak yet (the initial alignment is uniform): it attends everywhere.
    value_proj is handed to the inner attention built from a config.
    """

    def __init__(self, query_dim: int, memory_dim: int, inner: DictConfig | Attention, before: int = 10,
                 after: int = 30, in_training: bool = False, value_proj: bool = False):
        super().__init__(query_dim, memory_dim)  # the inner attention makes keys and values
        if not isinstance(inner, Attention):
            inner = instantiate(inner, query_dim=query_dim, memory_dim=memory_dim, value_proj=value_proj)
        self.inner, self.before, self.after, self.in_training = inner, before, after, in_training

    @property
    def shares_memory(self) -> bool:
        return self.inner.shares_memory

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        state = self.inner.init_state(memory, lengths)
        state.extra["started"] = torch.zeros(memory.shape[0], dtype=torch.bool, device=memory.device)
        return state

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        started = state.extra["started"]
        inner_extra = {k: v for k, v in state.extra.items() if k != "started"}
        mask = state.mask
        if self.in_training or not self.training:
            windowed = window_mask(state.weights, state.mask, self.before, self.after)
            mask = torch.where(started[:, None], windowed, state.mask)
        context, weights, new = self.inner(query, replace(state, mask=mask, extra=inner_extra))
        extra = {**new.extra, "started": torch.ones_like(started)}
        return context, weights, replace(new, mask=state.mask, extra=extra)


def add_decode_window(model, before: int = 10, after: int = 30) -> bool:
    """Restrict a trained model's soft attention to a window when decoding, in place (the weights are the
    same; a model trained without the window decodes long inputs without losing its place). Returns False and
    leaves the model alone when its attention is monotonic (already local) or already windowed."""
    from .monotonic import MonotonicAttention  # MoChA included
    attention = model.speller.attention
    if isinstance(attention, (MonotonicAttention, WindowedAttention)):
        return False
    model.speller.attention = WindowedAttention(attention.query_dim, attention.memory_dim, inner=attention,
                                                before=before, after=after).train(attention.training)
    return True
