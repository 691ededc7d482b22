"""Hard monotonic attention, Raffel et al. 2017, "Online and Linear-Time Attention by Enforcing Monotonic
Alignments": at each output step the speller moves forward from the frame it attended last and stops at the
first frame whose selection probability p = sigmoid(energy) reaches 0.5. Training uses the expected
alignment over all such hard decisions, computed for all frames at once in log space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Attention, AttentionState, padding_mask

LOG_ZERO = -1.0e4  # exp(-1e4) is 0 in every float type; finite so that gradients never meet inf - inf


def expected_alignment(energy: torch.Tensor, previous: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Expected monotonic alignment alpha_i (B, T) from energies e_i (B, T) and alpha_{i-1} (B, T).

    alpha_{i,j} = p_j * sum_{k<=j} alpha_{i-1,k} * prod_{l=k}^{j-1} (1 - p_l), with p = sigmoid(e).
    In log space, with L_j = sum_{l<j} log(1 - p_l) = -sum_{l<j} softplus(e_l):
        log alpha_{i,j} = logsigmoid(e_j) + L_j + logcumsumexp_k(log alpha_{i-1,k} - L_k)
    which is exact where the usual closed form divides by a clamped cumulative product and loses mass.
    Padding frames (mask False) have p = 0 and get exactly zero weight.
    """
    energy = energy.masked_fill(~mask, LOG_ZERO)
    log_not_selected = -F.softplus(energy)
    exclusive = torch.cumsum(log_not_selected, dim=-1) - log_not_selected  # L_j
    # clamping at the smallest normal number keeps log's gradient (grad / x) finite where alpha underflowed to 0
    log_previous = torch.log(previous.clamp_min(torch.finfo(previous.dtype).tiny)).clamp_min(LOG_ZERO)
    log_alpha = F.logsigmoid(energy) + exclusive + torch.logcumsumexp(log_previous - exclusive, dim=-1)
    return torch.exp(log_alpha.clamp_min(LOG_ZERO)).masked_fill(~mask, 0.0)


def scan_first_selected(energy_fn, keys: torch.Tensor, start: torch.Tensor, lengths: torch.Tensor,
                        window: int = 8, threshold: float = 0.5) -> torch.Tensor:
    """Decode-time hard attention: for each utterance, the first frame j >= start with
    sigmoid(energy_fn(keys[j])) >= threshold, or -1 where no frame is selected (or start is -1).

    Energies are computed only on `window` frames at a time from `start`, so a whole utterance costs
    O(T + U * window) energy evaluations instead of O(T * U). keys (B, T, A), start and lengths (B,).
    """
    b, t, a = keys.shape
    offsets = torch.arange(window, device=keys.device)
    result = torch.full((b,), -1, dtype=torch.long, device=keys.device)
    active = start >= 0
    begin = start.clamp_min(0)
    while bool(active.any()):
        frames = begin[:, None] + offsets[None, :]  # (B, W)
        valid = (frames < lengths[:, None]) & active[:, None]
        window_keys = keys.gather(1, frames.clamp(max=t - 1).unsqueeze(-1).expand(-1, -1, a))
        hit = (torch.sigmoid(energy_fn(window_keys)) >= threshold) & valid
        first = torch.where(hit, offsets[None, :], window).min(dim=-1).values
        found = active & (first < window)
        result = torch.where(found, begin + first, result)
        active = active & ~found & (begin + window < lengths)
        begin = begin + window
    return result


class MonotonicEnergy(nn.Module):
    """Raffel's monotonic energy: g * v^T tanh(W q + V h_j + b) / ||v|| + r, with r initialized to
    `init_bias` (about -4, so that early in training the speller does not select the first frames it sees)."""

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int, init_bias: float = -4.0):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, attention_dim)
        self.v = nn.Parameter(torch.randn(attention_dim) / attention_dim**0.5)
        self.gain = nn.Parameter(torch.tensor(attention_dim**-0.5))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_proj(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, Q), keys (B, T, A) -> energies (B, T)."""
        hidden = torch.tanh(keys + self.query_proj(query).unsqueeze(1))
        return self.gain * (hidden @ (self.v / self.v.norm())) + self.bias


class MonotonicAttention(Attention):
    """Hard monotonic attention. Training: expected alignment, Gaussian noise of std `noise` on the energies
    (pushes p towards 0 or 1 so that training matches the hard decisions of decoding). Decoding: the scan
    from the previously attended frame; where no frame is selected the context is zero.

    State: weights = previous alignment (training: expected; decoding: one-hot or zero),
    extra["position"] = (B,) last attended frame (decoding).
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 128, noise: float = 1.0,
                 init_bias: float = -4.0, scan_window: int = 8):
        super().__init__(query_dim, memory_dim)
        self.energy = MonotonicEnergy(query_dim, memory_dim, attention_dim, init_bias)
        self.noise, self.scan_window = noise, scan_window

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        mask = padding_mask(lengths, memory.shape[1])
        weights = torch.zeros(mask.shape, dtype=memory.dtype, device=memory.device)
        weights[:, 0] = 1.0  # all mass on the first frame: the scan starts there
        position = torch.zeros(memory.shape[0], dtype=torch.long, device=memory.device)
        return AttentionState(self.energy.keys(memory), memory, mask, weights, {"position": position})

    def monotonic_weights(self, query: torch.Tensor, state: AttentionState) -> tuple[torch.Tensor, torch.Tensor]:
        """The monotonic alignment (B, T) of this step and the attended position (B,), -1 for none."""
        if self.training:
            energy = self.energy(query, state.keys)
            if self.noise > 0:
                energy = energy + self.noise * torch.randn_like(energy)
            return expected_alignment(energy, state.weights, state.mask), state.extra["position"]
        # where nothing was selected the scan is over for that utterance (position -1): later steps stay empty
        position = scan_first_selected(lambda keys: self.energy(query, keys), state.keys, state.extra["position"],
                                       state.mask.sum(-1), self.scan_window)
        hard = F.one_hot(position.clamp_min(0), state.mask.shape[1]).to(state.values.dtype)
        return hard * (position >= 0).unsqueeze(1), position

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        weights, position = self.monotonic_weights(query, state)
        context = torch.bmm(weights.unsqueeze(1), state.values).squeeze(1)
        return context, weights, AttentionState(state.keys, state.values, state.mask, weights,
                                                {"position": position})
