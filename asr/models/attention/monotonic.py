"""Hard monotonic attention, Raffel et al. 2017, "Online and Linear-Time Attention by Enforcing Monotonic
Alignments": at each output step the speller moves forward from the frame it attended last and stops at the
first frame whose selection probability p = sigmoid(energy) reaches 0.5. Training uses the expected
alignment over all such hard decisions, computed for all frames at once in log space.

With `heads` > 1 (Ma et al. 2019, "Monotonic Multihead Attention"), each head has its own energy and its own
monotonic alignment; the speller gets one context made with the heads' mean alignment."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Attention, AttentionState, padding_mask

LOG_ZERO = -1.0e4  # exp(-1e4) is 0 in every float type; finite so that gradients never meet inf - inf
# Expected alignments below 1e-30 are set to exactly 0. Next to the ~1 mass of a step they are far below float32
# precision, but kept they decay into subnormal numbers, which the CPU handles about 20x slower: they then
# slowed every later product (context, LSTM gradients) more than all of the attention's own work.
LOG_FLOOR = math.log(1e-30)


def expected_alignment(energy: torch.Tensor, previous: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Expected monotonic alignment alpha_i (..., T) from energies e_i (..., T) and alpha_{i-1} (..., T).

    alpha_{i,j} = p_j * sum_{k<=j} alpha_{i-1,k} * prod_{l=k}^{j-1} (1 - p_l), with p = sigmoid(e).
    In log space, with L_j = sum_{l<j} log(1 - p_l) = -sum_{l<j} softplus(e_l):
        log alpha_{i,j} = logsigmoid(e_j) + L_j + logcumsumexp_k(log alpha_{i-1,k} - L_k)
    which is exact where the usual closed form divides by a clamped cumulative product and loses mass.
    Padding frames (mask False, broadcast against energy) have p = 0 and get exactly zero weight.
    """
    energy = energy.masked_fill(~mask, LOG_ZERO)
    log_not_selected = -F.softplus(energy)
    inclusive = torch.cumsum(log_not_selected, dim=-1)  # C_j = L_j + log(1 - p_j)
    exclusive = inclusive - log_not_selected  # L_j
    # clamping at the smallest normal number keeps log's gradient (grad / x) finite where alpha is 0; the
    # clamped frames add at most tiny * exp(L_j - L_k) <= tiny each, which the floor below removes
    log_previous = torch.log(previous.clamp_min(torch.finfo(previous.dtype).tiny))
    # logsigmoid(e) = e - softplus(e) = e + log(1 - p), so logsigmoid(e_j) + L_j = e_j + C_j: one softplus pass
    log_alpha = energy + inclusive + torch.logcumsumexp(log_previous - exclusive, dim=-1)
    keep = mask & (log_alpha > LOG_FLOOR)
    return torch.exp(log_alpha.masked_fill(~keep, LOG_ZERO))


def scan_first_selected(energy_at, start: torch.Tensor, lengths: torch.Tensor, window: int = 8,
                        threshold: float = 0.5) -> torch.Tensor:
    """Decode-time hard attention: for each scan, the first frame j >= start with sigmoid(energy) >= threshold,
    or -1 where no frame is selected (or start is -1).

    start (...) and lengths (broadcastable to start) are frame indices; energy_at(frames (..., W)) returns the
    energies (..., W) of those frames. Energies are computed only on `window` frames at a time from `start`,
    so a whole utterance costs O(T + U * window) energy evaluations instead of O(T * U).
    """
    lengths = lengths.expand_as(start)
    offsets = torch.arange(window, device=start.device)
    result = torch.full_like(start, -1)
    active = start >= 0
    begin = start.clamp_min(0)
    last = (lengths - 1).clamp_min(0).unsqueeze(-1)
    while bool(active.any()):
        frames = begin.unsqueeze(-1) + offsets  # (..., W)
        valid = (frames < lengths.unsqueeze(-1)) & active.unsqueeze(-1)
        hit = (torch.sigmoid(energy_at(torch.minimum(frames, last))) >= threshold) & valid
        first = torch.where(hit, offsets, window).min(dim=-1).values
        found = active & (first < window)
        result = torch.where(found, begin + first, result)
        active = active & ~found & (begin + window < lengths)
        begin = begin + window
    return result


class MonotonicEnergy(nn.Module):
    """`groups` energies per frame (one per monotonic head, and per chunk head in MoChA), all scored against
    one key projection of the frames (B, T, groups * A) that `keys` computes once per utterance.

    scorer "mlp" (Raffel's): e_gj = g_g * v_g^T tanh(W_g q + V_g h_j + b_g) / ||v_g|| + r_g
    scorer "dot":            e_gj = g_g * (W_g q) . (V_g h_j + b_g) + r_g
    The MLP builds a (B, T, A) tanh at every speller step, which dominates training time on a CPU for long
    inputs; the dot scorer is one batched matrix product over the keys. The gain g starts at 1/sqrt(A) (the
    scaled dot product's scale, and Raffel's initial g); the bias r_g at init_bias[g]. Raffel et al. start
    r at about -4; for characters on 40 ms frames 0 fits better (conf/model/attention/monotonic.yaml says why).
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int, init_bias: list[float],
                 scorer: str = "dot"):
        super().__init__()
        if scorer not in ("mlp", "dot"):
            raise ValueError(f"scorer must be mlp or dot, got {scorer!r}")
        groups = len(init_bias)
        self.groups, self.scorer = groups, scorer
        self.query_proj = nn.Linear(query_dim, groups * attention_dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, groups * attention_dim)
        if scorer == "mlp":
            self.v = nn.Parameter(torch.randn(groups, attention_dim) / attention_dim**0.5)
        self.gain = nn.Parameter(torch.full((groups,), attention_dim**-0.5))
        self.bias = nn.Parameter(torch.tensor(init_bias, dtype=torch.float32))
        # block g of row g is 1: spreads each group's query over its own slice of the keys (one bmm for all)
        self.register_buffer("blocks", torch.eye(groups).repeat_interleave(attention_dim, 1), persistent=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, groups * A)."""
        return self.key_proj(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, Q), keys (B, T, groups * A) -> energies (B, groups, T)."""
        q = self.query_proj(query)  # (B, groups * A)
        if self.scorer == "dot":
            per_group = q.unsqueeze(1) * self.blocks if self.groups > 1 else q.unsqueeze(1)  # (B, groups, G*A)
            score = torch.bmm(per_group, keys.transpose(1, 2))
        else:
            hidden = torch.tanh(keys + q.unsqueeze(1))  # (B, T, groups * A)
            v = self.v / self.v.norm(dim=-1, keepdim=True)
            score = (hidden @ (self.blocks * v.reshape(1, -1)).T).transpose(1, 2)
        return self.gain[:, None] * score + self.bias[:, None]


class MonotonicAttention(Attention):
    """Hard monotonic attention. Training: expected alignment, Gaussian noise of std `noise` on the energies
    (pushes p towards 0 or 1 so that training matches the hard decisions of decoding). Decoding: the scan
    from the previously attended frame; where no frame is selected the context is zero.

    heads: monotonic heads, each with its own energy (of attention_dim / heads) and alignment; the context is
    made with their mean alignment, which keeps it a weighted mean of frames of size D, costs one (B, T, D)
    product whatever the number of heads (the largest cost of a step), and is exactly what `weights` shows.
    scorer: "dot" or "mlp", see `MonotonicEnergy`.

    State: weights = the alignment the last context was made of; extra["alpha"] (B, heads, T) = each head's
    monotonic alignment (training: expected; decoding: one-hot on the attended frame, zero once the head's
    scan found nothing); extra["position"] (B,) = the last frame any head attended in decoding, -1 where some
    head selected nothing (a streaming decoder waits for more frames there).
    """

    energies_per_head = 1  # MoChA adds a chunk energy per head

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 128, noise: float = 1.0,
                 init_bias: float = 0.0, scan_window: int = 8, scorer: str = "dot", heads: int = 1,
                 value_proj: bool = False):
        super().__init__(query_dim, memory_dim, value_proj)
        if heads < 1 or attention_dim % heads:
            raise ValueError(f"attention_dim {attention_dim} is not divisible by heads={heads}")
        biases = [float(init_bias)] * heads + [0.0] * heads * (self.energies_per_head - 1)
        self.energy = MonotonicEnergy(query_dim, memory_dim, attention_dim // heads, biases, scorer)
        self.heads, self.noise, self.scan_window = heads, noise, scan_window

    def init_state(self, memory: torch.Tensor, lengths: torch.Tensor) -> AttentionState:
        b, t = memory.shape[:2]
        mask = padding_mask(lengths, t)
        alpha = memory.new_zeros(b, self.heads, t)
        alpha[:, :, 0] = 1.0  # all mass on the first frame: every head's scan starts there
        position = torch.zeros(b, dtype=torch.long, device=memory.device)
        return AttentionState(self.energy.keys(memory), self.project_values(memory), mask, alpha[:, 0].clone(),
                              {"alpha": alpha, "position": position})

    def monotonic_weights(self, query: torch.Tensor, state: AttentionState
                          ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """This step's monotonic alignment (B, heads, T); in training also all energies (B, groups, T) and no
        positions, in decoding no energies and each head's attended frame (B, heads), -1 for none."""
        h = self.heads
        if self.training:
            energy = self.energy(query, state.keys)
            monotonic = energy[:, :h]
            if self.noise > 0:
                monotonic = monotonic + self.noise * torch.randn_like(monotonic)
            return expected_alignment(monotonic, state.extra["alpha"], state.mask.unsqueeze(1)), energy, None
        previous = state.extra["alpha"]
        # where a head selected nothing its scan is over (start -1): its later steps stay empty
        start = torch.where(previous.sum(-1) > 0, previous.argmax(-1), -1)
        keys, width = state.keys, state.keys.shape[-1]

        def energy_at(frames: torch.Tensor) -> torch.Tensor:  # (B, heads, W) -> each head's own energies
            b, _, w = frames.shape
            picked = keys.gather(1, frames.reshape(b, h * w, 1).expand(-1, -1, width))
            energy = self.energy(query, picked).view(b, -1, h, w)[:, :h]  # (B, heads, heads, W)
            return energy.diagonal(dim1=1, dim2=2).transpose(1, 2)

        position = scan_first_selected(energy_at, start, state.mask.sum(-1, keepdim=True), self.scan_window)
        hard = F.one_hot(position.clamp_min(0), state.mask.shape[1]).to(state.values.dtype)
        return hard * (position >= 0).unsqueeze(-1), None, position

    def next_state(self, state: AttentionState, weights: torch.Tensor, alpha: torch.Tensor,
                   head_position: torch.Tensor | None) -> AttentionState:
        position = state.extra["position"] if head_position is None else torch.where(
            (head_position < 0).any(-1), -1, head_position.max(-1).values)
        return AttentionState(state.keys, state.values, state.mask, weights, {"alpha": alpha, "position": position})

    def forward(self, query: torch.Tensor, state: AttentionState
                ) -> tuple[torch.Tensor, torch.Tensor, AttentionState]:
        alpha, _, head_position = self.monotonic_weights(query, state)
        weights = alpha.mean(1) if self.heads > 1 else alpha[:, 0]
        context = torch.bmm(weights.unsqueeze(1), state.values).squeeze(1)
        return context, weights, self.next_state(state, weights, alpha, head_position)
