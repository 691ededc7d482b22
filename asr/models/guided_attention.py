"""Supervised attention: losses on attention weight that lies far from where each output token is spoken.

Both put a band of low cost around a centre frame c[n] for every output step n and charge the attention weight
outside it:

    W[n, t] = 1 - exp(-(t - c[n])^2 / (2 s[n]^2)),   loss = mean over steps n of sum_t A[n, t] W[n, t]

- guided attention (Tachibana et al. 2018, arXiv:1710.08969): the diagonal, c[n] = T n / N and s = g T, since
  the n-th of N tokens is spoken around the (n/N)-th part of the audio;
- CTC alignment: c[n] is the listener frame where a CTC forced alignment of the model's own CTC head
  (torchaudio.functional.forced_align) puts token n, <eos> at the last frame; s is a number of frames.

They work on any attention's weights: soft weights, or the expected alignment of monotonic attention and MoChA's
expected chunk attention (what their `weights` are in training).
"""

from __future__ import annotations

import torch
from torchaudio.functional import forced_align


def band_penalty(centres: torch.Tensor, widths: torch.Tensor, out_lengths: torch.Tensor, in_lengths: torch.Tensor,
                 max_in: int) -> torch.Tensor:
    """W (B, N, max_in) for centre frames (B, N) and band widths (B, N) or (B, 1), in frames; zero for steps
    past out_lengths (B,) and frames past in_lengths (B,)."""
    t = torch.arange(max_in, device=centres.device, dtype=centres.dtype)
    penalty = 1 - torch.exp(-((t[None, None, :] - centres[..., None]) ** 2) / (2 * widths[..., None] ** 2))
    steps = torch.arange(centres.shape[1], device=centres.device)
    valid = (steps[None, :, None] < out_lengths[:, None, None]) & (t[None, None, :] < in_lengths[:, None, None])
    return penalty * valid


def band_loss(alignments: torch.Tensor, centres: torch.Tensor, widths: torch.Tensor, out_lengths: torch.Tensor,
              in_lengths: torch.Tensor) -> torch.Tensor:
    """alignments (B, N, T): the attention weights of each output step; out_lengths (B,) the steps that count
    (tokens and <eos>), in_lengths (B,) the listener frames. Mean over counted steps of sum_t A[n, t] W[n, t]:
    0 inside the bands, up to 1 far from them."""
    alignments = alignments.float()
    out_lengths, in_lengths = out_lengths.to(alignments.device), in_lengths.to(alignments.device)
    w = band_penalty(centres.float(), widths.float(), out_lengths, in_lengths, alignments.shape[2])
    return (alignments * w).sum() / out_lengths.sum().clamp_min(1)


def diagonal_centres(out_lengths: torch.Tensor, in_lengths: torch.Tensor, max_out: int) -> torch.Tensor:
    """c[n] = T n / N (B, max_out): where the diagonal of each utterance passes output step n."""
    n = torch.arange(max_out, device=out_lengths.device)[None, :]
    return n * in_lengths[:, None].float() / out_lengths[:, None].float()


def guided_attention_loss(alignments: torch.Tensor, out_lengths: torch.Tensor, in_lengths: torch.Tensor,
                          sigma: float = 0.2) -> torch.Tensor:
    """Tachibana et al.'s loss: the band around the diagonal, sigma (g) a share of each utterance's frames."""
    in_lengths = in_lengths.to(alignments.device)
    centres = diagonal_centres(out_lengths.to(alignments.device), in_lengths, alignments.shape[1])
    return band_loss(alignments, centres, sigma * in_lengths[:, None].float(), out_lengths, in_lengths)


def ctc_token_frames(log_probs: torch.Tensor, lp_lengths: torch.Tensor, targets: torch.Tensor,
                     target_lengths: torch.Tensor, blank: int, upsample: int = 1) -> torch.Tensor:
    """Centres (B, U + 1) for the CTC alignment loss: the listener frame where the forced alignment of CTC
    log-probabilities (B, T_ctc, V) puts the first frame of each target token, then the last frame for <eos>.
    An utterance too short for its targets (CTC cannot align it) gets the diagonal instead."""
    b, u = targets.shape
    device = log_probs.device
    frames = lp_lengths.div(upsample, rounding_mode="floor").cpu()
    centres = diagonal_centres(target_lengths.cpu() + 1, frames, u + 1)
    log_probs, lp_lengths, targets = log_probs.detach().float().cpu(), lp_lengths.cpu(), targets.cpu()
    for i in range(b):
        n, t = int(target_lengths[i]), int(lp_lengths[i])
        if n == 0:
            continue
        try:
            path, _ = forced_align(log_probs[i: i + 1, :t], targets[i: i + 1, :n].int(), blank=blank)
        except RuntimeError:  # fewer frames than tokens and repeats: no alignment exists
            continue
        path = path[0]
        starts = torch.ones_like(path, dtype=torch.bool)
        starts[1:] = path[1:] != path[:-1]
        where = (starts & (path != blank)).nonzero().squeeze(1)
        if len(where) == n:
            centres[i, :n] = where.float() / upsample
            centres[i, n] = float(frames[i] - 1)
    return centres.to(device)


def ctc_alignment_loss(alignments: torch.Tensor, centres: torch.Tensor, out_lengths: torch.Tensor,
                       in_lengths: torch.Tensor, width: float = 2.0) -> torch.Tensor:
    """The band around the CTC forced alignment's frames (`ctc_token_frames`), `width` listener frames wide."""
    centres = centres.to(alignments.device)
    return band_loss(alignments, centres, torch.full_like(centres[:, :1], width), out_lengths, in_lengths)
