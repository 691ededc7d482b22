"""The one wall-clock budget of the training loops, on a fake clock: asr-train and asr-train-lm stop where it runs
out, and a resumed asr-train goes on with what its checkpoint had spent (asr-fit-ctc: tests/test_fit_ctc.py)."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir

from asr import CONF_DIR
from asr.training.budget import Budget
from asr.training.trainer import Trainer

from .conftest import TickingClock, train_config


def test_budget_charges_laps_and_rests():
    clock = TickingClock(1.0)
    budget = Budget.from_minutes(0.1, clock)  # 6 s; made at t=1
    assert budget.lap() == 1.0 and budget.spent == 1.0  # read at t=2
    budget.charge(2.0)
    assert budget.fraction == pytest.approx(0.5) and not budget.exhausted
    rest = budget.rest()  # 3 s left, from t=3
    assert rest.seconds == 3.0 and rest.spent == 0.0
    rest.lap(), rest.lap()
    assert rest.fraction == pytest.approx(2 / 3) and not rest.exhausted
    rest.lap()
    assert rest.exhausted
    budget.charge(10.0)
    assert budget.rest().seconds == 0.0 and budget.rest().fraction == math.inf  # nothing left: spent at once
    unlimited = Budget.from_minutes(None, clock, spent=1e9)
    assert unlimited.fraction == 0.0 and not unlimited.exhausted and unlimited.rest().seconds == math.inf


def test_trainer_stops_at_its_budget_and_a_resumed_run_keeps_what_was_spent(tiny_corpus, tmp_path):
    manifests = tiny_corpus / "manifests"
    common = ("train.max_epochs=50", "device=cpu", "train.decay=cosine", "train.final_lr_ratio=0.1")
    # the trainer reads the clock before and after each step, 10 s apart: the minute lasts 6 steps
    first = Trainer(train_config(manifests, tmp_path, *common, "train.max_minutes=1"), clock=TickingClock(10.0))
    first.run()
    assert first.state["step"] == 6 and first.state["train_seconds"] == 60.0
    assert first.budget.exhausted and first.state["epoch"] >= 1  # the cut epoch is closed and logged
    # two minutes in all: the resumed run has one left, six more steps, the last one annealed by the clock
    second = Trainer(train_config(manifests, tmp_path, *common, "train.max_minutes=2", "resume=true"),
                     clock=TickingClock(10.0))
    second.run()
    assert second.state["step"] == 12 and second.state["train_seconds"] == 120.0
    peak = second.cfg.train.lr
    assert second.lr == pytest.approx(peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 110 / 120))))


def test_lm_training_stops_at_its_budget(tiny_corpus, tmp_path):
    from asr.training.lm import train_lm

    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("lm", overrides=[f"data.manifest_dir={tiny_corpus / 'manifests'}", f"out_dir={tmp_path}",
                                       "train.max_epochs=1000", "train.max_minutes=1", "train.min_lr=0",
                                       "lexicon.size=0", "model.hidden=16", "model.embed_dim=8", "model.layers=1"])
    clock = TickingClock(1.0)
    result = train_lm(cfg, clock=clock)
    # every second counts: the clock is read when the budget is made, after each batch and after each epoch's
    # dev perplexity (1 s a read). The read that reaches 60 s stops it; if that was a batch's, the epoch's dev
    # perplexity still runs and is counted (61 s). Nothing else reads the clock.
    assert result["seconds"] in (60.0, 61.0) and clock.now == result["seconds"] + 1
    assert result["epochs"] < 1000


def test_trainer_checkpoints_after_each_stretch_of_training_time(tiny_corpus, tmp_path, monkeypatch):
    """train.checkpoint_minutes counts the budget's seconds (the same on every rank): with 10 s a step and 0.5
    minutes, last.pt is written after every fourth step inside an epoch (40 s > 30 s), and at the epoch's end."""
    saved_at = []
    real_save = Trainer.save

    def save(self):
        saved_at.append(self.budget.spent)
        real_save(self)

    monkeypatch.setattr(Trainer, "save", save)
    trainer = Trainer(train_config(tiny_corpus / "manifests", tmp_path, "train.max_epochs=1", "device=cpu",
                                   "train.checkpoint_minutes=0.5"), clock=TickingClock(10.0))
    steps = trainer.steps(0)
    assert steps >= 5
    trainer.run()
    assert saved_at == [40.0 * k for k in range(1, steps // 4 + 1)] + [10.0 * steps]
