"""One entry point for every offline search, so callers (asr-decode, Transcriber, benchmarks) need not know
which one runs: greedy, beam search with optional CTC prefix scores and language models, or the CTC head's
best path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from ..models.las import LAS
from ..models.lexicon_lm import BIGRAM_FILE, LEXICON_FILE, LexiconLM
from .beam import BeamOptions, Hypothesis, beam_search
from .greedy import LoopGuard, ctc_greedy_decode, greedy_decode


def lexicon_file(lm_dir: str | Path, name: str, option: str) -> Path:
    """lm_dir/name, or FileNotFoundError naming it, what writes it, and the search option that does without it."""
    path = Path(lm_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (asr-lexicon writes it; search.{option}=0 decodes without it)")
    return path


@dataclass
class Search:
    """method: greedy | beam | ctc_greedy. `beam` holds the beam settings; `lm` a loaded language model and `lexicon` a
    word lexicon LM (or None); `guard` the limits that stop a looping speller (the CTC best path cannot loop and
    ignores them)."""

    method: str = "greedy"
    beam: BeamOptions = field(default_factory=BeamOptions)
    max_len_ratio: float = 1.0
    lm: torch.nn.Module | None = None
    lexicon: LexiconLM | None = None
    guard: LoopGuard = field(default_factory=LoopGuard)

    def __post_init__(self):
        if self.method not in ("greedy", "beam", "ctc_greedy"):
            raise ValueError(f"unknown search method {self.method!r} (greedy | beam | ctc_greedy)")

    @classmethod
    def from_config(cls, cfg: Mapping) -> Search:
        """From conf/decode.yaml's `search` block: method, max_len_ratio, lm_dir (its lm.pt for lm_weight, its
        lexicon.tsv for lexicon_weight, its bigrams.tsv for lexicon_bigram), lexicon_oov, the BeamOptions keys and
        the LoopGuard keys (max_ngram_repeats, repeat_ngram, max_chars_per_second)."""
        beam_keys = {f.name for f in fields(BeamOptions)}
        beam = BeamOptions(**{k: v for k, v in cfg.items() if k in beam_keys})
        guard_keys = {f.name for f in fields(LoopGuard)} - {"symbols"}
        guard = LoopGuard(**{k: v for k, v in cfg.items() if k in guard_keys})
        lm = lexicon = None
        lm_dir = cfg.get("lm_dir")
        if not lm_dir:
            beam.lm_weight = beam.lexicon_weight = 0.0
        if beam.lm_weight > 0:
            from ..models.lm import load_lm

            lm = load_lm(Path(lm_dir))
        if beam.lexicon_weight > 0:
            from ..data.tokenizer import load_tokenizer

            path = lexicon_file(lm_dir, LEXICON_FILE, "lexicon_weight")
            bigram_weight = cfg.get("lexicon_bigram", 0.0)
            bigram_path = lexicon_file(lm_dir, BIGRAM_FILE, "lexicon_bigram") if bigram_weight > 0 else None
            tokenizer = load_tokenizer(Path(lm_dir) / "tokenizer.json")
            lexicon = LexiconLM.from_file(path, tokenizer, cfg.get("lexicon_oov", -30.0), bigram_path, bigram_weight)
        return cls(cfg.get("method", "greedy"), beam, beam.max_len_ratio, lm, lexicon, guard)

    def __call__(self, model: LAS, feats: torch.Tensor, lengths: torch.Tensor, frames: bool = False,
                 symbols: Sequence[str] | None = None) -> list[Hypothesis]:
        """feats (B, T, F), lengths (B,) -> one hypothesis per utterance. frames=True also fills each
        token's most attended listener frame for greedy search (beam search and CTC greedy always do; the latter
        gives the frame where the token's CTC path starts). symbols: the tokenizer's, so that the loop guard
        can count words (without them it only caps the length)."""
        guard = replace(self.guard, symbols=symbols) if symbols is not None else self.guard
        if self.method == "beam":
            for fused in (self.lm, self.lexicon):
                if fused is not None:
                    fused.to(feats.device)
            return beam_search(model, feats, lengths, self.beam, self.lm, self.lexicon, guard)
        if self.method == "ctc_greedy":
            return [Hypothesis(t, f, 0.0) for t, f in zip(*ctc_greedy_decode(model, feats, lengths))]
        tokens, alignments = greedy_decode(model, feats, lengths, self.max_len_ratio, keep_alignments=frames,
                                           guard=guard)
        if not frames:
            return [Hypothesis(t, [], 0.0) for t in tokens]
        return [Hypothesis(t, a.argmax(-1)[: len(t)].tolist(), 0.0) for t, a in zip(tokens, alignments)]
