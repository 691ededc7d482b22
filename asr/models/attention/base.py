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

    keys:    (M, T, A) projected listener frames used to score
    values:  (M, T, D) listener frames the context is made of
    mask:    (B, T) bool, True on real frames, False on padding
    weights: (B, T) the previous step's alignment
    extra:   attention-specific tensors, batch first (e.g. cumulative alignment)
    group:   rows of the state per row of keys, values and memory extras: B = M * group. Beam search's K
             hypotheses of an utterance share one copy of its listener-made tensors (`share_rows`) with the
             attentions that say so (`Attention.shares_memory`); otherwise group is 1 and M = B.
    """

    keys: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    group: int = 1

    def select(self, index: torch.Tensor, keep_memory: bool = False,
               memory_extras: tuple[str, ...] = ()) -> AttentionState:
        """Reorder or repeat batch entries (beam search): every tensor is indexed on dim 0.

        keep_memory: the caller only reorders hypotheses among rows of the same utterance, so the tensors made
        from the listener output (keys, values, mask and the `memory_extras`) stay as they are: copying them
        is most of a beam step's cost otherwise. With group > 1, `index` must come in runs of `group` rows of
        one utterance (as beam search keeps them), and the memory tensors follow each run's first row."""
        memory = {"keys", "values", *memory_extras}
        memory_index = index if self.group == 1 else index.view(-1, self.group)[:, 0] // self.group
        out = {name: value if keep_memory and (name in memory or name == "mask")
               else value[memory_index if name in memory else index] for name, value in self.tensors()}
        extra = {name: out.pop(name) for name in self.extra}
        return replace(self, **out, extra=extra)

    def share_rows(self, k: int, memory_extras: tuple[str, ...] = ()) -> AttentionState:
        """Repeat every row k times (rows i * k ... i * k + k - 1 are copies of row i) without copying the
        memory tensors: they are shared by the k rows (group grows k-fold)."""
        memory = {"keys", "values", *memory_extras}
        out = {name: value if name in memory else value.repeat_interleave(k, 0) for name, value in self.tensors()}
        extra = {name: out.pop(name) for name in self.extra}
        return replace(self, **out, extra=extra, group=self.group * k)

    def tensors(self):
        """(name, tensor) of every field and extra."""
        yield from ((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in ("extra", "group"))
        yield from self.extra.items()


def frame_scores(keys: torch.Tensor, queries: torch.Tensor, group: int = 1) -> torch.Tensor:
    """keys (M, T, A), queries (M * group, A) -> (M * group, T): each query dotted with its own utterance's
    keys, in one matrix product per utterance (beam search's K hypotheses read their keys once, not K times)."""
    m, t, _ = keys.shape
    return torch.bmm(keys, queries.view(m, group, -1).transpose(1, 2)).transpose(1, 2).reshape(-1, t)


def weighted_frames(weights: torch.Tensor, values: torch.Tensor, group: int = 1) -> torch.Tensor:
    """weights (M * group, T), values (M, T, D) -> contexts (M * group, D)."""
    m, t, d = values.shape
    return torch.bmm(weights.view(m, group, t), values).view(-1, d)


def add_to_keys(keys: torch.Tensor, x: torch.Tensor, group: int = 1) -> torch.Tensor:
    """keys (M, T, A) + x (M * group, T or 1, A), each row of x with its own utterance's keys -> (M * group, T, A)."""
    return (keys.unsqueeze(1) + x.view(keys.shape[0], group, *x.shape[1:])).flatten(0, 1)


class Attention(nn.Module):
    """Base class. Subclasses implement `init_state` and `forward`.

    memory_dim: size D of a listener frame; query_dim: size of the speller state that queries it.
    value_proj: keys are always the attention's own projection of the frames; the values the context is made
    of are the frames themselves (shared with what the keys are projected from, the default) or, with
    value_proj=True, a separate learned projection (D -> D). Subclasses build values with `project_values`.
    """

    # names of extra tensors (B, T, ...) that init_state computes from the memory frame by frame (like keys);
    # every other extra whose last size is T is taken to be an alignment over frames (B, ..., T)
    memory_extras: tuple[str, ...] = ()
    # forward handles states whose rows share memory tensors (AttentionState.group > 1)
    shares_memory: bool = False

    def __init__(self, query_dim: int, memory_dim: int, value_proj: bool = False):
        super().__init__()
        self.query_dim, self.memory_dim = query_dim, memory_dim
        self.value_proj = nn.Linear(memory_dim, memory_dim) if value_proj else None

    def project_values(self, memory: torch.Tensor) -> torch.Tensor:
        """(B, T, D) listener frames -> (B, T, D) values: the frames, or their projection with value_proj."""
        return memory if self.value_proj is None else self.value_proj(memory)

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        raise NotImplementedError

    def extend(self, state: AttentionState, new_memory: torch.Tensor) -> AttentionState:
        """Append listener frames (B, N, D) that arrived after `state` was made (streaming) to every utterance
        of the batch. Keys, values and memory extras of the new frames are computed by `init_state`; alignments
        (weights and alignment extras) are zero on them, as no step has attended there yet; per-utterance
        extras such as the monotonic position are kept. Only exact for attentions whose steps never look past
        the frames they have (monotonic, MoChA): a soft attention's earlier steps would have spread over
        the new frames too."""
        b, n = new_memory.shape[:2]
        if n == 0:
            return state
        t = state.mask.shape[1]
        lengths = torch.full((b,), n, dtype=torch.long, device=new_memory.device)
        fresh = self.init_state(new_memory, lengths)
        extra = {}
        for name, value in state.extra.items():
            if name in self.memory_extras:
                value = torch.cat([value, fresh.extra[name]], 1)
            elif value.dim() >= 2 and value.shape[-1] == t:
                value = torch.cat([value, value.new_zeros(*value.shape[:-1], n)], -1)
            extra[name] = value
        return AttentionState(torch.cat([state.keys, fresh.keys], 1), torch.cat([state.values, fresh.values], 1),
                              torch.cat([state.mask, fresh.mask], 1),
                              torch.cat([state.weights, state.weights.new_zeros(b, n)], 1), extra)

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
