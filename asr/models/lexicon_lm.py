"""A word unigram language model scored one character at a time, for beam search over a character speller.

A character LM trained on a few thousand sentences knows little English spelling; a list of words with their
frequencies knows a lot. Here the words are laid out as a character trie. Each trie node n carries L(n), the
log of the probability mass of every word below it; a character that moves a hypothesis from node n to n'
scores L(n') - L(n), and the space (or <eos>) that ends a word at n scores log p(word) - L(n). Along a word
these telescope to log p(word), yet a misspelt prefix is penalised as soon as it leaves the likely words: the
look-ahead of Hori, Cho & Watanabe 2018 ("End-to-end speech recognition with word-based RNN language models")
with a unigram model. A word not in the lexicon costs `oov_log_prob` in all, charged on the character that
leaves the trie (or on the space after a prefix that is not itself a word); so does a space that ends no word.

Every step score is at most 0 (the leaving charge is clamped), so adding this to a beam keeps scores falling as
tokens are added, which the beam's early stop relies on.

The lexicon file (`lexicon.tsv`, written by asr-train-lm) has one `WORD<TAB>log-probability` line per word.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

LEXICON_FILE = "lexicon.tsv"


@dataclass
class LexiconState:
    """node (B,): the trie node reached by the characters of each hypothesis's current word (0 = word start)."""

    node: torch.Tensor

    def select(self, index: torch.Tensor) -> LexiconState:
        """Hypotheses ``index`` (B',) in that order (beam search reorders, repeats and drops them)."""
        return LexiconState(self.node.index_select(0, index))


class LexiconLM:
    """Word unigram probabilities over a character tokenizer's ids (see the module docstring).

    words: word -> probability (need not sum to 1; they are normalised). Words with a character the tokenizer
    lacks are left out. tokenizer: a CharTokenizer whose symbols include the space.
    """

    def __init__(self, words: Mapping[str, float], tokenizer, oov_log_prob: float = -30.0):
        if not hasattr(tokenizer, "index") or " " not in tokenizer.index:
            raise ValueError("a lexicon LM needs a character tokenizer with the space as a symbol")
        index, vocab = tokenizer.index, len(tokenizer)
        kept = {w: p for w, p in words.items() if w and p > 0 and all(c in index and c != " " for c in w)}
        if not kept:
            raise ValueError("lexicon: no word is spelt in the tokenizer's characters")
        total = sum(kept.values())
        self.oov_log_prob, self.words = float(oov_log_prob), len(kept)
        self.space, self.sos_eos, self.blank = index[" "], tokenizer.sos_eos, tokenizer.blank

        # trie: children[node][char id] -> node; mass below each node; probability of the word ending there
        children: list[dict[int, int]] = [{}]
        mass, end = [0.0], [0.0]
        for word, p in kept.items():
            p /= total
            node = 0
            mass[0] += p
            for c in word:
                nxt = children[node].get(index[c])
                if nxt is None:
                    nxt = len(children)
                    children[node][index[c]] = nxt
                    children.append({})
                    mass.append(0.0)
                    end.append(0.0)
                node = nxt
                mass[node] += p
            end[node] += p
        n = len(children)
        self.sink = n  # the node of every hypothesis whose current word has left the lexicon

        # transition[node, token]: where feeding `token` at `node` leads
        transition = torch.full((n + 1, vocab), self.sink, dtype=torch.int32)
        edges = torch.tensor([(node, c, kid) for node, kids in enumerate(children) for c, kid in kids.items()],
                             dtype=torch.long).view(-1, 3)
        transition[edges[:, 0], edges[:, 1]] = edges[:, 2].int()
        transition[:, [self.space, self.sos_eos]] = 0  # a space or <sos> starts a new word
        # the blank is never fed; it keeps the node, so it scores L(node) - L(node) = 0
        transition[:, self.blank] = torch.arange(n + 1, dtype=torch.int32)
        self.transition = transition
        log_mass = torch.tensor(mass, dtype=torch.float64).log()
        # entering the sink is charged oov - L(n) by giving the sink L = oov; staying in it costs nothing
        self.log_mass = torch.cat([log_mass, log_mass.new_tensor([self.oov_log_prob])])
        log_end = torch.tensor(end, dtype=torch.float64).log()  # -inf where no word ends
        end_score = torch.where(log_end > -math.inf, log_end, log_end.new_tensor(self.oov_log_prob)) - log_mass
        end_score = torch.cat([end_score, end_score.new_zeros(1)]).clamp(max=0.0).float()
        # at a word start <eos> ends nothing (an empty sentence, or a trailing space), but a space spells an
        # empty word, which no lexicon holds: a run of spaces must not be a free way to fill the output
        self.eos_score, self.space_score = end_score.clone(), end_score.clone()
        self.eos_score[0], self.space_score[0] = 0.0, min(self.oov_log_prob, 0.0)

    @classmethod
    def from_file(cls, path: str | Path, tokenizer, oov_log_prob: float = -30.0) -> LexiconLM:
        return cls(read_lexicon(path), tokenizer, oov_log_prob)

    def to(self, device: torch.device | str) -> LexiconLM:
        self.transition = self.transition.to(device)
        self.log_mass = self.log_mass.to(device)
        self.eos_score, self.space_score = self.eos_score.to(device), self.space_score.to(device)
        return self

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> LexiconState:
        return LexiconState(torch.zeros(batch_size, dtype=torch.long, device=device))

    def step(self, tokens: torch.Tensor, state: LexiconState) -> tuple[torch.Tensor, LexiconState]:
        """Feed one token per hypothesis: tokens (B,) -> (log-probabilities (B, V) of the next token, new
        state). Tokens other than characters, space and <eos> score 0."""
        node = self.transition[state.node, tokens].long()
        following = self.transition[node].long()  # (B, V)
        here = self.log_mass[node]
        logp = (self.log_mass[following] - here[:, None]).clamp(max=0.0).float()
        logp[:, self.space] = self.space_score[node]
        logp[:, self.sos_eos] = self.eos_score[node]
        return logp, LexiconState(node)

    def sentence_log_prob(self, ids: list[int]) -> float:
        """Total score of ``ids`` as a whole sentence ``<sos> ids <eos>`` (a slow reference for tests)."""
        state, total = self.init_state(1), 0.0
        for prev, token in zip([self.sos_eos, *ids], [*ids, self.sos_eos]):
            logp, state = self.step(torch.tensor([prev]), state)
            total += float(logp[0, token])
        return total


def build_lexicon(sentences: Iterable[str], size: int = 100000, text_weight: float = 0.5,
                  language: str = "en") -> dict[str, float]:
    """Word -> probability: the ``size`` most frequent words of wordfreq's large ``language`` list (upper-cased,
    as LibriSpeech transcripts are), interpolated with the words of ``sentences`` (weight ``text_weight``), so
    the names and rare words of the training text are in it too."""
    from wordfreq import get_frequency_dict

    freq = Counter()
    listed = sorted(get_frequency_dict(language, wordlist="large").items(), key=lambda kv: -kv[1])[:size]
    for word, f in listed:
        freq[word.upper()] += f
    counts = Counter(w for s in sentences for w in s.split())
    n_list, n_text = sum(freq.values()), sum(counts.values())
    if not n_text and not n_list:
        raise ValueError("lexicon: no words")
    words = set(freq) | set(counts)
    list_weight = 1.0 - text_weight if n_text else 1.0
    text_weight = text_weight if n_list else 1.0
    return {w: list_weight * freq[w] / max(n_list, 1e-30) + text_weight * counts[w] / max(n_text, 1)
            for w in words}


def write_lexicon(words: Mapping[str, float], path: str | Path) -> None:
    """``WORD<TAB>natural log-probability`` lines, most probable first, written atomically."""
    path = Path(path)
    total = sum(words.values())
    lines = [f"{w}\t{math.log(p / total):.4f}\n" for w, p in sorted(words.items(), key=lambda kv: -kv[1]) if p > 0]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)


def read_lexicon(path: str | Path) -> dict[str, float]:
    """The word -> probability map of a lexicon.tsv; a malformed line is reported with its number."""
    from ..textfile import read_lines

    words: dict[str, float] = {}
    for number, line in enumerate(read_lines(path), 1):
        parts = line.split("\t")
        try:
            word, log_prob = parts[0].strip(), float(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {number} is not WORD<TAB>log-probability: {line.strip()[:60]!r}") \
                from None
        if word:
            words[word] = words.get(word, 0.0) + math.exp(log_prob)
    if not words:
        raise ValueError(f"{path}: no words")
    return words
