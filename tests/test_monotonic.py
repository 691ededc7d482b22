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


def test_scan_equals_brute_force():
    g = torch.Generator().manual_seed(2)
    keys = torch.randn(4, 30, 1, generator=g)
    lengths = torch.tensor([30, 17, 5, 30])
    start = torch.tensor([0, 3, 2, -1])
    p = torch.sigmoid(keys.squeeze(-1))
    frames = torch.arange(30)
    for window in (1, 4, 64):
        got = scan_first_selected(lambda k: k.squeeze(-1), keys, start, lengths, window)
        for n in range(4):
            hits = [j for j in frames.tolist() if start[n] >= 0 and j >= start[n] and j < lengths[n] and p[n, j] >= 0.5]
            assert got[n].item() == (hits[0] if hits else -1)


def binary_energy(att, patterns):
    """Make the monotonic energy +-50 by a pattern per step: the query's first element is the step number."""
    patterns = torch.tensor(patterns, dtype=torch.float64) * 50

    def energy(query, keys):
        frame = keys[..., 0].round().long()  # keys carry their own frame index
        return patterns[query[:, 0].round().long()].gather(1, frame)
    att.energy.forward = energy
    att.energy.keys = lambda memory: torch.arange(memory.shape[1], dtype=torch.float64)[None, :, None].expand(
        memory.shape[0], -1, 1)


@pytest.mark.parametrize("cls", [MonotonicAttention, MoChA])
def test_binary_probabilities_make_training_equal_decoding(cls):
    att = cls(query_dim=4, memory_dim=6, noise=0.0).double()
    off = [-1] * 10
    binary_energy(att, [[-1, -1, 1, -1, 1, 1, -1, -1, 1, -1],   # step 0 selects frame 2
                        [-1, -1, -1, -1, 1, 1, -1, -1, 1, -1],  # step 1: 4
                        [-1, -1, 1, -1, -1, 1, -1, -1, 1, -1],  # step 2: 5 (2 is behind)
                        [-1] * 8 + [1, -1],                      # step 3: 8
                        off])                                    # step 4: none
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
    if cls is MonotonicAttention:
        assert states["eval"].argmax(-1).tolist()[:4] == [2, 4, 5, 8] and states["eval"][4].sum() == 0


@pytest.mark.parametrize("cls", [MonotonicAttention, MoChA])
@torch.no_grad()
def test_decoding_never_moves_backwards_and_masks_padding(cls):
    torch.manual_seed(3)
    att = cls(query_dim=4, memory_dim=6, init_bias=0.0).eval()
    memory, lengths = torch.randn(3, 20, 6), torch.tensor([20, 13, 7])
    mask = padding_mask(lengths, 20)
    state = att.init_state(memory, lengths)
    last = torch.zeros(3, dtype=torch.long)
    for _ in range(12):
        context, weights, state = att(torch.randn(3, 4), state)
        position = state.extra["position"]
        assert ((position >= last) | (position == -1)).all()
        assert (weights[~mask] == 0).all()
        for n in range(3):
            if position[n] >= 0:
                inside = torch.zeros(20, dtype=torch.bool)
                width = att.chunk if cls is MoChA else 1
                inside[max(0, position[n] - width + 1): position[n] + 1] = True
                assert (weights[n, ~inside] == 0).all() and weights[n].sum().item() == pytest.approx(1.0)
            else:
                assert weights[n].sum() == 0 and context[n].abs().sum() == 0
        last = torch.where(position >= 0, position, last)


@pytest.mark.parametrize("cls", [MonotonicAttention, MoChA])
def test_training_weights_are_zero_on_padding(cls):
    att = cls(query_dim=4, memory_dim=6).train()
    memory, lengths = torch.randn(2, 9, 6), torch.tensor([9, 4])
    state = att.init_state(memory, lengths)
    for _ in range(3):
        _, weights, state = att(torch.randn(2, 4), state)
        assert (weights[:, 4:][1] == 0).all() and (weights.sum(-1) <= 1 + 1e-5).all()


def test_hard_chunk_is_a_softmax_over_the_chunk():
    u = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    w = hard_chunk_attention(torch.tensor([3]), u, chunk=2)
    assert torch.allclose(w, torch.tensor([[0, 0, math.exp(2), math.exp(3), 0]]) / (math.exp(2) + math.exp(3)))
