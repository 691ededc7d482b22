from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from asr.decoding.greedy import greedy_decode
from asr.models.attention.base import padding_mask
from asr.models.attention.location import LocationAwareAttention
from asr.models.las import build_model
from asr.models.listener import ConvBLSTMListener, PyramidalBLSTMListener, packed_lstm, run_lstm
from asr.models.speller import Speller

ATTENTIONS = {
    "location": {"_target_": "asr.models.attention.location.LocationAwareAttention", "attention_dim": 16,
                 "conv_channels": 4, "conv_kernel": 5},
    "monotonic": {"_target_": "asr.models.attention.monotonic.MonotonicAttention", "attention_dim": 16},
    "mocha": {"_target_": "asr.models.attention.mocha.MoChA", "attention_dim": 16, "chunk": 3},
    "mocha-heads": {"_target_": "asr.models.attention.mocha.MoChA", "attention_dim": 16, "chunk": 3, "heads": 2,
                    "value_proj": True},
    "multihead": {"_target_": "asr.models.attention.multihead.MultiHeadLocationAttention", "heads": 2,
                  "attention_dim": 16, "conv_kernel": 5},
    "windowed": {"_target_": "asr.models.attention.windowed.WindowedAttention", "_recursive_": False,
                 "before": 3, "after": 5, "in_training": True,
                 "inner": {"_target_": "asr.models.attention.location.LocationAwareAttention", "attention_dim": 16,
                           "conv_kernel": 5}},
}


def small_config(listener="conv", ctc_weight=0.3, attention="location", attention_first=False, ctc_upsample=1,
                 ctc_layers=0):
    listeners = {
        "conv": {"_target_": "asr.models.listener.ConvBLSTMListener", "channels": 4, "hidden": 16, "layers": 2,
                 "pyramid": [], "dropout": 0.0},
        "pblstm": {"_target_": "asr.models.listener.PyramidalBLSTMListener", "hidden": 16, "reductions": 2},
    }
    return OmegaConf.create({
        "listener": listeners[listener],
        "attention": ATTENTIONS[attention],
        "speller": {"embed_dim": 8, "hidden": 24, "layers": 1, "dropout": 0.0, "attention_first": attention_first},
        "ctc_weight": ctc_weight, "ctc_upsample": ctc_upsample, "ctc_layers": ctc_layers, "ctc_hidden": 12,
        "label_smoothing": 0.1})


@pytest.mark.parametrize("listener, reduction", [
    (ConvBLSTMListener(20, channels=4, hidden=8, layers=2), 4),
    (ConvBLSTMListener(20, channels=4, hidden=8, layers=2, pyramid=[1]), 8),
    (PyramidalBLSTMListener(20, hidden=8, reductions=2), 4),
])
def test_listener_shapes_and_padding_independence(listener, reduction):
    listener.eval()
    feats, lengths = torch.randn(3, 100, 20), torch.tensor([100, 64, 37])
    out, out_lengths = listener(feats, lengths)
    assert out.shape[0] == 3 and out.shape[2] == 16
    assert out.shape[1] == out_lengths.max()
    assert (out_lengths - lengths // reduction).abs().max() <= 1
    # an utterance's output must not change when it is padded in a batch with a longer one
    alone, alone_len = listener(feats[2:, :37], lengths[2:])
    assert alone_len.item() == out_lengths[2].item()
    assert torch.allclose(alone[0], out[2, : alone_len.item()], atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"smoothing": True}, {"coverage": True, "sharpening": 2.0},
                                     {"scorer": "dot"}, {"scorer": "dot", "coverage": True}])
def test_location_attention_masks_padding_and_sums_to_one(options):
    torch.manual_seed(0)
    att = LocationAwareAttention(query_dim=6, memory_dim=10, attention_dim=8, conv_channels=3, conv_kernel=5,
                                 **options)
    memory, lengths = torch.randn(3, 12, 10), torch.tensor([12, 7, 3])
    state = att.init_state(memory, lengths)
    mask = padding_mask(lengths, 12)
    assert torch.allclose(state.weights.sum(-1), torch.ones(3))
    for _ in range(4):
        context, weights, state = att(torch.randn(3, 6), state)
        assert context.shape == (3, 10) and weights.shape == (3, 12)
        assert (weights[~mask] == 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(3), atol=1e-6)
        assert torch.allclose(context, torch.einsum("bt,btd->bd", weights, memory), atol=1e-6)


def test_location_term_moves_attention():
    """With identical content everywhere, only the previous alignment can make weights differ."""
    torch.manual_seed(0)
    for scorer in ("mlp", "dot"):
        att = LocationAwareAttention(query_dim=4, memory_dim=6, attention_dim=8, conv_kernel=5, scorer=scorer)
        state = att.init_state(torch.ones(1, 10, 6), torch.tensor([10]))
        state.weights = torch.zeros(1, 10)
        state.weights[0, 3] = 1.0
        _, weights, _ = att(torch.randn(1, 4), state)
        assert weights.std() > 1e-4, scorer
        assert weights[0, 3] != weights[0, 8]


def test_attention_state_select_reorders_every_tensor():
    att = LocationAwareAttention(query_dim=6, memory_dim=10, attention_dim=8, conv_kernel=5, coverage=True)
    state = att.init_state(torch.randn(3, 9, 10), torch.tensor([9, 5, 2]))
    picked = state.select(torch.tensor([2, 2, 0]))
    assert torch.equal(picked.mask[0], state.mask[2]) and torch.equal(picked.keys[2], state.keys[0])
    assert picked.extra["cumulative"].shape == (3, 9)


def tiny_batch():
    torch.manual_seed(0)
    feats = torch.randn(4, 60, 20)
    lengths = torch.tensor([60, 55, 48, 40])
    tokens = torch.randint(3, 10, (4, 6))
    token_lengths = torch.tensor([6, 5, 4, 3])
    return feats, lengths, tokens, token_lengths


@pytest.mark.parametrize("listener, attention", [("conv", "location"), ("pblstm", "location"),
                                                 ("conv", "monotonic"), ("conv", "mocha"), ("conv", "mocha-heads"),
                                                 ("conv", "multihead"), ("conv", "windowed")])
def test_loss_falls_on_a_tiny_batch(listener, attention):
    torch.manual_seed(0)
    feats, lengths, tokens, token_lengths = tiny_batch()
    model = build_model(small_config(listener, attention=attention), vocab_size=10, feat_dim=20)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        out = model(feats, lengths, tokens, token_lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0]
    assert out["accuracy"] > 0.8


def test_loss_ignores_padding_in_targets():
    feats, lengths, tokens, token_lengths = tiny_batch()
    model = build_model(small_config(), vocab_size=10, feat_dim=20).eval()
    noisy = tokens.clone()
    for i, n in enumerate(token_lengths):
        noisy[i, n:] = 7  # whatever sits past the length must not matter
    a = model(feats, lengths, tokens, token_lengths)
    b = model(feats, lengths, noisy, token_lengths)
    assert torch.allclose(a["loss"], b["loss"])


@pytest.mark.parametrize("attention, attention_first", [("location", False), ("location", True),
                                                       ("monotonic", False), ("mocha", False)])
def test_greedy_decoding_matches_one_by_one(attention, attention_first):
    torch.manual_seed(0)
    feats, lengths, tokens, token_lengths = tiny_batch()
    model = build_model(small_config(attention=attention, attention_first=attention_first), vocab_size=10,
                        feat_dim=20)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        out = model(feats, lengths, tokens, token_lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    model.eval()
    learned = model(feats, lengths, tokens, token_lengths)["accuracy"] == 1
    batch, _ = greedy_decode(model, feats, lengths)
    single = [greedy_decode(model, feats[i:i + 1, : lengths[i]], lengths[i:i + 1])[0][0] for i in range(4)]
    assert batch == single
    if attention == "location":  # the soft attention memorizes the batch in 200 steps
        assert learned and batch == [t[:n].tolist() for t, n in zip(tokens, token_lengths)]
    _, alignments = greedy_decode(model, feats, lengths, keep_alignments=True)
    for a in alignments:  # soft weights sum to 1; hard monotonic ones to 1, or 0 where nothing is selected
        one = (a.sum(-1) - 1).abs() < 1e-5
        assert one.all() if attention == "location" else (one | (a.sum(-1) == 0)).all()


ALL_ATTENTIONS = {
    "location-mlp": {"_target_": "asr.models.attention.location.LocationAwareAttention", "scorer": "mlp"},
    "location-dot": {"_target_": "asr.models.attention.location.LocationAwareAttention", "scorer": "dot"},
    **{s: {"_target_": "asr.models.attention.content.ContentAttention", "scorer": s}
       for s in ("additive", "dot", "scaled_dot", "general")},
    "multihead": {"_target_": "asr.models.attention.multihead.MultiHeadLocationAttention", "heads": 2},
    "windowed": {"_target_": "asr.models.attention.windowed.WindowedAttention", "_recursive_": False,
                 "before": 2, "after": 3, "in_training": True,
                 "inner": {"_target_": "asr.models.attention.location.LocationAwareAttention"}},
}


@pytest.mark.parametrize("name", list(ALL_ATTENTIONS))
@pytest.mark.parametrize("training", [True, False])
def test_every_soft_attention_masks_padding_and_sums_to_one(name, training):
    torch.manual_seed(0)
    att = instantiate(OmegaConf.create(ALL_ATTENTIONS[name]), query_dim=6, memory_dim=8).train(training)
    memory, lengths = torch.randn(3, 15, 8), torch.tensor([15, 9, 4])
    mask = padding_mask(lengths, 15)
    state = att.init_state(memory, lengths)
    for step in range(4):
        context, weights, state = att(torch.randn(3, 6), state)
        assert context.shape == (3, 8) and weights.shape == (3, 15)
        assert (weights[~mask] == 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(3), atol=1e-5)
        assert torch.equal(state.mask, mask)
        if name == "windowed" and step > 0:
            assert ((weights > 0).sum(-1) <= 2 + 3 + 1).all()
    picked = state.select(torch.tensor([2, 0]))
    assert picked.weights.shape == (2, 15) and all(v.shape[0] == 2 for v in picked.extra.values())


def test_windowed_attention_only_sees_the_window():
    from asr.models.attention.windowed import window_mask

    weights = torch.zeros(2, 20)
    weights[0, 10], weights[1, 1] = 1.0, 1.0
    m = window_mask(weights, padding_mask(torch.tensor([20, 20]), 20), before=2, after=3)
    assert m[0].nonzero().flatten().tolist() == [8, 9, 10, 11, 12, 13]
    assert m[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]


ATTENTION_CONFIGS = Path(__file__).parents[1] / "conf" / "model" / "attention"


@pytest.mark.parametrize("name", sorted(p.stem for p in ATTENTION_CONFIGS.glob("*.yaml")))
@pytest.mark.parametrize("value_proj", [False, True])
def test_values_shared_or_separately_projected(name, value_proj):
    """Every attention config takes value_proj: values are the frames themselves, or their own projection,
    which the context is made of and which learns."""
    torch.manual_seed(0)
    cfg = OmegaConf.load(ATTENTION_CONFIGS / f"{name}.yaml")
    cfg.value_proj = value_proj
    att = instantiate(cfg, query_dim=6, memory_dim=8).train()
    owner = att.inner if name == "windowed" else att  # the wrapper hands the option to the attention it wraps
    assert (owner.value_proj is None) == (not value_proj)
    memory, lengths = torch.randn(2, 9, 8), torch.tensor([9, 5])
    state = att.init_state(memory, lengths)
    assert torch.allclose(state.values, owner.value_proj(memory) if value_proj else memory)
    total = 0.0
    for _ in range(3):
        context, weights, state = att(torch.randn(2, 6), state)
        if name != "multihead":  # one context of the values (multi-head: slices per head, then projected)
            assert torch.allclose(context, torch.einsum("bt,btd->bd", weights, state.values), atol=1e-6)
        total = total + context.sum()
    total.backward()
    if value_proj:
        assert owner.value_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("value_proj", [True, False])
def test_multihead_batched_path_equals_the_heads_one_by_one(value_proj):
    from asr.models.attention.multihead import MultiHeadLocationAttention
    torch.manual_seed(0)
    attention = MultiHeadLocationAttention(12, 16, heads=4, attention_dim=8, conv_kernel=5, scorer="dot",
                                           value_proj=value_proj).double()
    for p in attention.parameters():  # away from the zero-initialised biases, so every term matters
        torch.nn.init.normal_(p, std=0.5)
    memory = torch.randn(3, 9, 16, dtype=torch.float64)
    lengths = torch.tensor([9, 7, 4])
    queries = torch.randn(3, 3, 12, dtype=torch.float64, requires_grad=True)
    results = []
    for step in (attention.forward, attention.forward_per_head):
        state, out = attention.init_state(memory, lengths), []
        state.extra["head_weights"] = state.extra["head_weights"].double()  # uniform_weights gives float32
        for i in range(3):  # three steps: the later ones convolve alignments that differ per head
            context, weights, state = step(queries[:, i], state)
            out += [context, weights, state.extra["head_weights"]]
        grads = torch.autograd.grad(sum(o.square().sum() for o in out), [queries, *attention.parameters()])
        results.append((out, grads))
    (fast, fast_grads), (slow, slow_grads) = results
    assert not torch.allclose(slow[2][:, 0], slow[2][:, 1])  # the heads do differ
    for a, b in zip(fast + list(fast_grads), slow + list(slow_grads)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert (fast[-1][1, :, 7:] == 0).all() and (fast[-1][2, :, 4:] == 0).all()  # padding, every head


def test_decode_window_wraps_a_trained_soft_attention_and_keeps_alignments_local():
    from asr.decoding.greedy import greedy_decode
    from asr.models.attention.windowed import WindowedAttention, add_decode_window
    torch.manual_seed(0)
    model = build_model(small_config(attention="location"), vocab_size=10, feat_dim=20).eval()
    feats, lengths = torch.randn(2, 120, 20), torch.tensor([120, 90])
    inner = model.speller.attention
    assert add_decode_window(model, before=2, after=3)
    assert isinstance(model.speller.attention, WindowedAttention) and model.speller.attention.inner is inner
    assert not model.speller.attention.training
    assert not add_decode_window(model, 2, 3)  # once is enough
    _, alignments = greedy_decode(model, feats, lengths, 1.0, keep_alignments=True)
    for a in alignments:
        frames = torch.arange(a.shape[1])
        for previous, current in zip(a[:-1], a[1:]):
            peak = int(previous.argmax())
            outside = (frames < peak - 2) | (frames > peak + 3)
            assert current[outside].abs().max() == 0 and current.sum() == pytest.approx(1.0, abs=1e-5)
    monotonic = build_model(small_config(attention="monotonic"), vocab_size=10, feat_dim=20).eval()
    assert not add_decode_window(monotonic, 2, 3)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("lengths", [[9, 5, 1, 8], [9, 9, 9, 9]])
def test_padded_lstm_matches_packed_lstm_in_outputs_and_gradients(bidirectional, lengths):
    """The listener's fast LSTM (padded, backward direction on sequences reversed in place) against packing."""
    torch.manual_seed(0)
    lstm = nn.LSTM(7, 5, batch_first=True, bidirectional=bidirectional)
    x, lengths = torch.randn(4, 9, 7, requires_grad=True), torch.tensor(lengths)
    fast, reference = run_lstm(lstm, x, lengths), packed_lstm(lstm, x, lengths)
    assert torch.allclose(fast, reference, atol=1e-6)  # padding frames included: zero in both
    weight = torch.randn_like(reference)  # any loss over the outputs
    fast_grads = torch.autograd.grad((fast * weight).sum(), [x, *lstm.parameters()])
    reference_grads = torch.autograd.grad((reference * weight).sum(), [x, *lstm.parameters()])
    for fast_grad, reference_grad in zip(fast_grads, reference_grads):
        assert torch.allclose(fast_grad, reference_grad, atol=1e-5)


@pytest.mark.parametrize("attention_first", [False, True])
def test_speller_teacher_forcing_equals_its_steps(attention_first):
    """forward embeds and projects all steps at once; it must give what step() gives one token at a time."""
    torch.manual_seed(0)
    attention = LocationAwareAttention(12, 10, attention_dim=8, conv_kernel=5, scorer="dot")
    speller = Speller(9, 10, attention, embed_dim=6, hidden=12, layers=2, attention_first=attention_first).eval()
    memory, lengths, inputs = torch.randn(3, 11, 10), torch.tensor([11, 6, 4]), torch.randint(0, 9, (3, 5))
    logits, alignments = speller(memory, lengths, inputs)
    state = speller.init_state(memory, lengths)
    for i in range(inputs.shape[1]):
        features, weights, state = speller.step(inputs[:, i], state)
        assert torch.allclose(logits[:, i], speller.output(features), atol=1e-6)
        assert torch.allclose(alignments[:, i], weights, atol=1e-6)


def test_conv_subsampling_lengths_and_receptive_field():
    """output_lengths counts the frames forward gives, and output frame i depends on input frames 4i .. 4i+6
    only (what lets the streaming listener run it on audio as it arrives)."""
    from asr.models.subsampling import Conv2dSubsampling

    torch.manual_seed(0)
    conv = Conv2dSubsampling(20, channels=3)
    for t in range(7, 40):
        out = conv(torch.randn(1, t, 20))
        assert out.shape == (1, int(conv.output_lengths(torch.tensor(t))), conv.output_dim)
    x = torch.randn(1, 30, 20, requires_grad=True)
    conv(x)[0, 2].sum().backward()
    touched = x.grad[0].abs().sum(-1).nonzero().flatten().tolist()
    assert touched == list(range(8, 8 + conv.context_frames))
