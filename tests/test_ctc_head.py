"""The CTC head on the listener: k frames per listener frame, BLSTM layers of its own, dropout, older weights."""

import torch
import torch.nn.functional as F

from asr.models.las import build_model

from .test_models import small_config, tiny_batch


def test_upsampled_ctc_head_gives_k_frames_per_listener_frame():
    config = small_config(ctc_upsample=2)
    torch.manual_seed(0)
    model = build_model(config, vocab_size=10, feat_dim=20).eval()
    memory, lengths = torch.randn(2, 5, model.listener.output_dim), torch.tensor([5, 3])
    log_probs, ctc_lengths = model.ctc_log_probs(memory, lengths)
    assert log_probs.shape == (2, 10, 10) and ctc_lengths.tolist() == [10, 6]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 10))
    # CTC frames 2t and 2t + 1 both come from listener frame t alone
    moved = memory.clone()
    moved[:, 2] += 1.0
    changed = (model.ctc_log_probs(moved, lengths)[0] - log_probs).abs().amax(-1) > 0
    assert changed.tolist() == [[False] * 4 + [True] * 2 + [False] * 4] * 2


def test_ctc_head_with_layers_sees_each_utterance_alone_and_trains_them():
    """A BLSTM in the CTC head: padding a shorter utterance into a batch changes none of its log-probabilities,
    they sum to one per CTC frame, and the CTC loss reaches the head's own layers and the listener."""
    torch.manual_seed(0)
    model = build_model(small_config(ctc_upsample=2, ctc_layers=1), vocab_size=10, feat_dim=20).eval()
    memory, lengths = torch.randn(2, 7, model.listener.output_dim), torch.tensor([7, 4])
    log_probs, ctc_lengths = model.ctc_log_probs(memory, lengths)
    assert log_probs.shape == (2, 14, 10) and ctc_lengths.tolist() == [14, 8]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 14))
    alone, _ = model.ctc_log_probs(memory[1:, :4], lengths[1:])
    assert torch.allclose(log_probs[1, :8], alone[0], atol=1e-6)
    model.train()
    feats, lengths, tokens, token_lengths = tiny_batch()
    model(feats, lengths, tokens, token_lengths)["ctc_loss"].backward()
    for p in (*model.ctc_head.lstms.parameters(), *model.listener.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_ctc_head_dropout_acts_in_training_only():
    """With dropout the head's training outputs vary from call to call; in eval mode they are those of the same
    weights without dropout, so a head fitted with dropout decodes like any other."""
    from asr.models.ctc_head import CTCHead

    torch.manual_seed(0)
    plain, dropped = CTCHead(16, 10, upsample=2, layers=2, hidden=8), CTCHead(16, 10, 2, 2, 8, dropout=0.3)
    dropped.load_state_dict(plain.state_dict())
    memory, lengths = torch.randn(2, 7, 16), torch.tensor([7, 5])
    first, second = dropped(memory, lengths)[0], dropped(memory, lengths)[0]
    assert not torch.allclose(first, second)
    plain.eval(), dropped.eval()
    assert torch.equal(dropped(memory, lengths)[0], plain(memory, lengths)[0])


def test_linear_ctc_head_loads_weights_saved_before_it_had_layers():
    """Models saved before the head had layers hold its projection as ctc_head.weight / ctc_head.bias."""
    torch.manual_seed(0)
    model = build_model(small_config(), vocab_size=10, feat_dim=20).eval()
    old = {k.replace("ctc_head.out.", "ctc_head."): v.clone() + 1.0 if k.startswith("ctc_head") else v
           for k, v in model.state_dict().items()}
    assert "ctc_head.weight" in old and "ctc_head.out.weight" not in old
    model.load_state_dict(old)  # strict: every key found
    memory, lengths = torch.randn(1, 5, model.listener.output_dim), torch.tensor([5])
    expected = F.linear(memory, old["ctc_head.weight"], old["ctc_head.bias"]).log_softmax(-1)
    assert torch.allclose(model.ctc_log_probs(memory, lengths)[0], expected, atol=1e-6)


def test_upsampled_ctc_aligns_more_characters_than_listener_frames():
    """7 characters with a doubled letter need 8 CTC frames: 4 listener frames cannot align them (the loss is
    infinite, zeroed), 8 upsampled frames can."""
    feats, lengths = torch.randn(1, 19, 20), torch.tensor([19])  # 4 frames after 4x subsampling
    tokens, token_lengths = torch.tensor([[2, 3, 3, 4, 5, 6, 7]]), torch.tensor([7])
    losses = {}
    for k in (1, 2):
        config = small_config(ctc_weight=1.0, ctc_upsample=k)
        torch.manual_seed(0)
        model = build_model(config, vocab_size=10, feat_dim=20).eval()
        assert model.encode(feats, lengths)[1].tolist() == [4]
        with torch.no_grad():
            losses[k] = float(model(feats, lengths, tokens, token_lengths)["ctc_loss"])
    assert losses[1] == 0.0 and losses[2] > 0.0
