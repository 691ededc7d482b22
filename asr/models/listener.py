"""Listeners: acoustic encoders that turn features (B, T, F) into a shorter memory (B, T', D) to attend to."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .subsampling import Conv2dSubsampling


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, D) within its own length; padding frames stay where they are."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T), its own inverse
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run a one-layer LSTM over padded (B, T, D) so that backward directions start at each sequence's true end.

    Same outputs on real frames as packing the batch (`packed_lstm`), about 1.7x faster to train on CPU: a
    forward direction never sees the padding behind a sequence, so it runs on the padded tensor; the backward
    direction runs forwards over each sequence reversed within its length and its output is reversed back.
    """
    if lstm.num_layers != 1 or not lstm.batch_first or lstm.proj_size:
        return packed_lstm(lstm, x, lengths)
    if bool((lengths == x.shape[1]).all()):  # no padding: one call, both directions
        return lstm(x)[0]
    out = _lstm_direction(lstm, x, "")
    if lstm.bidirectional:
        backward = reverse_padded(_lstm_direction(lstm, reverse_padded(x, lengths), "_reverse"), lengths)
        out = torch.cat([out, backward], dim=-1)
    real = torch.arange(x.shape[1], device=x.device)[None, :, None] < lengths[:, None, None]
    return out * real  # zeros on padding, as a packed LSTM gives


def _lstm_direction(lstm: nn.LSTM, x: torch.Tensor, suffix: str) -> torch.Tensor:
    """One direction of layer 0 of `lstm`, run forwards in time over (B, T, D)."""
    weights = [getattr(lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
               if lstm.bias or name.startswith("weight")]
    zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    out, _, _ = torch.lstm(x, (zeros, zeros), weights, lstm.bias, 1, 0.0, lstm.training, False, True)
    return out


def packed_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The reference: the LSTM over a packed batch, padded back to (B, T, directions * H)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


def stack_pairs(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pyramid step of LAS: concatenate neighbouring frames, (B, T, D) -> (B, T // 2, 2D)."""
    b, t, d = x.shape
    t2 = t // 2
    return x[:, : 2 * t2].reshape(b, t2, 2 * d), lengths // 2


class PyramidalBLSTMListener(nn.Module):
    """The LAS paper's listener: a BLSTM, then `reductions` pyramidal BLSTM layers, each halving time.

    Input (B, T, input_dim) -> output (B, T / 2**reductions, 2 * hidden).
    """

    def __init__(self, input_dim: int, hidden: int = 256, reductions: int = 2, dropout: float = 0.0):
        super().__init__()
        self.first = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)
        self.pyramid = nn.ModuleList(
            nn.LSTM(4 * hidden, hidden, batch_first=True, bidirectional=True) for _ in range(reductions))
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden
        self.reduction = 2**reductions

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(run_lstm(self.first, feats, lengths))
        for lstm in self.pyramid:
            x, lengths = stack_pairs(x, lengths)
            x = self.dropout(run_lstm(lstm, x, lengths))
        return x, lengths


class ConvBLSTMListener(nn.Module):
    """Conv2dSubsampling (4x fewer frames), then BLSTM layers, optionally pyramidal.

    `pyramid` names the BLSTM layers (0-based) before which neighbouring frames are stacked, so
    `pyramid=[1]` gives 8x time reduction in total.
    Input (B, T, input_dim) -> output (B, T', 2 * hidden).
    """

    def __init__(self, input_dim: int, channels: int = 32, hidden: int = 256, layers: int = 3,
                 pyramid: tuple[int, ...] | list[int] = (), dropout: float = 0.0):
        super().__init__()
        self.conv = Conv2dSubsampling(input_dim, channels)
        conv_dim = self.conv.output_dim
        self.pyramid = set(pyramid)
        dims = [conv_dim] + [2 * hidden * (2 if i in self.pyramid else 1) for i in range(1, layers)]
        if 0 in self.pyramid:
            dims[0] *= 2
        self.lstms = nn.ModuleList(
            nn.LSTM(d, hidden, batch_first=True, bidirectional=True) for d in dims)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden
        self.reduction = 4 * 2 ** len(self.pyramid)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(feats)
        lengths = self.conv.output_lengths(lengths).clamp(min=1)
        for i, lstm in enumerate(self.lstms):
            if i in self.pyramid:
                x, lengths = stack_pairs(x, lengths)
            x = self.dropout(run_lstm(lstm, x, lengths))
        return x, lengths
