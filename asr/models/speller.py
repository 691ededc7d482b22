"""The speller: an LSTM decoder that emits one token per step while attending over the listener output."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention.base import Attention, AttentionState


@dataclass
class SpellerState:
    """Decoder state between steps: LSTM (h, c) per layer, each (B, H); the last context (B, D)."""

    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    context: torch.Tensor
    attention: AttentionState

    def select(self, index: torch.Tensor, keep_memory: bool = False,
               memory_extras: tuple[str, ...] = ()) -> SpellerState:
        """Reorder or repeat batch entries; see `AttentionState.select` for keep_memory."""
        return SpellerState([(h[index], c[index]) for h, c in self.hidden], self.context[index],
                            self.attention.select(index, keep_memory, memory_extras))

    def share_rows(self, k: int, memory_extras: tuple[str, ...] = ()) -> SpellerState:
        """Repeat every row k times, the attention's memory tensors shared (`AttentionState.share_rows`)."""
        return SpellerState([(h.repeat_interleave(k, 0), c.repeat_interleave(k, 0)) for h, c in self.hidden],
                            self.context.repeat_interleave(k, 0), self.attention.share_rows(k, memory_extras))


class Speller(nn.Module):
    """LAS speller (Chan et al. 2016).

    attention_first=False (Luong-style, with input feeding): step i reads [embed(y_{i-1}); c_{i-1}],
    updates its LSTM to s_i, attends with s_i to get c_i, and predicts y_i from [s_i; c_i].
    attention_first=True (Bahdanau-style): attends with s_{i-1} to get c_i first, then reads
    [embed(y_{i-1}); c_i] into the LSTM, and predicts y_i from [s_i; c_i].
    """

    def __init__(self, vocab_size: int, memory_dim: int, attention: Attention, embed_dim: int = 128,
                 hidden: int = 320, layers: int = 1, dropout: float = 0.0, attention_first: bool = False):
        super().__init__()
        self.attention_first = attention_first
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.cells = nn.ModuleList(
            nn.LSTMCell(embed_dim + memory_dim if i == 0 else hidden, hidden) for i in range(layers))
        self.attention = attention
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Sequential(nn.Linear(hidden + memory_dim, hidden), nn.Tanh(),
                                    nn.Linear(hidden, vocab_size))
        self.hidden, self.memory_dim = hidden, memory_dim

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> SpellerState:
        b = memory.shape[0]
        zeros = memory.new_zeros(b, self.hidden)
        return SpellerState([(zeros, zeros) for _ in self.cells], memory.new_zeros(b, self.memory_dim),
                            self.attention.init_state(memory, lengths))

    def step(self, tokens: torch.Tensor, state: SpellerState
             ) -> tuple[torch.Tensor, torch.Tensor, SpellerState]:
        """One decoder step for previous tokens (B,). Returns features (B, H + D) for `output`,
        the attention weights (B, T) and the new state."""
        h, context, weights, state = self.advance(self.embed(tokens), state)
        return torch.cat([h, context], dim=-1), weights, state

    def advance(self, embedded: torch.Tensor, state: SpellerState
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, SpellerState]:
        """One decoder step for embedded previous tokens (B, E). Returns the top LSTM output (B, H), the
        context (B, D), the attention weights (B, T) and the new state."""
        if self.attention_first:
            context, weights, attention = self.attention(state.hidden[-1][0], state.attention)
            x = torch.cat([embedded, context], dim=-1)
        else:
            x = torch.cat([embedded, state.context], dim=-1)
        hidden = []
        for cell, hc in zip(self.cells, state.hidden):
            h, c = cell(x, hc)
            hidden.append((h, c))
            x = self.dropout(h)
        if not self.attention_first:
            context, weights, attention = self.attention(x, state.attention)
        return x, context, weights, SpellerState(hidden, context, attention)

    def forward(self, memory: torch.Tensor, lengths: torch.Tensor, inputs: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing. inputs (B, U) -> logits (B, U, V), alignments (B, U, T)."""
        state = self.init_state(memory, lengths)
        # work that does not depend on the previous step is done once for all steps, outside the loop: the
        # embedding lookup here, the concatenation and the output projection after it
        embedded = self.embed(inputs)  # (B, U, E)
        outputs, contexts, alignments = [], [], []
        for i in range(inputs.shape[1]):
            h, context, weights, state = self.advance(embedded[:, i], state)
            outputs.append(h)
            contexts.append(context)
            alignments.append(weights)
        features = torch.cat([torch.stack(outputs, 1), torch.stack(contexts, 1)], dim=-1)  # (B, U, H + D)
        return self.output(features), torch.stack(alignments, 1)
