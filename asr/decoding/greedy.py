"""Batched greedy decoding: every utterance of the batch advances one token per speller step; and the CTC
head's best path, which shows on its own how strong that head is.

`LoopGuard` holds the limits every search keeps so that a speller stuck in a loop (on noise, or past the end of
what it can read) stops: no word n-gram more than `max_ngram_repeats` times, and no more tokens than
`max_chars_per_second` allows for the audio's length. Greedy search ends an utterance at the token that
completes one repetition too many and drops that repetition; beam search (beam.py) removes such hypotheses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..frontend import FRAMES_PER_SECOND
from ..models.las import LAS

# word and n-gram hashes: a polynomial hash modulo each of two primes below 2**31, so products stay in int64
# and two different n-grams share both hashes with a probability of about 2**-62
MODULI = (2**31 - 1, 2**31 - 19)
WORD_BASE, NGRAM_BASE = (1_000_003, 998_244_353), (1_000_000_007, 999_999_937)
INSIDE, ENDS, STARTS = 0, 1, 2  # a token continues a word, ends it (space, <eos>), or ends it and starts another


@dataclass
class LoopGuard:
    """conf/decode.yaml `search`: max_ngram_repeats, repeat_ngram, max_chars_per_second. `symbols` (the
    tokenizer's, id -> text) tell where words start and end; without them only the rate cap holds."""

    max_ngram_repeats: int = 2         # no word n-gram more often than this (0: no limit)
    repeat_ngram: int = 4              # n, in words
    max_chars_per_second: float = 40.0  # no more tokens than this per second of audio (0: no limit)
    symbols: Sequence[str] | None = None

    def __post_init__(self):
        if self.max_ngram_repeats < 0 or self.repeat_ngram < 1 or self.max_chars_per_second < 0:
            raise ValueError(f"loop guard: max_ngram_repeats >= 0, repeat_ngram >= 1 and max_chars_per_second >= 0 "
                             f"needed, got {self.max_ngram_repeats}, {self.repeat_ngram}, "
                             f"{self.max_chars_per_second}")

    def max_tokens(self, lengths: torch.Tensor) -> torch.Tensor | None:
        """input frames (B,) -> the most tokens each utterance may have, or None (no cap). Every token is at
        least one character, so this never cuts text slower than max_chars_per_second."""
        if not self.max_chars_per_second:
            return None
        return lengths.mul(self.max_chars_per_second / FRAMES_PER_SECOND).ceil().long().clamp(min=1)

    def tracker(self, rows: int, eos: int, vocab_size: int, device: torch.device) -> RepeatTracker | None:
        """A tracker of `rows` empty hypotheses, or None when n-grams are not limited or words are unknown."""
        if not self.max_ngram_repeats or self.symbols is None:
            return None
        if len(self.symbols) != vocab_size:
            raise ValueError(f"loop guard: {len(self.symbols)} tokenizer symbols for a model of {vocab_size} tokens")
        kinds = torch.tensor([STARTS if s.startswith("\u2581") else ENDS if s == " " else INSIDE
                              for s in self.symbols], device=device)
        kinds[eos] = ENDS
        return RepeatTracker(kinds, rows, self.repeat_ngram, self.max_ngram_repeats)


def mix(hashes: torch.Tensor, values: torch.Tensor, base: tuple[int, int]) -> torch.Tensor:
    """hashes (..., 2), values (...) >= 0 -> (hashes * base + values + 1) mod MODULI, (..., 2)."""
    moduli, base = hashes.new_tensor(MODULI), hashes.new_tensor(base)
    return (hashes * base + (values[..., None] + 1) % moduli) % moduli


class RepeatTracker:
    """The word n-grams of R growing hypotheses (rows), one token appended to each per step, hashed so that a
    step costs a few (R, steps) tensor operations whatever the vocabulary.

    A word is the tokens between word ends: a space or <eos> (character tokenizers) or a piece starting with
    "▁" (SentencePiece, which also starts the next word). Word n-grams are counted where they complete, at the
    token that ends their last word."""

    def __init__(self, kinds: torch.Tensor, rows: int, n: int, max_repeats: int):
        self.kinds, self.n, self.max_repeats = kinds, n, max_repeats
        long = dict(dtype=torch.long, device=kinds.device)
        self.word = torch.zeros(rows, 2, **long)           # hash of the word being spelt
        self.word_len = torch.zeros(rows, **long)          # its tokens so far (0: between words)
        self.word_begin = torch.zeros(rows, **long)        # index of its first token
        self.recent = torch.zeros(rows, n - 1, 2, **long)  # hashes of the last n - 1 finished words
        self.recent_begin = torch.zeros(rows, n - 1, **long)
        self.words = torch.zeros(rows, **long)             # finished words
        self.seen = torch.zeros(rows, 0, **long)           # packed hash of each finished n-gram, -1 where none
        self.length = 0

    def ngram(self) -> torch.Tensor:
        """(R,) packed hash of the n-gram the word being spelt would complete if it ended now."""
        h = self.word.new_zeros(self.word.shape)
        for i in range(self.n - 1):
            h = mix(h, self.recent[:, i, 0] * 2**31 + self.recent[:, i, 1], NGRAM_BASE)
        h = mix(h, self.word[:, 0] * 2**31 + self.word[:, 1], NGRAM_BASE)
        return h[:, 0] * 2**31 + h[:, 1]

    def repeats(self) -> torch.Tensor:
        """(R,) bool: ending the current word now would complete an n-gram seen max_repeats times already."""
        complete = (self.word_len > 0) & (self.words >= self.n - 1)
        count = (self.seen == self.ngram()[:, None]).sum(1)
        return complete & (count >= self.max_repeats)

    def ends_word(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (...,) -> (...,) bool: the token ends the word before it."""
        return self.kinds[tokens] != INSIDE

    def cut(self) -> torch.Tensor:
        """(R,) index of the first token of the n-gram the current word would complete: where a repetition
        of it starts."""
        return self.recent_begin[:, 0] if self.n > 1 else self.word_begin

    def trim(self, ids: list[int]) -> list[int]:
        """ids without the word ends (spaces, <eos>) they end with."""
        while ids and self.kinds[ids[-1]] == ENDS:
            ids = ids[:-1]
        return ids

    def append(self, tokens: torch.Tensor) -> None:
        """Add one token (R,) to every row."""
        kind = self.kinds[tokens]
        ended = (kind != INSIDE) & (self.word_len > 0)
        counted = ended & (self.words >= self.n - 1)
        self.seen = torch.cat([self.seen, torch.where(counted, self.ngram(), -1)[:, None]], 1)
        if self.n > 1:
            shifted = torch.cat([self.recent[:, 1:], self.word[:, None]], 1)
            self.recent = torch.where(ended[:, None, None], shifted, self.recent)
            begins = torch.cat([self.recent_begin[:, 1:], self.word_begin[:, None]], 1)
            self.recent_begin = torch.where(ended[:, None], begins, self.recent_begin)
        self.words += ended.long()
        inside, starts = kind == INSIDE, kind == STARTS
        new_word = (starts | (inside & (self.word_len == 0)))
        self.word_begin = torch.where(new_word, self.length, self.word_begin)
        extended = mix(torch.where(inside[:, None], self.word, 0), tokens, WORD_BASE)
        self.word = torch.where((kind == ENDS)[:, None], 0, extended)
        self.word_len = torch.where(inside, self.word_len + 1, starts.long())
        self.length += 1

    def select(self, rows: torch.Tensor) -> None:
        """Keep the rows `rows` (R',), in that order (beam search reorders and drops hypotheses)."""
        for name in ("word", "word_len", "word_begin", "recent", "recent_begin", "words", "seen"):
            setattr(self, name, getattr(self, name)[rows])


@torch.inference_mode()
def greedy_decode(model: LAS, feats: torch.Tensor, lengths: torch.Tensor, max_len_ratio: float = 1.0,
                  keep_alignments: bool = False, min_len_ratio: float = 0.0, guard: LoopGuard | None = None
                  ) -> tuple[list[list[int]], list[torch.Tensor] | None]:
    """feats (B, T, F), lengths (B,) -> token ids per utterance (without <eos>) and, if asked, each
    utterance's alignment (U_i, T'_i). Decoding stops at <eos> or after max_len_ratio * T' tokens;
    <eos> cannot be chosen before floor(min_len_ratio * T') tokens (as in beam search). guard: also stop where
    its limits say, dropping the repetition that reaches max_ngram_repeats + 1."""
    memory, mem_lengths = model.encode(feats, lengths)
    speller = model.speller
    b = memory.shape[0]
    state = speller.init_state(memory, mem_lengths)
    tokens = torch.full((b,), model.sos_eos, dtype=torch.long, device=memory.device)
    max_steps = mem_lengths.mul(max_len_ratio).ceil().long().clamp(min=1)
    cap = guard.max_tokens(lengths.to(memory.device)) if guard else None
    if cap is not None:
        max_steps = torch.minimum(max_steps, cap)
    min_steps = mem_lengths.mul(min_len_ratio).floor().long()
    tracker = guard.tracker(b, model.sos_eos, model.vocab_size, memory.device) if guard else None
    cut = torch.full((b,), -1, dtype=torch.long, device=memory.device)  # where a dropped repetition starts
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
        if tracker is not None:
            looping = tracker.repeats() & tracker.ends_word(tokens) & ~finished
            cut = torch.where(looping, tracker.cut(), cut)
            tokens = tokens.masked_fill(looping, model.sos_eos)
            tracker.append(tokens)
        hyps.append(tokens)
        if keep_alignments:
            alignments.append(weights)
        finished |= (tokens == model.sos_eos) | (step + 1 >= max_steps)
        if finished.all():
            break
    ids = torch.stack(hyps, 1).tolist()
    results = []
    for row, end in zip(ids, cut.tolist()):
        row = row[: row.index(model.sos_eos)] if model.sos_eos in row else row
        results.append(tracker.trim(row[:end]) if end >= 0 else row)
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
