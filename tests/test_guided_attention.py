"""Guided attention: the penalty of the definition, masking, and its place in the training loss."""

from __future__ import annotations

import math

import pytest
import torch

from asr.models.guided_attention import diagonal_penalty, guided_attention_loss


def test_penalty_equals_the_definition_and_is_zero_past_the_lengths():
    w = diagonal_penalty(torch.tensor([3, 5]), torch.tensor([7, 4]), 5, 7, sigma=0.3)
    for b, (big_n, big_t) in enumerate([(3, 7), (5, 4)]):
        for n in range(5):
            for t in range(7):
                expected = 1 - math.exp(-((n / big_n - t / big_t) ** 2) / (2 * 0.3**2))
                assert math.isclose(w[b, n, t].item(), expected if n < big_n and t < big_t else 0.0, abs_tol=1e-6)


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
                                   "train.guided_attention.weight=0.5", "train.guided_attention.until_step=2"))
    batch = next(iter(trainer.loader(0)))
    args = (batch["feats"], batch["feat_lengths"], batch["tokens"], batch["token_lengths"])
    torch.manual_seed(0)  # the same dropout and monotonic noise in both forwards
    plain = trainer.model(*args)
    torch.manual_seed(0)
    guided = trainer.model(*args, **trainer.guide())
    assert "guided_loss" not in plain and 0 < guided["guided_loss"] < 1
    assert torch.isclose(guided["loss"], plain["loss"] + 0.5 * guided["guided_loss"])
    guided["guided_loss"].backward()
    speller_grads = [p.grad for p in trainer.model.speller.parameters() if p.grad is not None]
    assert speller_grads and any(g.abs().sum() > 0 for g in speller_grads)
    first = trainer.train_step([batch])
    trainer.train_step([batch])
    assert "guided_loss" in first and trainer.guide() == {}  # off from step 2
    assert "guided_loss" not in trainer.train_step([batch])
