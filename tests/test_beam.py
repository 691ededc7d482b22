import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from asr.decoding.beam import BeamOptions, beam_search
from asr.decoding.ctc_prefix import CTCPrefixScorer
from asr.decoding.greedy import LoopGuard, ctc_greedy_decode, greedy_decode
from asr.decoding.search import Search
from asr.models.attention.base import AttentionState
from asr.models.las import build_model
from tests.test_models import ATTENTIONS, small_config

BLANK, EOS = 0, 1


def collapse(path):
    out, previous = [], None
    for s in path:
        if s != previous and s != BLANK:
            out.append(s)
        previous = s
    return out


def brute_force_prefix(log_probs, prefix):
    """log P(the CTC output starts with `prefix`), summing over every path of a (T, V) posterior."""
    t, v = log_probs.shape
    total = -math.inf
    for path in itertools.product(range(v), repeat=t):
        if collapse(path)[: len(prefix)] == prefix:
            total = float(torch.logaddexp(torch.tensor(total), log_probs[range(t), list(path)].sum()))
    return total


def score_prefixes(log_probs, lengths, prefixes):
    """Run the scorer along each prefix (same length), returning psi (N, V) for one more token."""
    n, _, v = log_probs.shape
    scorer = CTCPrefixScorer(log_probs, lengths, BLANK, EOS)
    r, _ = scorer.initial_state()
    last = torch.full((n,), EOS)
    rows, tokens = torch.arange(n).repeat_interleave(v), torch.arange(v).repeat(n)  # every token for every row
    for step in range(len(prefixes[0])):
        r_next, _ = scorer.extend(r, last, step, rows, tokens)
        token = torch.tensor([p[step] for p in prefixes])
        r, last = r_next[:, torch.arange(n) * v + token], token
    return scorer.extend(r, last, len(prefixes[0]), rows, tokens)[1].view(n, v)


def test_ctc_prefix_scores_equal_brute_force_sums_over_paths():
    torch.manual_seed(0)
    v, t = 4, 5  # blank, eos (never emitted by CTC), two letters
    log_probs = torch.randn(1, t, v, dtype=torch.float64).log_softmax(-1)
    log_probs[..., EOS] = -1e10
    log_probs = log_probs.log_softmax(-1)
    for prefix in ([], [2], [3, 3], [2, 3]):
        psi = score_prefixes(log_probs, torch.tensor([t]), [prefix])[0]
        for c in (2, 3):
            assert psi[c].item() == pytest.approx(brute_force_prefix(log_probs[0], prefix + [c]), abs=1e-5)


def test_ctc_prefix_eos_column_is_the_ctc_likelihood_with_padding():
    torch.manual_seed(1)
    v, t = 6, 12
    log_probs = torch.randn(3, t, v).log_softmax(-1)
    lengths = torch.tensor([12, 9, 7])
    prefixes = [[2, 2, 4], [5, 3, 3], [4, 2, 5]]
    psi = score_prefixes(log_probs, lengths, prefixes)
    targets = torch.tensor(prefixes)
    expected = -F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, torch.full((3,), 3), blank=BLANK,
                           reduction="none")
    assert torch.allclose(psi[:, EOS], expected, atol=1e-4)
    # a prefix is at least as likely as any of its extensions
    assert (psi[:, 2:] <= psi[:, EOS:EOS + 1].new_tensor(0.0)).all()


def test_ctc_scorer_reads_one_posterior_per_group_of_hypotheses():
    """K hypotheses of an utterance share its posterior (group=K): any candidate list scores as with copies."""
    torch.manual_seed(2)
    b, k, t, v = 2, 3, 10, 6
    log_probs = torch.randn(b, t, v).log_softmax(-1)
    lengths = torch.tensor([10, 7])
    shared = CTCPrefixScorer(log_probs, lengths, BLANK, EOS, group=k)
    copied = CTCPrefixScorer(log_probs.repeat_interleave(k, 0), lengths.repeat_interleave(k), BLANK, EOS)
    r_shared, _ = shared.initial_state()
    r_copied, _ = copied.initial_state()
    assert torch.equal(r_shared, r_copied)
    last = torch.tensor([2, 3, 2, 4, 4, 5])
    r = r_shared + torch.randn(t, b * k, 2)  # any state will do: both scorers must agree on it
    rows, tokens = torch.tensor([0, 0, 2, 3, 5, 5, 1]), torch.tensor([2, 4, 2, EOS, 5, 3, BLANK])
    for a, c in zip(shared.extend(r, last, 2, rows, tokens), copied.extend(r, last, 2, rows, tokens)):
        assert torch.equal(a, c)
    shared.select(torch.tensor([1]))
    copied.select(torch.arange(k, 2 * k))
    rows, tokens = rows[3:6] - 3, tokens[3:6]  # the candidates of utterance 1, now the only one
    assert torch.equal(shared.extend(r[:, 3:], last[3:], 2, rows, tokens)[1],
                       copied.extend(r[:, 3:], last[3:], 2, rows, tokens)[1])


def tiny_model(attention, seed=0, ctc_upsample=1, ctc_layers=0):
    """attention: a name in ATTENTIONS or an attention config."""
    config = small_config(ctc_upsample=ctc_upsample, ctc_layers=ctc_layers)
    config.attention = attention if isinstance(attention, dict) else ATTENTIONS[attention]
    torch.manual_seed(seed)
    model = build_model(config, vocab_size=9, feat_dim=20).eval()
    with torch.no_grad():  # a peaky output layer, so hypotheses end before the length limit now and then
        model.speller.output[-1].weight.mul_(8.0)
    return model


def teacher_forced_log_prob(model, memory, mem_lengths, tokens):
    """The speller's own log-probability of `tokens` then <eos> for one utterance (memory (1, T, D)), fed the
    reference tokens step by step."""
    state, total = model.speller.init_state(memory, mem_lengths), 0.0
    with torch.no_grad():
        for prev, token in zip([model.sos_eos, *tokens], [*tokens, model.sos_eos]):
            features, _, state = model.speller.step(torch.tensor([prev]), state)
            total += float(model.speller.output(features).log_softmax(-1)[0, token])
    return total


CHARS = ["<blank>", "<sos/eos>", "<unk>", " ", "E", "H", "I", "R", "S"]  # a character vocabulary for tiny_model
PIECES = ["<blank>", "<sos/eos>", "<unk>", "\u2581HER", "\u2581HIS", "\u2581", "E", "H", "S"]  # SentencePiece-like


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_beam_of_one_is_greedy_for_every_attention(attention):
    model = tiny_model(attention)
    feats, lengths = torch.randn(4, 60, 20), torch.tensor([60, 52, 40, 24])
    greedy, _ = greedy_decode(model, feats, lengths)
    beam = beam_search(model, feats, lengths, BeamOptions(beam_size=1))
    assert [h.tokens for h in beam] == greedy
    assert all(len(h.frames) == len(h.tokens) for h in beam)
    guard = LoopGuard(symbols=CHARS)
    guarded, _ = greedy_decode(model, feats, lengths, guard=guard)
    assert [h.tokens for h in beam_search(model, feats, lengths, BeamOptions(beam_size=1), guard=guard)] == guarded


class Scripted(torch.nn.Module):
    """A speller output layer giving every hypothesis the logits script[step] (steps, V), whatever it has
    spelt so far: the search alone decides what comes of them."""

    def __init__(self, script):
        super().__init__()
        self.script, self.step = script, 0

    def forward(self, features):
        self.step += 1
        return self.script[min(self.step - 1, len(self.script) - 1)].repeat(len(features), 1)


def scripted(script):
    """A tiny model whose speller's output follows `script` (steps, V)."""
    model = tiny_model("location")
    model.speller.output = Scripted(script)
    return model


def looping(symbols, cycle, eos_logit=-10.0, eos_from=None, steps=400):
    """A tiny model whose speller spells `cycle` (tokens) over and over: at each step the cycle's next token
    scores 5, every other token 0 and <eos> eos_logit (4 from step eos_from on)."""
    script = torch.zeros(steps, len(symbols))
    script[torch.arange(steps), torch.tensor(cycle).repeat(steps // len(cycle) + 1)[:steps]] = 5.0
    script[:, EOS] = eos_logit
    if eos_from is not None:
        script[eos_from:, EOS] = 4.0
    return scripted(script)


def words(symbols, tokens):
    text = "".join(symbols[t] for t in tokens).replace("\u2581", " ")
    return text.split()


def most_repeated(ws, n=4):
    grams = [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    return max((grams.count(g) for g in grams), default=0)


@pytest.mark.parametrize("symbols, text, expected", [
    (CHARS, "HER ", "HER HER"),
    (CHARS, "HIS HER ", "HIS HER HIS HER"),
    (PIECES, ["\u2581HER"], "HER HER"),
    (PIECES, ["\u2581HIS", "S", "\u2581HER"], "HISS HER HISS HER"),
])
def test_greedy_ends_a_loop_and_drops_the_repetition(symbols, text, expected):
    cycle = [symbols.index(c) for c in text]
    feats, lengths = torch.randn(2, 200, 20), torch.tensor([200, 160])
    model = looping(symbols, cycle)
    free, _ = greedy_decode(model, feats, lengths)
    assert all(len(t) == m for t, m in zip(free, model.encode(feats, lengths)[1].tolist()))  # up to the limit
    assert all(most_repeated(words(symbols, t)) >= 3 for t in free)
    guarded, _ = greedy_decode(looping(symbols, cycle), feats, lengths, guard=LoopGuard(symbols=symbols))
    assert [" ".join(words(symbols, t)) for t in guarded] == [expected, expected]
    assert all(symbols[t[-1]] != " " for t in guarded)  # nor the space before the dropped repetition
    beam = beam_search(looping(symbols, cycle), feats, lengths, BeamOptions(beam_size=1),
                       guard=LoopGuard(symbols=symbols))
    assert [h.tokens for h in beam] == guarded
    assert all(len(h.frames) == len(h.tokens) for h in beam)


@pytest.mark.parametrize("eos_from", [None, 60])  # the speller never ends, or ends after a long loop
def test_beam_prunes_hypotheses_that_repeat_an_ngram_a_third_time(eos_from):
    cycle = [CHARS.index(c) for c in "HER "]
    feats, lengths = torch.randn(2, 400, 20), torch.tensor([400, 320])
    options = BeamOptions(beam_size=4, length_norm=1.0)
    free = beam_search(looping(CHARS, cycle, eos_from=eos_from), feats, lengths, options)
    assert all(most_repeated(words(CHARS, h.tokens)) >= 3 for h in free)
    limits = looping(CHARS, cycle).encode(feats, lengths)[1].tolist()
    for repeats, n in ((2, 4), (1, 4), (3, 4), (2, 2)):
        guard = LoopGuard(max_ngram_repeats=repeats, repeat_ngram=n, symbols=CHARS)
        for h, limit in zip(beam_search(looping(CHARS, cycle, eos_from=eos_from), feats, lengths, options,
                                        guard=guard), limits):
            said = words(CHARS, h.tokens)
            if len(h.tokens) == limit:  # ended by the length limit, inside its last word: that one is not counted
                said = said[:-1]
            assert said and most_repeated(said, n) <= repeats


def test_guard_changes_nothing_without_loops():
    """A speller reading a sentence (with a 4-gram said twice, which is allowed), then <eos>: greedy and beam
    give it with and without the guard."""
    sentence = "HIS HER IS SHE HIS HER IS SHE SHE IS"
    torch.manual_seed(7)
    script = torch.randn(len(sentence) + 1, len(CHARS))
    for i, token in enumerate([CHARS.index(c) for c in sentence] + [EOS]):
        script[i, token] = 6.0
    feats, lengths = torch.randn(1, 400, 20), torch.tensor([400])
    guard = LoopGuard(symbols=CHARS)
    for search in (lambda m, g: greedy_decode(m, feats, lengths, guard=g)[0][0],
                   lambda m, g: beam_search(m, feats, lengths, BeamOptions(beam_size=4), guard=g)[0].tokens,
                   lambda m, g: beam_search(m, feats, lengths, BeamOptions(beam_size=4, length_norm=1.0),
                                            guard=g)[0].tokens):
        free = search(scripted(script), None)
        guarded = search(scripted(script), guard)
        assert "".join(CHARS[t] for t in free) == sentence
        assert guarded == free


def test_character_rate_cap_and_guard_options():
    cycle = [CHARS.index(c) for c in "HER "]
    feats, lengths = torch.randn(2, 200, 20), torch.tensor([200, 100])  # 2 s and 1 s
    capped = LoopGuard(max_ngram_repeats=0, max_chars_per_second=7.0)
    tokens, _ = greedy_decode(looping(CHARS, cycle), feats, lengths, guard=capped)
    assert [len(t) for t in tokens] == [14, 7]
    beam = beam_search(looping(CHARS, cycle), feats, lengths, BeamOptions(beam_size=3), guard=capped)
    assert [len(h.tokens) for h in beam] == [14, 7]
    search = Search.from_config({"method": "greedy", "max_ngram_repeats": 0, "max_chars_per_second": 7.0})
    assert [len(h.tokens) for h in search(looping(CHARS, cycle), feats, lengths)] == [14, 7]
    model = looping(CHARS, cycle)
    # the CTC best path cannot loop: it takes the options and ignores them
    ctc = Search.from_config({"method": "ctc_greedy", "max_ngram_repeats": 1, "repeat_ngram": 1,
                              "max_chars_per_second": 1.0})
    assert [h.tokens for h in ctc(model, feats, lengths, symbols=CHARS)] == ctc_greedy_decode(model, feats, lengths)[0]
    with pytest.raises(ValueError, match="3 tokenizer symbols for a model of 9"):
        greedy_decode(model, feats, lengths, guard=LoopGuard(symbols=CHARS[:3]))
    with pytest.raises(ValueError, match="repeat_ngram"):
        LoopGuard(repeat_ngram=0)


@pytest.mark.parametrize("attention", ["location", "mocha"])
def test_batched_beam_equals_one_utterance_at_a_time(attention):
    model = tiny_model(attention, seed=3)
    feats, lengths = torch.randn(3, 64, 20), torch.tensor([64, 48, 30])
    options = BeamOptions(beam_size=4, ctc_weight=0.3, length_norm=1.0, coverage_weight=0.1)
    batched = beam_search(model, feats, lengths, options)
    for i in range(3):
        alone = beam_search(model, feats[i:i + 1, : lengths[i]], lengths[i:i + 1], options)[0]
        assert alone.tokens == batched[i].tokens
        assert alone.score == pytest.approx(batched[i].score, abs=1e-3)


SHARING = {**{name: ATTENTIONS[name] for name in ("location", "multihead", "windowed")},
           "location-dot": {**ATTENTIONS["location"], "scorer": "dot"},
           "multihead-mlp": {**ATTENTIONS["multihead"], "scorer": "mlp"},
           **{scorer: {"_target_": "asr.models.attention.content.ContentAttention", "scorer": scorer,
                       "attention_dim": 16} for scorer in ("additive", "scaled_dot")}}


@pytest.mark.parametrize("name", list(SHARING))
def test_hypotheses_sharing_their_utterance_keys_and_values_search_like_copies(name, monkeypatch):
    model = tiny_model(SHARING[name], seed=4)
    attention = model.speller.attention
    feats, lengths = torch.randn(5, 64, 20), torch.tensor([64, 60, 48, 30, 20])
    options = BeamOptions(beam_size=4, ctc_weight=0.3, length_norm=1.0, coverage_weight=0.1)
    groups, compactions = [], []
    share_rows, select = AttentionState.share_rows, AttentionState.select
    monkeypatch.setattr(AttentionState, "share_rows", lambda self, *a: groups.append(a) or share_rows(self, *a))

    def counted_select(self, index, keep_memory=False, memory_extras=()):
        if not keep_memory:
            compactions.append((self.group, len(index)))
        return select(self, index, keep_memory, memory_extras)

    monkeypatch.setattr(AttentionState, "select", counted_select)
    assert attention.shares_memory
    shared = beam_search(model, feats, lengths, options)
    # the search did share, and dropped finished utterances (with their keys and values) on the way
    assert groups == [(4, ())] and compactions and all(g == 4 and n % 4 == 0 for g, n in compactions)
    owner = type(getattr(attention, "inner", attention))
    monkeypatch.setattr(owner, "shares_memory", False)
    copied = beam_search(model, feats, lengths, options)
    assert len(groups) == 1
    for a, b in zip(shared, copied):
        assert a.tokens == b.tokens and a.frames == b.frames
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_wider_beam_never_scores_worse_and_limits_hold():
    model = tiny_model("location", seed=5)
    feats, lengths = torch.randn(2, 48, 20), torch.tensor([48, 36])
    narrow = beam_search(model, feats, lengths, BeamOptions(beam_size=1))
    wide = beam_search(model, feats, lengths, BeamOptions(beam_size=6))
    for n, w in zip(narrow, wide):
        assert w.score >= n.score - 1e-4
    mem_lengths = model.encode(feats, lengths)[1]
    bounded = beam_search(model, feats, lengths, BeamOptions(beam_size=3, min_len_ratio=0.2, max_len_ratio=0.3))
    for h, m in zip(bounded, mem_lengths.tolist()):
        assert math.floor(0.2 * m) <= len(h.tokens) <= math.ceil(0.3 * m)
        assert BLANK not in h.tokens and EOS not in h.tokens


def test_ctc_weight_needs_a_ctc_head():
    torch.manual_seed(0)
    model = build_model(small_config(ctc_weight=0.0), vocab_size=9, feat_dim=20).eval()
    with pytest.raises(ValueError, match="CTC head"):
        beam_search(model, torch.randn(1, 40, 20), torch.tensor([40]), BeamOptions(ctc_weight=0.3))


def test_ctc_beam_runs_past_one_token_per_frame():
    # max_len_ratio > 1 allows more tokens than listener frames: such prefixes have no CTC probability
    model = tiny_model("location", seed=2)
    feats, lengths = torch.randn(2, 24, 20), torch.tensor([24, 16])
    hyps = beam_search(model, feats, lengths, BeamOptions(beam_size=3, ctc_weight=0.3, max_len_ratio=3.0,
                                                           min_len_ratio=1.5))
    mem_lengths = model.encode(feats, lengths)[1].tolist()
    assert all(len(h.tokens) >= int(1.5 * m) for h, m in zip(hyps, mem_lengths))
    assert all(h.score < -1e8 for h in hyps)  # the CTC weight's share of log 0


@pytest.mark.parametrize("candidates, upsample, layers", [(0, 1, 0), (1000, 1, 0), (0, 2, 0), (0, 2, 1)])
def test_joint_score_is_the_attention_plus_the_ctc_log_likelihood(candidates, upsample, layers):
    """Each utterance's final score is (1 - w) log p_att(y, <eos>) + w log p_ctc(y), recomputed independently:
    the CTC state a hypothesis carries is the one of its own candidate, through every step and compaction.
    candidates: 0 scores the 2K pre-beam with CTC, 1000 every candidate; layers: the CTC head's own BLSTMs."""
    model = tiny_model("location", seed=6, ctc_upsample=upsample, ctc_layers=layers)
    with torch.no_grad():  # mostly blank, as a trained CTC head: near-uniform posteriors favour the longest outputs
        model.ctc_head.out.bias.view(upsample, -1)[:, BLANK] += 2.0
    feats, lengths = torch.randn(3, 64, 20), torch.tensor([64, 50, 40])
    w = 0.4
    hyps = beam_search(model, feats, lengths, BeamOptions(beam_size=3, ctc_weight=w, ctc_candidates=candidates))
    with torch.no_grad():
        memory, mem_lengths = model.encode(feats, lengths)
        ctc_log_probs, ctc_lengths = model.ctc_log_probs(memory, mem_lengths)
    for i, hyp in enumerate(hyps):
        assert 0 < len(hyp.tokens) < int(mem_lengths[i])  # ended by <eos>
        att = teacher_forced_log_prob(model, memory[i:i + 1], mem_lengths[i:i + 1], hyp.tokens)
        ctc = -F.ctc_loss(ctc_log_probs[i, : ctc_lengths[i], None], torch.tensor([hyp.tokens]),
                          ctc_lengths[i:i + 1], torch.tensor([len(hyp.tokens)]), blank=BLANK, reduction="sum")
        assert hyp.score == pytest.approx((1 - w) * att + w * float(ctc), abs=1e-3)


@pytest.mark.parametrize("upsample, layers", [(1, 0), (2, 0), (2, 1)])
def test_ctc_greedy_is_each_utterance_best_path_collapsed(upsample, layers):
    """Batched CTC greedy decoding equals, per utterance alone, the argmax of every CTC frame with repeats
    merged and blanks dropped; padding frames add nothing, and each token's frame is where its run starts."""
    model = tiny_model("location", seed=4, ctc_upsample=upsample, ctc_layers=layers)
    feats, lengths = torch.randn(3, 64, 20), torch.tensor([64, 45, 30])
    tokens, frames = ctc_greedy_decode(model, feats, lengths)
    for i in range(3):
        with torch.no_grad():
            memory, mem_lengths = model.encode(feats[i:i + 1, : lengths[i]], lengths[i:i + 1])
            log_probs, _ = model.ctc_log_probs(memory, mem_lengths)
        path = log_probs[0].argmax(-1).tolist()
        runs = [(token, start) for start, token in enumerate(path) if start == 0 or path[start - 1] != token]
        expected = [(token, start // upsample) for token, start in runs if token != BLANK]
        assert expected, "an all-blank path tests nothing"
        assert list(zip(tokens[i], frames[i])) == expected
    search = Search(method="ctc_greedy")(model, feats, lengths)
    assert [h.tokens for h in search] == tokens and [h.frames for h in search] == frames
