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

Context (optional): with word bigram counts and a weight lambda, the word that a space or <eos> ends is scored
with an interpolated bigram, p(w | v) = lambda c(v, w) / c(v) + (1 - lambda) p(w), where v is the word before it
(<s> at the sentence start). The trie has already charged log p(w) along the word, so the end of the word adds
log p(w | v) - log p(w): the words of a sentence add up to its bigram log-probability. That correction is
positive for a pair seen in the text, so with bigrams step scores can rise (`monotone` says which).

The lexicon file (`lexicon.tsv`, written by asr-lexicon) has one `WORD<TAB>log-probability` line per word; the
bigram file (`bigrams.tsv`) one `PREVIOUS<TAB>WORD<TAB>count` line per pair, <s> standing for the sentence start.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..textfile import read_lines, write_text_atomic

LEXICON_FILE = "lexicon.tsv"
BIGRAM_FILE = "bigrams.tsv"
SENTENCE_START = "<s>"


@dataclass
class LexiconState:
    """node (B,): the trie node reached by the characters of each hypothesis's current word (0 = word start);
    previous (B,): the word before it as the trie node it ends at (0 = sentence start, the sink = not a word)."""

    node: torch.Tensor
    previous: torch.Tensor

    def select(self, index: torch.Tensor) -> LexiconState:
        """Hypotheses ``index`` (B',) in that order (beam search reorders, repeats and drops them)."""
        return LexiconState(self.node.index_select(0, index), self.previous.index_select(0, index))


class LexiconLM:
    """Word unigram probabilities over a character tokenizer's ids (see the module docstring).

    words: word -> probability (need not sum to 1; they are normalised). Words with a character the tokenizer
    lacks are left out. tokenizer: a CharTokenizer whose symbols include the space.
    bigrams: (previous word, word) -> count, with SENTENCE_START as the previous word of a sentence's first;
    bigram_weight: lambda of the interpolation (0: a unigram model).
    """

    def __init__(self, words: Mapping[str, float], tokenizer, oov_log_prob: float = -30.0,
                 bigrams: Mapping[tuple[str, str], float] | None = None, bigram_weight: float = 0.0):
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
        word_end = {SENTENCE_START: 0}  # the node each word ends at (the bigrams' keys); the root stands for <s>
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
            word_end[word] = node
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
        self.is_word = torch.cat([log_end > -math.inf, torch.zeros(1, dtype=torch.bool)])
        self.monotone = True
        self.bigram_keys = self.bigram_scores = self.backoff = None
        if bigrams and bigram_weight > 0:
            self._set_bigrams(bigrams, bigram_weight, word_end, end)

    def _set_bigrams(self, bigrams: Mapping[tuple[str, str], float], weight: float, word_end: Mapping[str, int],
                     end: list[float]) -> None:
        """Sorted keys previous * (sink + 1) + word over the word-end nodes, each with its correction
        log p(w | v) - log p(w); backoff[v] = log(1 - lambda) for a context seen in the text, else 0."""
        if not 0 < weight < 1:
            raise ValueError(f"lexicon bigram weight must be in (0, 1), got {weight}")

        context_total: Counter = Counter()
        for (v, _), count in bigrams.items():
            context_total[v] += count  # c(v): every continuation, words outside the lexicon too
        size = self.sink + 1
        entries, backoff = {}, torch.zeros(size, dtype=torch.float64)
        for (v, w), count in bigrams.items():
            v_node, w_node = word_end.get(v), word_end.get(w)
            if v_node is None or count <= 0:
                continue
            backoff[v_node] = math.log(1 - weight)  # a seen context, whether or not this word is in the lexicon
            if w_node is None or w_node == 0:
                continue
            p_word = end[w_node]
            entries[v_node * size + w_node] = math.log(weight * count / context_total[v] + (1 - weight) * p_word) \
                - math.log(p_word)
        entries = entries or {-1: 0.0}  # no pair of lexicon words: a key no lookup matches, so all back off
        keys = torch.tensor(sorted(entries), dtype=torch.long)
        self.bigram_keys = keys
        self.bigram_scores = torch.tensor([entries[k] for k in keys.tolist()], dtype=torch.float32)
        self.backoff = backoff.float()
        self.monotone = not bool((self.bigram_scores > 0).any())

    def context_score(self, previous: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
        """log p(w | v) - log p(w) for ending the word at `node` after the word `previous` (both (B,)); 0 where
        node ends no word or there are no bigrams."""
        if self.bigram_keys is None:
            return torch.zeros(node.shape, dtype=torch.float32, device=node.device)
        key = previous * (self.sink + 1) + node
        pos = torch.searchsorted(self.bigram_keys, key).clamp(max=len(self.bigram_keys) - 1)
        score = torch.where(self.bigram_keys[pos] == key, self.bigram_scores[pos], self.backoff[previous])
        return score.masked_fill(~self.is_word[node], 0.0)

    @classmethod
    def from_file(cls, path: str | Path, tokenizer, oov_log_prob: float = -30.0, bigram_path: str | Path | None = None,
                  bigram_weight: float = 0.0) -> LexiconLM:
        bigrams = read_bigrams(bigram_path) if bigram_path is not None and bigram_weight > 0 else None
        return cls(read_lexicon(path), tokenizer, oov_log_prob, bigrams, bigram_weight)

    def to(self, device: torch.device | str) -> LexiconLM:
        for name in ("transition", "log_mass", "eos_score", "space_score", "is_word", "bigram_keys",
                     "bigram_scores", "backoff"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> LexiconState:
        start = torch.zeros(batch_size, dtype=torch.long, device=device)
        return LexiconState(start, start.clone())

    def step(self, tokens: torch.Tensor, state: LexiconState) -> tuple[torch.Tensor, LexiconState]:
        """Feed one token per hypothesis: tokens (B,) -> (log-probabilities (B, V) of the next token, new
        state). Tokens other than characters, space and <eos> score 0."""
        node = self.transition[state.node, tokens].long()
        # a space makes the word it ended the context of the next; <sos> starts a sentence
        ended = torch.where(self.is_word[state.node], state.node, self.sink)
        previous = torch.where(tokens == self.space, ended, state.previous).masked_fill(tokens == self.sos_eos, 0)
        following = self.transition[node].long()  # (B, V)
        here = self.log_mass[node]
        logp = (self.log_mass[following] - here[:, None]).clamp(max=0.0).float()
        context = self.context_score(previous, node)
        logp[:, self.space] = self.space_score[node] + context
        logp[:, self.sos_eos] = self.eos_score[node] + context
        return logp, LexiconState(node, previous)

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


def count_bigrams(sentences: Iterable[str]) -> Counter:
    """(previous word, word) -> count over the sentences, SENTENCE_START before each first word."""
    counts: Counter = Counter()
    for sentence in sentences:
        words = sentence.split()
        counts.update(zip([SENTENCE_START, *words], words))
    return counts


def write_bigrams(counts: Mapping[tuple[str, str], int], path: str | Path) -> None:
    """``PREVIOUS<TAB>WORD<TAB>count`` lines, most frequent first, written atomically."""
    lines = [f"{v}\t{w}\t{c}\n" for (v, w), c in sorted(counts.items(), key=lambda kv: -kv[1]) if c > 0]
    write_text_atomic(path, "".join(lines))


def read_bigrams(path: str | Path) -> dict[tuple[str, str], int]:
    """The (previous, word) -> count map of a bigrams.tsv; a malformed line is reported with its number."""
    counts: dict[tuple[str, str], int] = {}
    for number, line in enumerate(read_lines(path), 1):
        parts = line.rstrip("\n").split("\t")
        try:
            previous, word, count = parts[0].strip(), parts[1].strip(), int(parts[2])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {number} is not PREVIOUS<TAB>WORD<TAB>count: {line.strip()[:60]!r}") \
                from None
        counts[previous, word] = counts.get((previous, word), 0) + count
    return counts


def write_lexicon(words: Mapping[str, float], path: str | Path) -> None:
    """``WORD<TAB>natural log-probability`` lines, most probable first, written atomically."""
    total = sum(words.values())
    lines = [f"{w}\t{math.log(p / total):.4f}\n" for w, p in sorted(words.items(), key=lambda kv: -kv[1]) if p > 0]
    write_text_atomic(path, "".join(lines))


def read_lexicon(path: str | Path) -> dict[str, float]:
    """The word -> probability map of a lexicon.tsv; a malformed line is reported with its number."""
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
