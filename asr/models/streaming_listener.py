"""A unidirectional listener for streaming recognition: conv2d 4x subsampling, forward-only LSTM layers and a
look-ahead convolution over the next `lookahead` subsampled frames. Every output frame depends only on the
audio up to a fixed distance after it, so the listener can run on audio as it arrives (`stream_step`) and give
exactly the frames its offline `forward` gives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .subsampling import Conv2dSubsampling


@dataclass
class ListenerStream:
    """What the listener carries between chunks of one stream (batch B, usually 1).

    feats:   (B, N, F) input frames not yet consumed by the subsampling (it steps 4 frames, sees 7)
    lstm:    per layer (h, c), each (1, B, H); None before the first frame
    pending: (B, P, H) LSTM outputs still waiting for their look-ahead frames
    frames:  listener frames emitted so far
    """

    feats: torch.Tensor
    lstm: list[tuple[torch.Tensor, torch.Tensor]] | None
    pending: torch.Tensor
    frames: int = 0


class UnidirectionalListener(nn.Module):
    """Conv2dSubsampling (no time padding: output frame i sees input frames 4i .. 4i+6), then
    forward LSTM layers, then a linear convolution over LSTM outputs i .. i+lookahead (zeros past the end).

    Input (B, T, input_dim) -> output (B, T', hidden), T' = ((T - 3) // 2 - 2) // 2 + 1.
    """

    def __init__(self, input_dim: int, channels: int = 32, hidden: int = 320, layers: int = 3, lookahead: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0 frames, got {lookahead}")
        self.conv = Conv2dSubsampling(input_dim, channels)
        conv_dim = self.conv.output_dim
        self.lstms = nn.ModuleList(nn.LSTM(conv_dim if i == 0 else hidden, hidden, batch_first=True)
                                   for i in range(layers))
        # kernel over frames i .. i+lookahead: the only place where the listener sees the future
        self.lookahead_conv = nn.Conv1d(hidden, hidden, lookahead + 1) if lookahead > 0 else None
        self.dropout = nn.Dropout(dropout)
        self.lookahead, self.output_dim, self.reduction = lookahead, hidden, self.conv.reduction
        self.input_dim, self.context_frames = input_dim, self.conv.context_frames

    def look_ahead(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        """LSTM outputs (B, P, H) -> the P - lookahead frames whose look-ahead is in x (all P when final:
        the frames past the end count as zeros)."""
        if self.lookahead_conv is None:
            return x
        if final:
            x = F.pad(x, (0, 0, 0, self.lookahead))
        return self.lookahead_conv(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(feats)
        lengths = self.conv.output_lengths(lengths).clamp(min=1)
        for lstm in self.lstms:
            x = self.dropout(lstm(x)[0])  # forward-only: padding after a sequence cannot reach its frames
        # zero past each end, as a stream's look-ahead sees at its end
        x = x * (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        return self.look_ahead(x, final=True), lengths

    def stream_init(self, batch: int = 1, device: torch.device | str = "cpu") -> ListenerStream:
        dtype = next(self.parameters()).dtype
        return ListenerStream(torch.zeros(batch, 0, self.input_dim, dtype=dtype, device=device), None,
                              torch.zeros(batch, 0, self.output_dim, dtype=dtype, device=device))

    @torch.no_grad()
    def stream_step(self, feats: torch.Tensor, stream: ListenerStream, final: bool = False
                    ) -> tuple[torch.Tensor, ListenerStream]:
        """Consume new feature frames (B, N, F) (N may be 0) and return the listener frames (B, M, H) that
        became complete, with the next stream state. `final=True` ends the stream: the last frames are
        completed with zeros as look-ahead, as `forward` does at an utterance's end."""
        buffered = torch.cat([stream.feats, feats], 1)
        ready = int(self.conv.output_lengths(torch.tensor(buffered.shape[1])).clamp(min=0))
        lstm_state = stream.lstm
        pending = stream.pending
        if ready > 0:
            x = self.conv(buffered[:, : 4 * (ready - 1) + self.context_frames])
            buffered = buffered[:, 4 * ready:]
            new_state = []
            for i, lstm in enumerate(self.lstms):
                x, hc = lstm(x, None if lstm_state is None else lstm_state[i])
                new_state.append(hc)
            lstm_state = new_state
            pending = torch.cat([pending, x], 1)
        if final and stream.frames + pending.shape[1] == 0:
            raise ValueError(f"stream too short: {buffered.shape[1]} feature frames, the listener needs "
                             f"{self.context_frames}")
        emit = pending.shape[1] if final else max(pending.shape[1] - self.lookahead, 0)
        out = self.look_ahead(pending, final) if emit > 0 else pending[:, :0]
        return out, ListenerStream(buffered, lstm_state, pending[:, emit:], stream.frames + emit)
