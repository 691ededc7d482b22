"""Batched greedy decoding: every utterance of the batch advances one token per speller step; and the CTC
head's best path, which shows on its own how strong that head is."""

from __future__ import annotations

import math

import torch

from ..models.las import LAS


@torch.inference_mode()
def greedy_decode(model: LAS, feats: torch.Tensor, lengths: torch.Tensor, max_len_ratio: float = 1.0,
                  keep_alignments: bool = False, min_len_ratio: float = 0.0
                  ) -> tuple[list[list[int]], list[torch.Tensor] | None]:
    """feats (B, T, F), lengths (B,) -> token ids per utterance (without <eos>) and, if asked, each
    utterance's alignment (U_i, T'_i). Decoding stops at <eos> or after max_len_ratio * T' tokens;
    <eos> cannot be chosen before floor(min_len_ratio * T') tokens (as in beam search)."""
    memory, mem_lengths = model.encode(feats, lengths)
    speller = model.speller
    b = memory.shape[0]
    state = speller.init_state(memory, mem_lengths)
    tokens = torch.full((b,), model.sos_eos, dtype=torch.long, device=memory.device)
    max_steps = mem_lengths.mul(max_len_ratio).ceil().long().clamp(min=1)
    min_steps = mem_lengths.mul(min_len_ratio).floor().long()
    finished = torch.zeros(b, dtype=torch.bool, device=memory.device)
    hyps: list[torch.Tensor] = []
    alignments: list[torch.Tensor] = []
    for step in range(math.ceil(max_steps.max().item())):
        features, weights, state = speller.step(tokens, state)
        logits = speller.output(features)
        logits[:, model.blank] = float("-inf")  # the CTC blank is not a speller token
        if min_len_ratio > 0:
            logits[:, model.sos_eos] = logits[:, model.sos_eos].masked_fill(step < min_steps, float("-inf"))
        tokens = logits.argmax(-1)
        tokens = tokens.masked_fill(finished, model.sos_eos)
        hyps.append(tokens)
        if keep_alignments:
            alignments.append(weights)
        finished |= (tokens == model.sos_eos) | (step + 1 >= max_steps)
        if finished.all():
            break
    ids = torch.stack(hyps, 1).tolist()
    results = []
    for row in ids:
        results.append(row[: row.index(model.sos_eos)] if model.sos_eos in row else row)
    if not keep_alignments:
        return results, None
    att = torch.stack(alignments, 1)  # (B, U, T')
    return results, [att[i, : max(len(r), 1), : mem_lengths[i]] for i, r in enumerate(results)]


@torch.inference_mode()
def ctc_greedy_decode(model: LAS, feats: torch.Tensor, lengths: torch.Tensor
                      ) -> tuple[list[list[int]], list[list[int]]]:
    """feats (B, T, F), lengths (B,) -> the CTC head's best path per utterance: the most probable token of every
    CTC frame, repeats merged, blanks dropped; and the listener frame where each token starts."""
    if model.ctc_head is None:
        raise ValueError("CTC greedy decoding needs a model trained with a CTC head (ctc_weight > 0)")
    memory, mem_lengths = model.encode(feats, lengths)
    tokens, ctc_frames = ctc_best_paths(*model.ctc_log_probs(memory, mem_lengths), model.blank)
    return tokens, [[f // model.ctc_upsample for f in row] for row in ctc_frames]


def ctc_best_paths(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int
                   ) -> tuple[list[list[int]], list[list[int]]]:
    """CTC log-probabilities (B, T, V), lengths (B,) -> per utterance the most probable token of every frame,
    repeats merged, blanks dropped; and the CTC frame where each token starts."""
    best = log_probs.argmax(-1)  # (B, T)
    starts = torch.ones_like(best, dtype=torch.bool)
    starts[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = starts & (best != blank)
    keep &= torch.arange(best.shape[1], device=best.device)[None, :] < lengths[:, None]
    tokens, frames = [], []
    for row, kept in zip(best, keep):
        where = kept.nonzero().squeeze(1)
        tokens.append(row[where].tolist())
        frames.append(where.tolist())
    return tokens, frames
