"""Guided attention (Tachibana et al. 2018, arXiv:1710.08969): a loss on attention weight that lies far from the
diagonal, since the n-th of N output tokens is spoken around the (n/N)-th part of the audio.

    W[n, t] = 1 - exp(-(n / N - t / T)^2 / (2 g^2))

Output step n of N and listener frame t of T, each utterance with its own N and T; g is the width of the band
that costs little. It works on any attention's weights: soft weights, or the expected alignment of monotonic
attention and MoChA's expected chunk attention (what their `weights` are in training).
"""

from __future__ import annotations

import torch


def diagonal_penalty(out_lengths: torch.Tensor, in_lengths: torch.Tensor, max_out: int, max_in: int,
                     sigma: float) -> torch.Tensor:
    """W (B, max_out, max_in) for output lengths N (B,) and input lengths T (B,); zero past either length."""
    n = torch.arange(max_out, device=out_lengths.device)[None, :, None] / out_lengths[:, None, None]
    t = torch.arange(max_in, device=in_lengths.device)[None, None, :] / in_lengths[:, None, None]
    penalty = 1 - torch.exp(-((n - t) ** 2) / (2 * sigma**2))
    valid = (n < 1) & (t < 1)
    return penalty * valid


def guided_attention_loss(alignments: torch.Tensor, out_lengths: torch.Tensor, in_lengths: torch.Tensor,
                          sigma: float = 0.2) -> torch.Tensor:
    """alignments (B, N, T): the attention weights of each output step; out_lengths (B,) the steps that count
    (tokens and <eos>), in_lengths (B,) the listener frames. Returns the mean over counted steps of
    sum_t A[n, t] W[n, t]: 0 on the diagonal band, up to 1 far from it."""
    alignments = alignments.float()
    w = diagonal_penalty(out_lengths.to(alignments.device), in_lengths.to(alignments.device), alignments.shape[1],
                         alignments.shape[2], sigma)
    return (alignments * w).sum() / out_lengths.sum().clamp_min(1)
