"""Supervised attention: the penalties of their definitions, masking, the CTC forced alignment's frames, and
their place in the training loss."""

from __future__ import annotations

import math

import pytest
import torch

from asr.models.guided_attention import band_penalty, ctc_token_frames, diagonal_centres, guided_attention_loss


def test_guided_penalty_equals_the_definition_and_is_zero_past_the_lengths():
    out_lengths, in_lengths = torch.tensor([3, 5]), torch.tensor([7, 4])
    centres = diagonal_centres(out_lengths, in_lengths, 5)
    w = band_penalty(centres, 0.3 * in_lengths[:, None].float(), out_lengths, in_lengths, 7)
    for b, (big_n, big_t) in enumerate([(3, 7), (5, 4)]):
        for n in range(5):
            for t in range(7):
                expected = 1 - math.exp(-((n / big_n - t / big_t) ** 2) / (2 * 0.3**2))
                assert math.isclose(w[b, n, t].item(), expected if n < big_n and t < big_t else 0.0, abs_tol=1e-6)


def test_ctc_token_frames_follow_the_forced_alignment():
    """Log-probabilities that spell blank A A blank B blank C over 8 CTC frames (2 per listener frame): tokens
    A B C start at CTC frames 1, 4, 6, so listener frames 0.5, 2 and 3; <eos> takes the last listener frame. An
    utterance with fewer frames than its tokens keeps the diagonal."""
    path = [0, 2, 2, 0, 3, 0, 4, 0]
    log_probs = torch.full((2, 8, 5), -20.0)
    log_probs[0, torch.arange(8), torch.tensor(path)] = 0.0
    targets = torch.tensor([[2, 3, 4], [2, 3, 4]])
    centres = ctc_token_frames(log_probs.log_softmax(-1), torch.tensor([8, 2]), targets, torch.tensor([3, 3]),
                               blank=0, upsample=2)
    assert centres[0].tolist() == [0.5, 2.0, 3.0, 3.0]
    assert torch.allclose(centres[1], diagonal_centres(torch.tensor([4]), torch.tensor([1]), 4)[0])


def test_diagonal_costs_less_than_anything_else_and_padding_does_not_count():
    n_out, n_in = torch.tensor([6, 4]), torch.tensor([12, 8])
    diagonal = torch.zeros(2, 6, 12)
    for b in range(2):
        for n in range(int(n_out[b])):
            diagonal[b, n, n * int(n_in[b]) // int(n_out[b])] = 1.0
    stuck = torch.zeros(2, 6, 12)
    stuck[:, :, 0] = 1.0  # every step on the first frame: what a speller that has not locked does
    assert guided_attention_loss(diagonal, n_out, n_in) < 0.05 < 0.3 < guided_attention_loss(stuck, n_out, n_in)
    padded = diagonal.clone()
    padded[1, 4:] = torch.rand(2, 12)  # steps past the second utterance's length
    padded[1, :, 8:] = 5.0  # frames past its listener length
    assert guided_attention_loss(padded, n_out, n_in) == guided_attention_loss(diagonal, n_out, n_in)


@pytest.mark.parametrize("attention", ["location", "monotonic", "mocha"])  # soft weights, expected alignments
def test_training_loss_takes_it_and_its_schedule_turns_it_off(tiny_corpus, tmp_path, attention):
    from asr.training.trainer import Trainer

    from .conftest import train_config

    trainer = Trainer(train_config(tiny_corpus / "manifests", tmp_path, f"model/attention={attention}",
                                   "device=cpu", "train.max_epochs=1",
                                   "train.guided_attention.weight=0.5", "train.guided_attention.until_step=2",
                                   "train.ctc_alignment.weight=0.3", "train.ctc_alignment.until_step=2"))
    batch = next(iter(trainer.loader(0)))
    args = (batch["feats"], batch["feat_lengths"], batch["tokens"], batch["token_lengths"])
    torch.manual_seed(0)  # the same dropout and monotonic noise in both forwards
    plain = trainer.model(*args)
    torch.manual_seed(0)
    guided = trainer.model(*args, **trainer.guide())
    assert "guided_loss" not in plain and 0 < guided["guided_loss"] < 1 and 0 < guided["align_loss"] < 1
    assert torch.isclose(guided["loss"], plain["loss"] + 0.5 * guided["guided_loss"] + 0.3 * guided["align_loss"])
    (guided["guided_loss"] + guided["align_loss"]).backward()
    speller_grads = [p.grad for p in trainer.model.speller.parameters() if p.grad is not None]
    assert speller_grads and any(g.abs().sum() > 0 for g in speller_grads)
    first = trainer.train_step([batch])
    trainer.train_step([batch])
    assert "guided_loss" in first and "align_loss" in first and trainer.guide() == {}  # off from step 2
    assert not {"guided_loss", "align_loss"} & set(trainer.train_step([batch]))
