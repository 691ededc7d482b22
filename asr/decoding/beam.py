"""Batched beam search for LAS: many utterances, K hypotheses each, advanced together one token per step.

Every hypothesis is one row of a (B * K) batch, so the speller, attention, CTC prefix scorer and language model
each take one batched call per step whatever the attention is. A step's score for token c adds
    (1 - ctc_weight) * log p_att(c) + ctc_weight * (log psi(h + c) - log psi(h)) + lm_weight * log p_lm(c)
    + lexicon_weight * log p_lex(c)
(p_lex: a word LM spelt out over characters, asr/models/lexicon_lm.py) plus a coverage bonus
(Chorowski & Jaitly 2016) for frames whose summed attention passes a threshold. As in
fairseq, the best 2K candidates are looked at: those ending in <eos> among the top K are finished, and the K
best others go on, so a finished hypothesis never shrinks the beam.

With a loop guard (greedy.LoopGuard), a candidate whose token completes a word n-gram seen max_ngram_repeats
times already is pruned: it ends like an <eos> candidate but is not finished, only kept, without that
repetition, as the utterance's answer should none finish at all (so a beam of one stops where greedy does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.las import LAS
from .ctc_prefix import NEG, CTCPrefixScorer
from .greedy import LoopGuard


@dataclass
class BeamOptions:
    """Search settings (conf/decode.yaml `beam`)."""

    beam_size: int = 8
    ctc_weight: float = 0.0        # joint CTC/attention scoring; needs a model with a CTC head
    lm_weight: float = 0.0         # shallow fusion with a language model
    lexicon_weight: float = 0.0    # shallow fusion with the word lexicon LM
    length_norm: float = 0.0       # final score / (tokens + 1) ** length_norm
    eos_threshold: float | None = None  # <eos> only within this many nats of the best token (attention score)
    min_len_ratio: float = 0.0     # no <eos> before this many tokens per listener frame
    max_len_ratio: float = 1.0     # at most this many tokens per listener frame
    coverage_weight: float = 0.0   # bonus per frame whose summed attention exceeds coverage_threshold
    coverage_threshold: float = 0.5
    ctc_candidates: int = 0        # CTC-score this many best candidates per utterance (at least 2 * beam_size)


@dataclass
class Hypothesis:
    """A finished hypothesis: token ids (without <eos>), the listener frame each token attended most,
    and its final score."""

    tokens: list[int]
    frames: list[int]
    score: float


@torch.inference_mode()
def beam_search(model: LAS, feats: torch.Tensor, lengths: torch.Tensor, options: BeamOptions | None = None,
                lm=None, lexicon=None, guard: LoopGuard | None = None) -> list[Hypothesis]:
    """feats (B, T, F), lengths (B,) -> the best hypothesis of each utterance.

    lm, lexicon: optional language models, each with `init_state(batch, device)`,
    `step(tokens, state) -> (log_probs, state)` and `state.select(index)` (asr.models.lm.CharLM,
    asr.models.lexicon_lm.LexiconLM), weighted by lm_weight and lexicon_weight.
    guard: length cap and word n-gram repeats (greedy.LoopGuard).
    """
    opt = options or BeamOptions()
    if opt.ctc_weight > 0 and model.ctc_head is None:
        raise ValueError("beam search: ctc_weight > 0 needs a model trained with a CTC head (ctc_weight > 0)")
    if opt.lm_weight > 0 and lm is None:
        raise ValueError("beam search: lm_weight > 0 needs a language model")
    if opt.lexicon_weight > 0 and lexicon is None:
        raise ValueError("beam search: lexicon_weight > 0 needs a lexicon")
    memory, mem_lengths = model.encode(feats, lengths)
    b, k, eos, device = memory.shape[0], opt.beam_size, model.sos_eos, memory.device
    speller = model.speller
    memory_extras = getattr(speller.attention, "memory_extras", ())
    expand = torch.arange(b, device=device).repeat_interleave(k)
    state = speller.init_state(memory, mem_lengths)
    # K rows per utterance; the keys and values stay one copy per utterance where the attention can read them so
    state = state.share_rows(k, memory_extras) if speller.attention.shares_memory else state.select(expand)
    ctc = None
    if opt.ctc_weight > 0:
        ctc = CTCPrefixScorer(*model.ctc_log_probs(memory, mem_lengths), model.blank, eos, group=k)
        ctc_r, ctc_psi = ctc.initial_state()
    # shallow fusion: [weight, model, state] per language model in use
    fused = [[w, m, m.init_state(b * k, device)] for w, m in ((opt.lm_weight, lm), (opt.lexicon_weight, lexicon))
             if w > 0]

    max_steps = mem_lengths.mul(opt.max_len_ratio).ceil().long().clamp(min=1)
    cap = guard.max_tokens(lengths.to(device)) if guard else None
    if cap is not None:
        max_steps = torch.minimum(max_steps, cap)
    tracker = guard.tracker(b * k, eos, model.vocab_size, device) if guard else None
    min_steps = mem_lengths.mul(opt.min_len_ratio).floor().long()
    scores = torch.full((b, k), NEG, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per utterance to start with
    tokens = torch.full((b * k,), eos, dtype=torch.long, device=device)
    history = tokens.new_zeros(b * k, 0)
    frames = tokens.new_zeros(b * k, 0)
    coverage = memory.new_zeros(b * k, memory.shape[1]) if opt.coverage_weight > 0 else None
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    pruned: list[list[Hypothesis]] = [[] for _ in range(b)]  # loops, without their last repetition
    active = torch.arange(b, device=device)  # utterances in the batch, in row-block order
    # per active utterance: its search is over, but its rows stay (scores NEG, so nothing they make is kept or
    # finished) until half the batch is over, so the listener-made tensors are copied smaller a few times per
    # batch rather than at every finished utterance (each copy allocates B x K x T x D floats anew)
    over = torch.zeros(b, dtype=torch.bool, device=device)

    for step in range(int(max_steps.max())):
        features, weights, state = speller.step(tokens, state)
        logp = speller.output(features).float().log_softmax(-1)
        logp[:, model.blank] = NEG
        a = active.numel()
        delta = (1 - opt.ctc_weight) * logp if ctc is not None else logp.clone()
        for entry in fused:
            fused_logp, entry[2] = entry[1].step(tokens, entry[2])
            delta += entry[0] * fused_logp.float()
        if coverage is not None:
            gained = (coverage + weights).gt(opt.coverage_threshold).sum(-1) \
                - coverage.gt(opt.coverage_threshold).sum(-1)
            coverage = coverage + weights
            delta += opt.coverage_weight * gained[:, None]
        no_eos = (step < min_steps[active]).repeat_interleave(k)  # rows are K per active utterance, in order
        if opt.eos_threshold is not None:
            no_eos |= logp[:, eos] < logp.max(-1).values - opt.eos_threshold
        delta[:, eos] = delta[:, eos].masked_fill(no_eos, NEG)
        v = delta.shape[-1]
        candidates = (scores.view(-1, 1) + delta).view(a, k * v)
        utterance = torch.arange(a, device=device)[:, None]  # (A, 1): the row block of each active utterance
        if ctc is None:
            top_scores, top_index = candidates.topk(min(2 * k, k * v), dim=-1)  # (A, 2K), best first
        else:
            # CTC prefix scores cost a loop over frames per candidate, so only the best M of each utterance by
            # every other score are CTC-scored (a pre-beam; ESPnet's is 1.5 K per hypothesis, K times more)
            m = min(max(opt.ctc_candidates, 2 * k), k * v)  # the 2K looked at below need their CTC scores
            pre_scores, pre_index = candidates.topk(m, dim=-1)  # (A, M)
            pre_rows = pre_index // v + utterance * k
            r_next, psi = ctc.extend(ctc_r, tokens, step, pre_rows.view(-1), (pre_index % v).view(-1))
            pre_scores = pre_scores + opt.ctc_weight * (psi.view(a, m) - ctc_psi[pre_rows])
            top_scores, pick = pre_scores.topk(min(2 * k, m), dim=-1)
            top_index = pre_index.gather(1, pick)
            pick = pick + utterance * m  # into the A * M scored candidates
        source = top_index // v + utterance * k  # row each candidate extends
        token = top_index % v
        is_eos = token == eos
        is_loop = torch.zeros_like(is_eos)
        if tracker is not None:
            is_loop = tracker.repeats()[source] & tracker.ends_word(token)
            cut = tracker.cut()
        ends = is_eos | is_loop
        last_step = step + 1 >= max_steps[active]

        # finish: <eos> among the top K, or everything when the utterance reaches its maximum length
        rank = torch.arange(top_scores.shape[1], device=device)[None, :]
        done_now = (ends | last_step[:, None]) & (rank < k) & (top_scores > NEG / 2) & ~over[:, None]
        for i, j in done_now.nonzero().tolist():
            row, ended = source[i, j], bool(is_eos[i, j])
            if is_loop[i, j]:
                ids = tracker.trim(history[row, : int(cut[row])].tolist())
                norm = (len(ids) + 1) ** opt.length_norm
                pruned[int(active[i])].append(Hypothesis(ids, frames[row, : len(ids)].tolist(),
                                                         float(top_scores[i, j]) / norm))
                continue
            ids = history[row].tolist() + ([] if ended else [int(token[i, j])])
            hyp_frames = frames[row].tolist() + ([] if ended else [int(weights[row].argmax())])
            norm = (len(ids) + 1) ** opt.length_norm
            finished[int(active[i])].append(Hypothesis(ids, hyp_frames, float(top_scores[i, j]) / norm))

        # go on with the K best candidates that did not end
        order = (rank + ends.long() * 2 * k).argsort(-1)[:, :k]
        keep_scores = top_scores.gather(1, order).masked_fill(ends.gather(1, order), NEG)
        keep_source, keep_token = source.gather(1, order).view(-1), token.gather(1, order).view(-1)
        keep_pick = pick.gather(1, order) if ctc is not None else None

        n_done = torch.tensor([len(finished[int(u)]) + len(pruned[int(u)]) for u in active], device=device)
        best_done = torch.tensor([max((h.score for h in finished[int(u)]), default=NEG) for u in active],
                                 device=device)
        search_over = over | last_step | (n_done >= k)
        if opt.length_norm == 0 and opt.coverage_weight == 0 and getattr(lexicon, "monotone", True):
            # scores only fall as tokens are added, so nothing left can beat the best finished hypothesis
            search_over |= keep_scores.max(-1).values <= best_done
        if search_over.all():
            break

        # hypotheses only move within their utterance unless the finished utterances are dropped: then the
        # listener-made tensors shrink too
        compact = bool(search_over.sum() * 2 >= a)
        keep = ~search_over if compact else torch.ones_like(search_over)
        rows = keep_source.view(a, k)[keep].view(-1)
        over = search_over[keep]
        scores = keep_scores[keep].masked_fill(over[:, None], NEG)
        tokens = keep_token.view(a, k)[keep].view(-1)
        history = torch.cat([history[rows], tokens[:, None]], 1)
        frames = torch.cat([frames[rows], weights[rows].argmax(-1, keepdim=True)], 1)
        if tracker is not None:
            tracker.select(rows)
            tracker.append(tokens)
        active = active[keep]
        state = state.select(rows, keep_memory=not compact, memory_extras=memory_extras)
        if ctc is not None:
            scored = keep_pick[keep].view(-1)
            ctc_r, ctc_psi = r_next[:, scored], psi[scored]
            if compact:
                ctc.select(keep.nonzero().view(-1))
        for entry in fused:
            entry[2] = entry[2].select(rows)
        if coverage is not None:
            coverage = coverage[rows]

    return [max(hyps or loops, key=lambda h: h.score) if hyps or loops else Hypothesis([], [], NEG)
            for hyps, loops in zip(finished, pruned)]
