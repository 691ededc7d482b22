"""CTC prefix scores for attention beam search (Watanabe et al. 2017), batched over hypotheses and tokens.

For a prefix h, r_t^n(h) and r_t^b(h) are the log probabilities that the CTC path over frames 1..t yields h
and ends in a non-blank or in a blank. Extending h by a token c gives, for every frame at once in the tensors
below, the prefix probability psi(h + c) = sum_t phi_{t-1} p_t(c), where phi is the probability of h having
ended before t (only its blank-ending part when c repeats the last token of h). The score a beam search adds
for c is log psi(h + c) - log psi(h); for <eos> it is the probability that the whole utterance is exactly h.
"""

from __future__ import annotations

import torch

from ..models.attention.base import padding_mask

NEG = -1e10  # log(0) that stays finite under additions, so no inf - inf turns into NaN


class CTCPrefixScorer:
    """Prefix scores of N hypotheses over a shared (per hypothesis repeated) CTC posterior.

    log_probs: (N, T, V) CTC log posteriors, one row per hypothesis; lengths (N,) valid frames.
    A scorer state is (r, psi): r (T, N, 2) log r^n, r^b of each hypothesis' prefix, psi (N,) its log psi.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, eos: int):
        n, t, _ = log_probs.shape
        padding = ~padding_mask(lengths, t).T  # (T, N)
        x = log_probs.transpose(0, 1).float().masked_fill(padding[:, :, None], NEG)
        # past its end an utterance emits only blanks, so r^b carries the total forward unchanged
        x[:, :, blank] = x[:, :, blank].masked_fill(padding, 0.0)
        self.x, self.lengths, self.blank, self.eos = x, lengths, blank, eos
        self.rows = torch.arange(n, device=log_probs.device)

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        r_blank = self.x[:, :, self.blank].cumsum(0)
        return torch.stack([torch.full_like(r_blank, NEG), r_blank], -1), r_blank.new_zeros(r_blank.shape[1])

    def select(self, index: torch.Tensor) -> None:
        """Keep (or repeat) rows of the posterior: index (N',) into the current rows."""
        self.x, self.lengths = self.x[:, index], self.lengths[index]
        self.rows = torch.arange(len(index), device=index.device)

    @staticmethod
    def recurrence(x: torch.Tensor, x_blank: torch.Tensor, phi: torch.Tensor, r_first: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames t = 1..L of the forward recursion
            r^n_t = (r^n_{t-1} + phi_{t-1}) p_t(c),    r^b_t = (r^b_{t-1} + r^n_{t-1}) p_t(blank)
        and, alongside, the prefix probability psi = r^n_0 + sum_t phi_{t-1} p_t(c), as three tensor ops per frame
        on all three rows at once (the loop is op-count bound, not data bound, so the third row is almost free
        and saves a log-sum over every frame afterwards).
        x (L, N, C) log p_t(c), x_blank (L, N), phi (L, N, C) log phi_{t-1}, r_first (N, C) log r^n_0.
        Returns (L, N, C, 2): log r^n_t, log r^b_t; and (N, C): log psi."""
        steps, n, c = x.shape
        # row k of frame t: r[t + 1, k] = logaddexp(r[t, k], other[t, k]) + emit[t, k] for rows n, b and psi
        emit = torch.stack([x, x_blank[:, :, None].expand(-1, -1, c), torch.zeros_like(x)], 1)  # (L, 3, N, C)
        other = torch.stack([phi, phi, phi + x], 1)  # row 1 gets r^n_{t-1} written in below
        r = x.new_empty(steps + 1, 3, n, c)
        r[0, 0], r[0, 1], r[0, 2] = r_first, NEG, r_first
        for t in range(steps):
            other[t, 1] = r[t, 0]
            torch.logaddexp(r[t], other[t], out=r[t + 1])
            r[t + 1] += emit[t]
        return r[1:, :2].permute(0, 2, 3, 1), r[steps, 2]

    def extend(self, r: torch.Tensor, last: torch.Tensor, step: int, candidates: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score one-token extensions of N prefixes of length `step` whose last tokens are `last` (N,).

        candidates (N, C): the tokens to score for each prefix (a pre-beam: scoring all V costs C/V more).
        Returns r_next (T, N, C, 2) for every extended prefix and psi (N, V): log psi(h + c) for the
        candidates, log P(h | x) in the <eos> column, NEG elsewhere.
        """
        t_max, n, _ = self.x.shape
        x = self.x.gather(2, candidates[None].expand(t_max, -1, -1))  # (T, N, C)
        r_sum = torch.logaddexp(r[..., 0], r[..., 1])  # (T, N)
        # a repeated token only starts a new label after a blank
        repeat = (candidates == last[:, None]) & (step > 0)
        phi = torch.where(repeat[None], r[:, :, 1, None], r_sum[:, :, None])  # (T, N, C)
        r_next = x.new_full((t_max, n, candidates.shape[1], 2), NEG)
        if step == 0:
            r_next[0, :, :, 0] = x[0]
        start = max(step, 1)  # a prefix of length L cannot end before frame L
        # psi when no frame is left (and zero for a prefix longer than the frames, past a max_len_ratio of 1)
        prefix = r_next[start - 1, :, :, 0] if start <= t_max else x.new_full(candidates.shape, NEG)
        if start < t_max:
            r_next[start:], prefix = self.recurrence(x[start:], self.x[start:, :, self.blank], phi[start - 1:-1],
                                                     prefix)
        psi = x.new_full((n, self.x.shape[2]), NEG).scatter(1, candidates, prefix)
        psi[:, self.eos] = r_sum[self.lengths - 1, self.rows]
        psi[:, self.blank] = NEG
        return r_next, psi
