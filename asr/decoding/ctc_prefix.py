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
    """Prefix scores of hypotheses over the CTC posteriors of their utterances.

    log_probs: (B, T, V) CTC log posteriors, lengths (B,) valid frames; hypotheses are `group` consecutive rows
    per utterance (a beam's K), so row i reads utterance i // group. A scorer state is (r, psi): r (T, N, 2) log
    r^n, r^b of each hypothesis' prefix, psi (N,) its log psi.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, eos: int, group: int = 1):
        _, t, _ = log_probs.shape
        padding = ~padding_mask(lengths, t).T  # (T, B)
        x = log_probs.transpose(0, 1).float().contiguous().masked_fill(padding[:, :, None], NEG)
        # past its end an utterance emits only blanks, so r^b carries the total forward unchanged
        x[:, :, blank] = x[:, :, blank].masked_fill(padding, 0.0)
        self.x, self.lengths, self.blank, self.eos, self.group = x, lengths, blank, eos, group

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        r_blank = self.x[:, :, self.blank].cumsum(0).repeat_interleave(self.group, 1)
        return torch.stack([torch.full_like(r_blank, NEG), r_blank], -1), r_blank.new_zeros(r_blank.shape[1])

    def select(self, utterances: torch.Tensor) -> None:
        """Keep the posteriors of these utterances (B',), in this order."""
        self.x, self.lengths = self.x[:, utterances], self.lengths[utterances]

    @staticmethod
    def recurrence(x: torch.Tensor, x_blank: torch.Tensor, phi: torch.Tensor, r_first: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames t = 1..L of the forward recursion
            r^n_t = (r^n_{t-1} + phi_{t-1}) p_t(c),    r^b_t = (r^b_{t-1} + r^n_{t-1}) p_t(blank)
        and, alongside, the prefix probability psi = r^n_0 + sum_t phi_{t-1} p_t(c), as three tensor ops per frame
        on all three rows at once (the loop is op-count bound, not data bound, so the third row is almost free
        and saves a log-sum over every frame afterwards).
        x (L, M) log p_t(c) of M candidates, x_blank (L, M), phi (L, M) log phi_{t-1}, r_first (M,) log r^n_0.
        Returns (L, M, 2): log r^n_t, log r^b_t; and (M,): log psi."""
        steps = x.shape[0]
        # row k of frame t: r[t + 1, k] = logaddexp(r[t, k], other[t, k]) + emit[t, k] for rows n, b and psi
        emit = torch.stack([x, x_blank, torch.zeros_like(x)], 1)  # (L, 3, M)
        other = torch.stack([phi, phi, phi + x], 1)  # row 1 gets r^n_{t-1} written in below
        r = x.new_empty(steps + 1, *emit.shape[1:])
        r[0, 0], r[0, 1], r[0, 2] = r_first, NEG, r_first
        # views made once: indexing in the loop would cost as much as the arithmetic
        frames, others, emits = r.unbind(0), other.unbind(0), emit.unbind(0)
        r_n, other_b = r[:, 0].unbind(0), other[:, 1].unbind(0)
        for t in range(steps):
            other_b[t].copy_(r_n[t])
            torch.logaddexp(frames[t], others[t], out=frames[t + 1])
            frames[t + 1].add_(emits[t])
        return r[1:, :2].transpose(1, 2), r[steps, 2]

    def extend(self, r: torch.Tensor, last: torch.Tensor, step: int, rows: torch.Tensor, tokens: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score M one-token extensions of N prefixes of length `step` whose last tokens are `last` (N,).

        Candidate i extends prefix rows[i] by tokens[i] (rows, tokens: (M,)); a beam search passes only the
        candidates that can still make its beam (a pre-beam: the loop below costs in proportion to M).
        Returns r_next (T, M, 2) of every extended prefix and psi (M,): log psi(h + c), or log P(h | x) for
        <eos>, log 0 for blank.
        """
        utterance = rows // self.group
        t_max, _, v = self.x.shape
        # index_select on flattened views: several times faster than advanced indexing on the CPU
        x = self.x.view(t_max, -1).index_select(1, utterance * v + tokens)  # (T, M) log p_t(c)
        x_blank = self.x[:, :, self.blank].index_select(1, utterance)
        r_sum = torch.logaddexp(r[..., 0], r[..., 1])  # (T, N)
        # a repeated token only starts a new label after a blank
        repeat = (tokens == last[rows]) & (step > 0)
        phi = torch.where(repeat, r[:, :, 1].index_select(1, rows), r_sum.index_select(1, rows))  # (T, M)
        r_next = x.new_full((t_max, len(rows), 2), NEG)
        if step == 0:
            r_next[0, :, 0] = x[0]
        start = max(step, 1)  # a prefix of length L cannot end before frame L
        # psi when no frame is left (and zero for a prefix longer than the frames, past a max_len_ratio of 1)
        psi = r_next[start - 1, :, 0] if start <= t_max else x.new_full(tokens.shape, NEG)
        if start < t_max:
            r_next[start:], psi = self.recurrence(x[start:], x_blank[start:], phi[start - 1:-1], psi)
        psi = torch.where(tokens == self.eos, r_sum[self.lengths[utterance] - 1, rows], psi)
        return r_next, psi.masked_fill(tokens == self.blank, NEG)
