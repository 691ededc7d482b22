"""The CTC head on the listener: listener memory (B, T', D) -> CTC log-probabilities (B, k T', V)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .listener import run_lstm


class CTCHead(nn.Module):
    """A linear projection to `upsample` CTC frames per listener frame, optionally after BLSTM layers of its own.

    upsample (k): character CTC needs a frame per character and one more between doubled letters; at 4x
    subsampling fast speech has fewer frames than that, so the head predicts k frames from each listener frame
    (the k CTC frames of listener frame t are k t ... k t + k - 1).
    layers: BLSTM layers between the listener and the projection. The listener is shared with the speller; a
    head with layers of its own can model what only CTC needs (where a doubled letter's blank goes, a word's
    spelling from its neighbouring frames) without changing the memory the attention reads.
    dropout: on the input of every BLSTM layer and of the projection, in training only.
    """

    def __init__(self, input_dim: int, vocab_size: int, upsample: int = 1, layers: int = 0, hidden: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        if upsample < 1:
            raise ValueError(f"ctc_upsample must be at least 1, got {upsample}")
        if layers < 0:
            raise ValueError(f"ctc_layers must be 0 or more, got {layers}")
        self.lstms = nn.ModuleList(
            nn.LSTM(input_dim if i == 0 else 2 * hidden, hidden, batch_first=True, bidirectional=True)
            for i in range(layers))
        self.out = nn.Linear(2 * hidden if layers else input_dim, upsample * vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.upsample, self.vocab_size = upsample, vocab_size
        # models saved before the head had layers hold the projection as `ctc_head.weight` / `.bias`
        self.register_load_state_dict_pre_hook(_rename_bare_projection)

    def forward(self, memory: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, T', D), lengths (B,) -> log-probabilities (B, k T', V) in fp32, lengths k * lengths."""
        x = memory
        for lstm in self.lstms:
            x = run_lstm(lstm, self.dropout(x), lengths)
        b, t, _ = x.shape
        # fp32 from the logits on: under bf16/fp16 autocast a low-precision log-softmax would skew CTC
        logits = self.out(self.dropout(x)).float().view(b, t * self.upsample, self.vocab_size)
        return logits.log_softmax(-1), lengths * self.upsample


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
             blank: int) -> torch.Tensor:
    """CTCHead's output (B, T, V) and lengths (B,), targets (B, U) padded -> the loss training uses: each
    utterance's loss over its number of tokens, averaged over the batch (an utterance that cannot align adds 0)."""
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=blank, zero_infinity=True)


def _rename_bare_projection(module, state_dict, prefix, *args) -> None:
    for name in ("weight", "bias"):
        if prefix + name in state_dict:
            state_dict[prefix + "out." + name] = state_dict.pop(prefix + name)
