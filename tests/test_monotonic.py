"""Monotonic attention and MoChA against their definitions."""

import math

import pytest
import torch

from asr.models.attention.base import padding_mask
from asr.models.attention.mocha import MoChA, expected_chunk_attention, hard_chunk_attention
from asr.models.attention.monotonic import MonotonicAttention, expected_alignment, scan_first_selected


def reference_alignment(energy, previous, lengths):
    """The per-frame recurrence of Raffel et al. (2017), eq. 9, written out with loops."""
    b, t = energy.shape
    alpha = torch.zeros_like(previous)
    for n in range(b):
        p = [1 / (1 + math.exp(-e)) if j < lengths[n] else 0.0 for j, e in enumerate(energy[n].tolist())]
        for j in range(t):
            total = 0.0
            for k in range(j + 1):
                stay = 1.0
                for m in range(k, j):
                    stay *= 1 - p[m]
                total += previous[n, k].item() * stay
            alpha[n, j] = p[j] * total
    return alpha


def reference_chunk(alpha, u, lengths, w):
    b, t = alpha.shape
    beta = torch.zeros_like(alpha)
    for n in range(b):
        exp_u = [math.exp(x) if j < lengths[n] else 0.0 for j, x in enumerate(u[n].tolist())]
        for k in range(t):
            for j in range(k, min(k + w, t)):
                denominator = sum(exp_u[max(0, j - w + 1): j + 1])
                if denominator > 0:
                    beta[n, k] += alpha[n, j] * exp_u[k] / denominator
    return beta


def random_previous(b, t, lengths, generator):
    prev = torch.rand(b, t, generator=generator, dtype=torch.float64) * padding_mask(lengths, t)
    return prev / prev.sum(-1, keepdim=True) * 0.9  # a step may leave mass unselected


@pytest.mark.parametrize("scale", [1.0, 5.0, 50.0])
def test_expected_alignment_equals_recurrence(scale):
    g = torch.Generator().manual_seed(int(scale))
    lengths = torch.tensor([12, 9, 4])
    energy = torch.randn(3, 12, generator=g, dtype=torch.float64) * scale
    previous = random_previous(3, 12, lengths, g)
    mask = padding_mask(lengths, 12)
    alpha = expected_alignment(energy, previous, mask)
    assert torch.isfinite(alpha).all()
    assert torch.allclose(alpha, reference_alignment(energy, previous, lengths), atol=1e-6)
    assert (alpha[~mask] == 0).all()
    assert (alpha.sum(-1) <= previous.sum(-1) + 1e-9).all()  # mass never grows: at most 1 per step


def test_extreme_energies_stay_finite_with_gradients():
    energy = torch.tensor([[50.0, -50.0, 50.0, -50.0] * 8, [-50.0] * 32], dtype=torch.float64, requires_grad=True)
    mask = padding_mask(torch.tensor([32, 20]), 32)
    previous = torch.zeros(2, 32, dtype=torch.float64)
    previous[:, 0] = 1
    alpha = expected_alignment(energy, previous, mask)
    alpha.sum().backward()
    assert torch.isfinite(alpha).all() and torch.isfinite(energy.grad).all()
    assert alpha[0, 0].item() == pytest.approx(1.0)  # p = 1 at the start: it stays there


def test_chained_float32_steps_keep_gradients_finite():
    """Alignments that underflow to exactly 0 feed the next step: its backward must not divide 0 by 0."""
    torch.manual_seed(0)
    energy = (torch.randn(2, 40) * 30).requires_grad_()
    mask = padding_mask(torch.tensor([40, 25]), 40)
    alpha = torch.zeros(2, 40)
    alpha[:, 0] = 1
    for _ in range(6):
        alpha = expected_alignment(energy, alpha, mask)
    assert (alpha[mask] == 0).any()  # some real frames did underflow
    assert ((alpha == 0) | (alpha >= 1e-30)).all()  # to exactly 0: no subnormal numbers for later products
    alpha.sum().backward()
    assert torch.isfinite(energy.grad).all()


def test_chunk_attention_equals_loop_over_chunks():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([10, 6])
    mask = padding_mask(lengths, 10)
    alpha = random_previous(2, 10, lengths, g)
    u = torch.randn(2, 10, generator=g, dtype=torch.float64) * 3
    for w in (1, 3, 4):
        beta = expected_chunk_attention(alpha, u, mask, w)
        assert torch.allclose(beta, reference_chunk(alpha, u, lengths, w), atol=1e-6)
        assert (beta[~mask] == 0).all()
        assert torch.allclose(beta.sum(-1), alpha.sum(-1), atol=1e-9)  # each endpoint's mass is spread, not lost


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    mask = padding_mask(torch.tensor([6, 4]), 6)
    previous = random_previous(2, 6, torch.tensor([6, 4]), g).requires_grad_()
    energy = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    u = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, p: expected_alignment(e, p, mask), (energy, previous))
    assert torch.autograd.gradcheck(lambda a, c: expected_chunk_attention(a, c, mask, 3), (previous, u))
    # per-head (B, heads, T) inputs with the (B, 1, T) mask the attention broadcasts
    second = random_previous(2, 6, torch.tensor([6, 4]), g)
    heads = torch.stack([previous.detach(), second], 1).requires_grad_()
    energy2 = torch.randn(2, 2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, p: expected_alignment(e, p, mask[:, None]), (energy2, heads))
    assert torch.autograd.gradcheck(lambda a, c: expected_chunk_attention(a, c, mask[:, None], 2), (heads, energy2))


@pytest.mark.parametrize("att", [
    MonotonicAttention(3, 5, attention_dim=4, noise=0.0, init_bias=0.0, scorer="mlp"),
    MoChA(3, 5, attention_dim=4, chunk=2, noise=0.0, init_bias=0.0, heads=2)], ids=["monotonic-mlp", "mocha-2"])
def test_gradcheck_through_the_modules(att):
    """Energies, expected alignment and chunk attention, two steps chained, through queries and frames."""
    torch.manual_seed(4)
    att = att.double().train()
    lengths = torch.tensor([7, 5])

    def two_steps(memory, query):
        state = att.init_state(memory, lengths)
        first, _, state = att(query, state)
        second, _, _ = att(query.flip(0), state)
        return first, second
    memory = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(two_steps, (memory, query))


def test_scan_equals_brute_force():
    """Two scans per utterance (heads), each from its own start; energies looked up by frame index."""
    g = torch.Generator().manual_seed(2)
    energy = torch.randn(4, 2, 30, generator=g)
    lengths = torch.tensor([30, 17, 5, 30])
    start = torch.tensor([[0, 9], [3, 3], [2, 0], [-1, 29]])
    p = torch.sigmoid(energy)
    for window in (1, 4, 64):
        got = scan_first_selected(lambda frames: energy.gather(2, frames), start, lengths[:, None], window)
        for n in range(4):
            for h in range(2):
                hits = [j for j in range(start[n, h], lengths[n]) if start[n, h] >= 0 and p[n, h, j] >= 0.5]
                assert got[n, h].item() == (hits[0] if hits else -1)


def binary_energy(att, patterns):
    """Make head h's monotonic energy +-50 by patterns[h][step] (the query's first element is the step number);
    MoChA's chunk energies are a fixed random function of the frame."""
    patterns = torch.tensor(patterns, dtype=torch.float64) * 50  # (heads, steps, T)
    chunk_u = torch.randn(patterns.shape[-1], generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def energy(query, keys):  # (B, Q), (B, T', 1) -> (B, groups, T')
        frame = keys[..., 0].round().long()  # keys carry their own frame index
        step = query[:, 0].round().long()
        monotonic = [patterns[h, step].gather(1, frame) for h in range(len(patterns))]
        return torch.stack(monotonic + [chunk_u[frame]] * (att.energy.groups - len(monotonic)), 1)
    att.energy.forward = energy
    att.energy.keys = lambda memory: torch.arange(memory.shape[1], dtype=torch.float64)[None, :, None].expand(
        memory.shape[0], -1, 1)


PATTERNS = [[[-1, -1, 1, -1, 1, 1, -1, -1, 1, -1],   # step 0 selects frame 2
             [-1, -1, -1, -1, 1, 1, -1, -1, 1, -1],  # step 1: 4
             [-1, -1, 1, -1, -1, 1, -1, -1, 1, -1],  # step 2: 5 (2 is behind)
             [-1] * 8 + [1, -1],                      # step 3: 8
             [-1] * 10],                              # step 4: none
            [[1] + [-1] * 9,                          # a second head: 0, 0, 3, 9, 9
             [1, 1, -1, -1, -1, -1, -1, -1, -1, 1],
             [-1, -1, -1, 1, -1, -1, -1, -1, -1, 1],
             [-1] * 9 + [1],
             [-1] * 9 + [1]]]


@pytest.mark.parametrize("cls, heads", [(MonotonicAttention, 1), (MoChA, 1), (MonotonicAttention, 2), (MoChA, 2)])
def test_binary_probabilities_make_training_equal_decoding(cls, heads):
    att = cls(query_dim=4, memory_dim=6, noise=0.0, heads=heads).double()
    binary_energy(att, PATTERNS[:heads])
    memory, lengths = torch.randn(1, 10, 6, dtype=torch.float64), torch.tensor([10])
    queries = [torch.cat([torch.tensor([[float(s)]]), torch.randn(1, 3)], 1).double() for s in range(5)]
    states = {}
    for mode in ("train", "eval"):
        getattr(att, mode)()
        state, seq = att.init_state(memory, lengths), []
        for query in queries:
            _, weights, state = att(query, state)
            seq.append(weights)
        states[mode] = torch.cat(seq).detach()
    assert torch.allclose(states["train"], states["eval"], atol=1e-6)
    if cls is MonotonicAttention:  # one-hot rows (heads = 1), the mean of two (heads = 2), zero where a head is done
        expected = torch.zeros(5, 10, dtype=torch.float64)
        for step, frames in enumerate(zip([2, 4, 5, 8, None], [0, 0, 3, 9, 9][: 5 if heads == 2 else 0] or [None] * 5)):
            for frame in frames:
                if frame is not None:
                    expected[step, frame] += 1 / heads
        assert torch.equal(states["eval"], expected)


def head_positions(state):
    """Each head's attended frame (B, heads) from its hard alignment, -1 where it selected nothing."""
    alpha = state.extra["alpha"]
    return torch.where(alpha.sum(-1) > 0, alpha.argmax(-1), -1)


@pytest.mark.parametrize("cls, heads, scorer", [(MonotonicAttention, 1, "dot"), (MoChA, 1, "dot"),
                                                (MonotonicAttention, 1, "mlp"), (MoChA, 3, "mlp"), (MoChA, 3, "dot")])
@torch.no_grad()
def test_decoding_never_moves_backwards_and_masks_padding(cls, heads, scorer):
    torch.manual_seed(3)
    att = cls(query_dim=4, memory_dim=6, attention_dim=12, init_bias=0.0, heads=heads, scorer=scorer).eval()
    # energies of both signs that depend on the frame more than on the query: the heads move, stay and stop
    keys_scale, gain, query_scale = (4.0, 3.0, 0.3) if scorer == "dot" else (1.0, 6.0, 1.0)
    att.energy.key_proj.weight.mul_(keys_scale)
    att.energy.gain.fill_(gain)
    memory, lengths = torch.randn(3, 20, 6), torch.tensor([20, 13, 7])
    mask = padding_mask(lengths, 20)
    state = att.init_state(memory, lengths)
    last = torch.zeros(3, heads, dtype=torch.long)
    width = att.chunk if cls is MoChA else 1
    seen = set()
    for _ in range(12):
        context, weights, state = att(torch.randn(3, 4) * query_scale, state)
        heads_at = head_positions(state)
        seen |= set(heads_at.flatten().tolist())
        assert ((heads_at >= last) | (heads_at == -1)).all()  # per head: forward, or finished
        assert ((last >= 0) | (heads_at == -1)).all()  # a finished head stays finished
        position = state.extra["position"]  # the summary a streaming decoder reads
        assert torch.equal(position, torch.where((heads_at < 0).any(-1), -1, heads_at.max(-1).values))
        assert (weights[~mask] == 0).all()
        for n in range(3):
            inside = torch.zeros(20, dtype=torch.bool)  # the chunks ending at each head's frame
            for frame in heads_at[n].tolist():
                if frame >= 0:
                    inside[max(0, frame - width + 1): frame + 1] = True
            assert (weights[n, ~inside] == 0).all()
            selected = (heads_at[n] >= 0).sum().item()
            assert weights[n].sum().item() == pytest.approx(selected / heads)  # the heads' mean
            if selected == 0:
                assert context[n].abs().sum() == 0
        assert torch.allclose(context, torch.einsum("bt,btd->bd", weights, memory), atol=1e-6)
        last = heads_at
    assert len(seen - {-1, 0}) >= 3  # the heads did move


@pytest.mark.parametrize("cls, heads", [(MonotonicAttention, 1), (MoChA, 1), (MonotonicAttention, 2), (MoChA, 2)])
def test_training_weights_are_zero_on_padding(cls, heads):
    att = cls(query_dim=4, memory_dim=6, heads=heads, init_bias=0.0).train()
    memory, lengths = torch.randn(2, 9, 6), torch.tensor([9, 4])
    state = att.init_state(memory, lengths)
    for _ in range(3):
        _, weights, state = att(torch.randn(2, 4), state)
        assert (weights[1, 4:] == 0).all() and (state.extra["alpha"][1, :, 4:] == 0).all()
        assert (weights.sum(-1) <= 1 + 1e-5).all() and (weights[1, :4] > 0).any()


def single_head(multi, h: int):
    """A one-head attention with head h's energy parameters (monotonic group h, and chunk group heads + h)."""
    n = multi.heads
    a = multi.energy.key_proj.out_features // multi.energy.groups
    one = type(multi)(multi.query_dim, multi.memory_dim, attention_dim=a, noise=0.0, scorer=multi.energy.scorer,
                      **({"chunk": multi.chunk} if isinstance(multi, MoChA) else {})).double()
    groups = [h, n + h] if isinstance(multi, MoChA) else [h]
    rows = torch.cat([torch.arange(g * a, (g + 1) * a) for g in groups])
    src, dst = multi.energy, one.energy
    with torch.no_grad():
        dst.query_proj.weight.copy_(src.query_proj.weight[rows])
        dst.key_proj.weight.copy_(src.key_proj.weight[rows])
        dst.key_proj.bias.copy_(src.key_proj.bias[rows])
        dst.gain.copy_(src.gain[groups])
        dst.bias.copy_(src.bias[groups])
        if src.scorer == "mlp":
            dst.v.copy_(src.v[groups])
    return one


@pytest.mark.parametrize("cls, scorer", [(MoChA, "dot"), (MoChA, "mlp"), (MonotonicAttention, "dot")])
@pytest.mark.parametrize("training", [True, False])
def test_each_head_equals_the_single_head_definition(cls, scorer, training):
    """A multi-head step is the mean of single-head attentions made of each head's own parameters."""
    torch.manual_seed(6)
    multi = cls(query_dim=5, memory_dim=6, attention_dim=12, heads=3, noise=0.0, init_bias=0.0,
                scorer=scorer).double().train(training)
    singles = [single_head(multi, h).train(training) for h in range(3)]
    memory, lengths = torch.randn(2, 16, 6, dtype=torch.float64), torch.tensor([16, 11])
    state = multi.init_state(memory, lengths)
    states = [one.init_state(memory, lengths) for one in singles]
    for _ in range(5):
        query = torch.randn(2, 5, dtype=torch.float64) * 3
        context, weights, state = multi(query, state)
        steps = [one(query, s) for one, s in zip(singles, states)]
        states = [s for _, _, s in steps]
        for h, s in enumerate(states):
            assert torch.allclose(state.extra["alpha"][:, h], s.extra["alpha"][:, 0], atol=1e-12)
        assert torch.allclose(weights, torch.stack([w for _, w, _ in steps]).mean(0), atol=1e-12)
        assert torch.allclose(context, torch.stack([c for c, _, _ in steps]).mean(0), atol=1e-12)


def test_bad_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        MoChA(query_dim=4, memory_dim=6, attention_dim=8, heads=3)


def test_hard_chunk_is_a_softmax_over_the_chunk():
    u = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    w = hard_chunk_attention(torch.tensor([3]), u, chunk=2)
    assert torch.allclose(w, torch.tensor([[0, 0, math.exp(2), math.exp(3), 0]]) / (math.exp(2) + math.exp(3)))


@pytest.mark.parametrize("scale", [10.0, 30.0, 100.0])
def test_chunk_attention_is_exact_at_any_energy_scale(scale):
    """Energies of std 30 put some chunks ~70 nats below the row's best: each chunk's own normalizer keeps
    their mass (fp32 against the float64 loop of the definition), and gradients stay finite."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([40, 25])
    mask = padding_mask(lengths, 40)
    alpha = random_previous(2, 40, lengths, g)
    u = torch.randn(2, 40, generator=g, dtype=torch.float64) * scale  # a shift by the row maximum errs by 0.08
    reference = reference_chunk(alpha, u, lengths, 4)
    energy = u.float().requires_grad_()
    beta = expected_chunk_attention(alpha.float(), energy, mask, 4)
    assert torch.allclose(beta.double(), reference, atol=1e-6, rtol=1e-5)
    assert torch.allclose(beta.sum(-1).double(), alpha.sum(-1), atol=1e-6)
    beta.pow(2).sum().backward()
    assert torch.isfinite(energy.grad).all()
