"""Word lexicon LM: scores telescope to log p(word), out-of-lexicon words cost the OOV log-probability, step
scores never rise, batched state selection, file round trip, its use in beam search, and the bigram context."""

from __future__ import annotations

import math
import random

import pytest
import torch

from asr.data.tokenizer import CharTokenizer
from asr.decoding.beam import BeamOptions, beam_search
from asr.models.lexicon_lm import (
    SENTENCE_START,
    LexiconLM,
    build_lexicon,
    count_bigrams,
    read_bigrams,
    read_lexicon,
    write_bigrams,
    write_lexicon,
)
from tests.test_beam import teacher_forced_log_prob, tiny_model

TOKENIZER = CharTokenizer(" ABCDE")  # 9 ids: blank, <sos/eos>, <unk>, space, A-E (the tiny model's vocabulary)
WORDS = {"AB": 0.4, "ABE": 0.1, "CAD": 0.3, "E": 0.2}


def lexicon(oov: float = -20.0) -> LexiconLM:
    return LexiconLM(WORDS, TOKENIZER, oov)


def test_in_lexicon_sentences_score_the_sum_of_word_log_probabilities():
    lex = lexicon()
    for sentence in ["AB", "ABE CAD", "E E AB", "CAD ABE"]:
        expected = sum(math.log(WORDS[w]) for w in sentence.split())
        assert lex.sentence_log_prob(TOKENIZER.encode(sentence)) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("oov_word", ["A", "ABED", "CA", "BAD", "ABEE"])
def test_a_word_outside_the_lexicon_costs_the_oov_log_probability(oov_word):
    lex = lexicon(oov=-12.0)
    score = lex.sentence_log_prob(TOKENIZER.encode(f"CAD {oov_word} E"))
    assert score == pytest.approx(math.log(0.3) - 12.0 + math.log(0.2), abs=1e-5)


def test_unknown_characters_leave_the_lexicon_and_words_with_foreign_letters_are_dropped():
    lex = LexiconLM({**WORDS, "CAFÉ": 0.5}, TOKENIZER, -9.0)
    assert lex.words == len(WORDS)  # É is not a symbol of the tokenizer
    assert lex.sentence_log_prob([TOKENIZER.index["A"], TOKENIZER.unk]) == pytest.approx(-9.0, abs=1e-5)


def test_step_scores_never_rise_and_a_misspelling_is_charged_at_once():
    lex = lexicon(oov=-15.0)
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.choice(range(3, 9)) for _ in range(rng.randint(1, 12))]
        state = lex.init_state(1)
        for token in [TOKENIZER.sos_eos, *ids]:
            logp, state = lex.step(torch.tensor([token]), state)
            assert torch.all(logp <= 0) and torch.all(torch.isfinite(logp))
    # "CA" then "B" cannot become a word any more: the whole OOV charge comes with the B, not at the space
    state = lex.init_state(1)
    for token in TOKENIZER.encode(" CA"):
        logp, state = lex.step(torch.tensor([token]), state)
    assert float(logp[0, TOKENIZER.index["B"]]) == pytest.approx(-15.0 - math.log(0.3), abs=1e-5)
    assert float(logp[0, TOKENIZER.index["D"]]) == pytest.approx(0.0, abs=1e-6)


def test_batched_steps_and_select_equal_one_sentence_at_a_time():
    lex = lexicon()
    sentences = ["AB CAD", "EB", "CAD ABE", "AAAA"]
    ids = [TOKENIZER.encode(s) for s in sentences]
    width = max(map(len, ids))
    state = lex.init_state(len(ids))
    feed = [[TOKENIZER.sos_eos, *row, *[TOKENIZER.index[" "]] * (width - len(row))] for row in ids]
    for u in range(4):
        _, state = lex.step(torch.tensor([row[u] for row in feed]), state)
    index = torch.tensor([2, 0, 2, 3])
    picked = state.select(index)
    batched, _ = lex.step(torch.tensor([feed[i][4] for i in index]), picked)
    for row, i in enumerate(index.tolist()):
        alone = lex.init_state(1)
        for u in range(5):
            logp, alone = lex.step(torch.tensor([feed[i][u]]), alone)
        torch.testing.assert_close(batched[row], logp[0])


def test_file_round_trip_and_bad_lines(tmp_path):
    path = tmp_path / "lexicon.tsv"
    write_lexicon(WORDS, path)
    assert path.read_text().splitlines()[0].startswith("AB\t")  # most probable first
    back = read_lexicon(path)
    assert set(back) == set(WORDS)
    for word, p in WORDS.items():
        assert back[word] == pytest.approx(p, rel=1e-3)
    path.write_text("AB\t-1.0\nCAD minus two\n")
    with pytest.raises(ValueError, match=r"lexicon.tsv: line 2 is not WORD<TAB>log-probability"):
        read_lexicon(path)


def test_build_lexicon_mixes_the_word_list_with_the_training_text():
    words = build_lexicon(["ZORBLAX THE ZORBLAX", "THE END"], size=1000, text_weight=0.5)
    assert "ZORBLAX" in words and "THE" in words and "PEOPLE" in words
    assert len(words) <= 1000 + 3
    assert sum(words.values()) == pytest.approx(1.0, rel=1e-6)
    # half the mass is the text's: ZORBLAX is 2 of its 5 words and in no word list
    assert words["ZORBLAX"] == pytest.approx(0.5 * 2 / 5, rel=1e-6)


def test_beam_with_a_heavy_lexicon_spells_only_lexicon_words():
    model = tiny_model("location", seed=7)
    feats, lengths = torch.randn(4, 64, 20), torch.tensor([64, 60, 48, 40])
    lex = lexicon(oov=-20.0)
    # a minimum length, or the empty sentence (no word to pay for) would win
    free = beam_search(model, feats, lengths, BeamOptions(beam_size=4, min_len_ratio=0.2))
    steered = beam_search(model, feats, lengths, BeamOptions(beam_size=4, min_len_ratio=0.2, lexicon_weight=50.0),
                          lexicon=lex)
    assert all(TOKENIZER.decode(h.tokens).split() for h in steered)
    assert [h.tokens for h in free] != [h.tokens for h in steered]
    for hyp in steered:
        words = TOKENIZER.decode(hyp.tokens).split()
        complete = words if len(hyp.tokens) < 64 else words[:-1]  # a length-capped last word may be cut short
        assert all(w in WORDS for w in complete), words
    with pytest.raises(ValueError, match="needs a lexicon"):
        beam_search(model, feats, lengths, BeamOptions(lexicon_weight=1.0))


def test_lexicon_score_is_part_of_the_hypothesis_score():
    model = tiny_model("location", seed=7)
    feats, lengths = torch.randn(1, 64, 20), torch.tensor([64])
    lex = lexicon(oov=-6.0)
    options = BeamOptions(beam_size=3, lexicon_weight=0.7)
    hyp = beam_search(model, feats, lengths, options, lexicon=lex)[0]
    memory, mem_lengths = model.encode(feats, lengths)
    assert len(hyp.tokens) < int(mem_lengths[0])  # ended by <eos>, not by the length limit
    # the attention model's own log-probability of the same tokens, teacher-forced
    am = teacher_forced_log_prob(model, memory, mem_lengths, hyp.tokens)
    assert hyp.score == pytest.approx(am + 0.7 * lex.sentence_log_prob(hyp.tokens), abs=1e-3)


BIGRAM_TEXT = ["AB CAD", "AB CAD E", "CAD AB", "E ABX AB"]  # ABX is no word of the lexicon


def bigram_log_prob(sentence: str, weight: float) -> float:
    """The interpolated bigram log-probability of a sentence of lexicon words, written out from the counts."""
    counts = count_bigrams(BIGRAM_TEXT)
    total = sum(WORDS.values())
    score, previous = 0.0, SENTENCE_START
    for word in sentence.split():
        context = sum(c for (v, _), c in counts.items() if v == previous)
        p_word = WORDS[word] / total
        p = weight * counts[previous, word] / context + (1 - weight) * p_word if context else p_word
        score, previous = score + math.log(p), word
    return score


@pytest.mark.parametrize("sentence", ["AB CAD", "AB CAD E", "CAD AB", "E AB", "ABE E", "CAD CAD AB"])
def test_with_bigrams_a_sentence_scores_its_interpolated_bigram_log_probability(sentence):
    lex = LexiconLM(WORDS, TOKENIZER, -20.0, count_bigrams(BIGRAM_TEXT), bigram_weight=0.6)
    assert not lex.monotone  # a seen pair scores more than its word alone
    assert lex.sentence_log_prob(TOKENIZER.encode(sentence)) == pytest.approx(bigram_log_prob(sentence, 0.6),
                                                                               abs=1e-4)


def test_a_word_after_an_unknown_word_has_no_context():
    lex = LexiconLM(WORDS, TOKENIZER, -20.0, count_bigrams(BIGRAM_TEXT), bigram_weight=0.6)
    # after ABX (out of the lexicon) AB is scored by its unigram, whatever followed ABX in the text
    expected = bigram_log_prob("E", 0.6) - 20.0 + math.log(WORDS["AB"])
    assert lex.sentence_log_prob(TOKENIZER.encode("E ABX AB")) == pytest.approx(expected, abs=1e-4)
    # a text with no pair of lexicon words: every seen context backs off, nothing else changes
    odd = LexiconLM(WORDS, TOKENIZER, -20.0, count_bigrams(["ABX AB", "XY ABX"]), bigram_weight=0.6)
    # AB after <s> (a seen context): (1 - 0.6) p(AB); E after AB (never a context): p(E)
    assert odd.sentence_log_prob(TOKENIZER.encode("AB E")) == pytest.approx(math.log(0.4 * 0.4) + math.log(0.2),
                                                                           abs=1e-4)
    without = LexiconLM(WORDS, TOKENIZER, -20.0)
    assert without.monotone
    assert without.sentence_log_prob(TOKENIZER.encode("AB CAD")) == pytest.approx(math.log(0.4 * 0.3), abs=1e-5)


def test_bigram_state_follows_selection_and_the_beam_score_includes_the_context():
    lex = LexiconLM(WORDS, TOKENIZER, -20.0, count_bigrams(BIGRAM_TEXT), bigram_weight=0.6)
    feed = [TOKENIZER.sos_eos, *TOKENIZER.encode("CAD AB")]
    state = lex.init_state(2)
    for token in feed[:4]:  # <sos> C A D: the same for both rows
        _, state = lex.step(torch.tensor([token, token]), state)
    other = lex.init_state(2)
    for token in [TOKENIZER.sos_eos, *TOKENIZER.encode("AB")]:
        _, other = lex.step(torch.tensor([token, token]), other)
    mixed = type(state)(torch.cat([state.node[:1], other.node[:1]]), torch.cat([state.previous[:1],
                                                                                other.previous[:1]]))
    picked = mixed.select(torch.tensor([1, 0]))
    assert picked.node.tolist() == [other.node[0].item(), state.node[0].item()]
    assert picked.previous.tolist() == [other.previous[0].item(), state.previous[0].item()]
    model = tiny_model("location", seed=7)
    feats, lengths = torch.randn(1, 64, 20), torch.tensor([64])
    hyp = beam_search(model, feats, lengths, BeamOptions(beam_size=3, lexicon_weight=0.7), lexicon=lex)[0]
    plain = beam_search(model, feats, lengths, BeamOptions(beam_size=3), lexicon=None)
    assert plain  # the search runs without the lexicon too
    memory, mem_lengths = model.encode(feats, lengths)
    am = teacher_forced_log_prob(model, memory, mem_lengths, hyp.tokens)
    assert hyp.score == pytest.approx(am + 0.7 * lex.sentence_log_prob(hyp.tokens), abs=1e-3)


def test_bigram_file_round_trip_and_bad_lines(tmp_path):
    path = tmp_path / "bigrams.tsv"
    counts = count_bigrams(BIGRAM_TEXT)
    assert counts[SENTENCE_START, "AB"] == 2 and counts["AB", "CAD"] == 2 and counts["ABX", "AB"] == 1
    write_bigrams(counts, path)
    assert read_bigrams(path) == dict(counts)
    path.write_text("AB\tCAD\t2\nAB CAD 3\n")
    with pytest.raises(ValueError, match=r"bigrams.tsv: line 2 is not PREVIOUS<TAB>WORD<TAB>count"):
        read_bigrams(path)
    with pytest.raises(ValueError, match=r"bigram weight must be in \(0, 1\)"):
        LexiconLM(WORDS, TOKENIZER, -20.0, counts, bigram_weight=1.0)
