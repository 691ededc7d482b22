import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from asr.decoding.beam import BeamOptions, beam_search
from asr.decoding.ctc_prefix import CTCPrefixScorer
from asr.decoding.greedy import ctc_greedy_decode, greedy_decode
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


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_beam_of_one_is_greedy_for_every_attention(attention):
    model = tiny_model(attention)
    feats, lengths = torch.randn(4, 60, 20), torch.tensor([60, 52, 40, 24])
    greedy, _ = greedy_decode(model, feats, lengths)
    beam = beam_search(model, feats, lengths, BeamOptions(beam_size=1))
    assert [h.tokens for h in beam] == greedy
    assert all(len(h.frames) == len(h.tokens) for h in beam)


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
