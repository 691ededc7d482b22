"""asr-fit-ctc: a new CTC head fitted on a trained model's frozen listener."""

import csv

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import asr.training.ctc_fit as fit_ctc_module
from asr import CONF_DIR
from asr.cli.fit_ctc import fit_ctc
from asr.modeldir import load_model_dir

from .conftest import FakeClock


def fit_config(corpus, model_dir, out_dir, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("fit_ctc", overrides=[f"model_dir={model_dir}", f"out_dir={out_dir}",
                                             f"data.manifest_dir={corpus / 'manifests'}", "threads=1",
                                             "ctc.hidden=16", "fit.lr=3e-3", *overrides])


def test_fit_ctc_writes_the_same_model_with_a_fitted_head(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    # the tiny model's listener is too weak for any head to beat its own on dev, so its own head is scored
    # as if it were worse (the first evaluation is of that head); the fitted heads are scored as they are
    calls, real_evaluate = [], fit_ctc_module.evaluate

    def own_head_scored_worse(*args):
        loss, cer = real_evaluate(*args)
        calls.append(cer)
        return (loss, 1000.0) if len(calls) == 1 else (loss, cer)

    monkeypatch.setattr(fit_ctc_module, "evaluate", own_head_scored_worse)
    source = tiny_model
    source_bytes = (source / "model.pt").read_bytes()
    out = tmp_path / "with_ctc"
    result = fit_ctc(fit_config(tiny_corpus, source, out, "fit.passes=3"))
    assert result["replaced"] and result["old_dev_ctc_cer"] == 1000.0 and len(calls) == 4

    old, _, _, _ = load_model_dir(source)
    new, _, _, _ = load_model_dir(out)
    assert (source / "model.pt").read_bytes() == source_bytes  # the source model is left alone
    assert new.ctc_upsample == 2 and len(new.ctc_head.lstms) == 1 and new.ctc_head.lstms[0].hidden_size == 16
    old_state, new_state = old.state_dict(), new.state_dict()
    kept = [k for k in old_state if not k.startswith("ctc_head.")]
    assert kept and all(torch.equal(old_state[k], new_state[k]) for k in kept)  # listener and speller unchanged

    rows = list(csv.DictReader((out / "fit_ctc_log.csv").open()))
    assert len(rows) == 3
    losses = [float(r["train_ctc_loss"]) for r in rows]
    assert losses[-1] < losses[0]  # the head learns from the frozen listener's outputs
    cers = [float(r["dev_ctc_cer"]) for r in rows]
    assert result["dev_ctc_cer"] == min(cers) and sum(int(r["best"]) for r in rows) >= 1
    assert result["pass"] == min(range(3), key=lambda i: (cers[i], float(rows[i]["dev_ctc_loss"])))

    # the directory holds the best pass: its dev CER is the one the log gives for that pass
    cfg = fit_config(tiny_corpus, source, out)
    from asr.data.batching import FeatureDataset
    from asr.training.trainer import load_split

    model, tokenizer, logmel, norm = load_model_dir(out)
    dev_utts = load_split(cfg, cfg.data.dev)
    dataset = FeatureDataset(dev_utts, tokenizer, logmel, norm, cache=False)
    dev = fit_ctc_module.listener_memories(model, dataset, [u.duration for u in dev_utts], 20000, "dev")
    _, cer = real_evaluate(model.ctc_head, dev, dev_utts, tokenizer, model.blank, 20000)
    assert cer == pytest.approx(result["dev_ctc_cer"])


def test_fit_ctc_keeps_the_models_own_head_when_the_fitted_one_is_worse(tiny_corpus, tiny_model, tmp_path):
    out = tmp_path / "with_ctc"
    result = fit_ctc(fit_config(tiny_corpus, tiny_model, out, "fit.passes=1", "fit.lr=1e-9"))  # a random head
    assert not result["replaced"] and result["dev_ctc_cer"] > result["old_dev_ctc_cer"]
    assert OmegaConf.load(out / "config.yaml") == OmegaConf.load(tiny_model / "config.yaml")
    old, new = load_model_dir(tiny_model)[0].state_dict(), load_model_dir(out)[0].state_dict()
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)


def test_fit_ctc_without_the_listener_cache_fits_the_same_head(tiny_corpus, tiny_model, tmp_path):
    # the slow path (the listener run again for every batch of every pass) against the cached one: the same
    # batches in the same order, so the same head up to the rounding of batching utterances differently
    logs = []
    for cache in ("true", "false"):
        out = tmp_path / f"cache_{cache}"
        fit_ctc(fit_config(tiny_corpus, tiny_model, out, "fit.passes=2", "device=cpu", f"fit.cache_listener={cache}"))
        logs.append([float(r[k]) for r in csv.DictReader((out / "fit_ctc_log.csv").open())
                     for k in ("train_ctc_loss", "dev_ctc_loss", "dev_ctc_cer")])
    cached, streamed = logs
    assert len(cached) == 6 and cached[3] < cached[0]  # two passes; the head learned
    assert streamed == pytest.approx(cached, rel=1e-3)  # every pass: train loss, dev loss, dev CER


def test_fit_ctc_with_speed_perturbation_learns_from_every_speed(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    """fit.speed_perturb: the cached listener outputs hold each training utterance once per factor (slower
    speech, more frames), and a pass goes over all of them."""
    cached, counted = {}, []
    real_memories, real_outputs = fit_ctc_module.listener_memories, fit_ctc_module.head_outputs

    def keep(model, dataset, durations, max_frames, desc):
        cached[desc] = real_memories(model, dataset, durations, max_frames, desc)
        return cached[desc]

    def count(head, items):
        counted.append(len(items))
        return real_outputs(head, items)

    monkeypatch.setattr(fit_ctc_module, "listener_memories", keep)
    monkeypatch.setattr(fit_ctc_module, "head_outputs", count)
    fit_ctc(fit_config(tiny_corpus, tiny_model, tmp_path / "out", "fit.passes=1", "fit.speed_perturb=[0.8,1.2]"))
    train = cached["listener (train)"]
    n = len(train) // 2
    assert len(train) == 2 * n and n > 0
    for slow, fast in zip(train[:n], train[n:]):
        assert torch.equal(slow[1], fast[1])  # the same transcript
        assert len(slow[0]) > len(fast[0])  # 0.8x speed lasts longer: more listener frames
    dev_items = len(cached["listener (dev)"])
    assert sum(counted) == 2 * n + dev_items * 2  # one pass over both copies; dev before and after it


@pytest.mark.parametrize(("done", "time_fraction", "expected"), [
    (0, 0.0, False),     # the first batch
    (19, 0.0, False),    # the last batch of pass 2 of 3 (10 batches a pass, no budget)
    (20, 0.0, True),     # the first of pass 3: the last pass is the final rate's, exactly from its start
    (5, 0.66, False),    # a budget two thirds spent: the full rate still
    (5, 0.67, True),     # the clock's last third comes before the batches' last pass
])
def test_the_final_rate_takes_the_last_share_of_the_batches_or_of_the_clock(done, time_fraction, expected):
    assert fit_ctc_module.at_final_rate(done, 10, 3, time_fraction) == expected
    assert not fit_ctc_module.at_final_rate(done, 10, 1, time_fraction)  # one pass: the full rate throughout


def test_fit_ctc_runs_until_its_budget_runs_out_mid_pass_ending_at_the_final_rate(tiny_corpus, tiny_model,
                                                                                tmp_path, monkeypatch):
    clock, rates, real_outputs = FakeClock(), [], fit_ctc_module.head_outputs
    optimizers = []
    real_adam = torch.optim.Adam

    def adam(*args, **kwargs):
        optimizers.append(real_adam(*args, **kwargs))
        return optimizers[-1]

    def one_second_a_batch(head, items):
        if head.training:
            clock.now += 1.0
            rates.append(optimizers[-1].param_groups[0]["lr"])
        return real_outputs(head, items)

    monkeypatch.setattr(fit_ctc_module, "head_outputs", one_second_a_batch)
    monkeypatch.setattr(torch.optim, "Adam", adam)
    out = tmp_path / "out"
    # a training batch costs 1 s on the clock, everything else nothing
    fit_ctc(fit_config(tiny_corpus, tiny_model, out, "fit.passes=1"), clock)  # no budget: one pass, to count batches
    per_pass = len(rates)
    assert per_pass >= 4

    rates.clear()
    budget_s = per_pass + per_pass // 2  # a pass and a half of 1-second batches
    result = fit_ctc(fit_config(tiny_corpus, tiny_model, out, "fit.passes=4", f"fit.max_minutes={budget_s / 60}"),
                     clock)
    assert len(rates) == budget_s  # every second of the budget used, none beyond it
    final = 0.75 * budget_s  # the last quarter of the clock (4 passes) at the final rate
    assert rates == [pytest.approx(3e-3 * (0.3 if i >= final else 1.0)) for i in range(budget_s)]
    rows = list(csv.DictReader((out / "fit_ctc_log.csv").open()))
    assert [(int(r["pass"]), float(r["passes"])) for r in rows] == [(0, 1.0), (1, round(budget_s / per_pass, 2))]
    assert result["passes"] == round(budget_s / per_pass, 2)

    # a budget spent before the fitting begins: one batch, and its evaluation
    rates.clear()
    result = fit_ctc(fit_config(tiny_corpus, tiny_model, out, "fit.passes=3", "fit.max_minutes=1e-6"), clock)
    assert len(rates) == 1 and len(list(csv.DictReader((out / "fit_ctc_log.csv").open()))) == 1


def test_fit_ctc_refuses_to_overwrite_its_source(tiny_corpus, tiny_model):
    with pytest.raises(ValueError, match="out_dir must differ from model_dir"):
        fit_ctc(fit_config(tiny_corpus, tiny_model, tiny_model))


def test_fit_ctc_names_a_missing_model(tiny_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        fit_ctc(fit_config(tiny_corpus, tmp_path / "nothing", tmp_path / "out"))


def test_fit_ctc_learns_from_augmented_training_copies_and_a_clean_dev_set(tiny_corpus, tiny_model, tmp_path,
                                                                           monkeypatch):
    """augment=multi: the training copies' listener outputs come from augmented audio (a different draw per speed
    factor), the dev outputs stay those of the clean audio."""
    cached = {}
    real_memories = fit_ctc_module.listener_memories

    def keep(model, dataset, durations, max_frames, desc):
        cached.setdefault(desc, []).append(real_memories(model, dataset, durations, max_frames, desc))
        return cached[desc][-1]

    monkeypatch.setattr(fit_ctc_module, "listener_memories", keep)
    everything = ["augment.noise.prob=1.0", "augment.babble.prob=0.0", "augment.reverb.prob=0.0"]
    fit_ctc(fit_config(tiny_corpus, tiny_model, tmp_path / "clean", "fit.passes=1", "fit.speed_perturb=[1.0,1.0]"))
    fit_ctc(fit_config(tiny_corpus, tiny_model, tmp_path / "noisy", "fit.passes=1", "fit.speed_perturb=[1.0,1.0]",
                       "augment=multi", *everything))
    clean, noisy = cached["listener (train)"]
    n = len(clean) // 2
    for a, b in zip(clean[:n], clean[n:]):
        assert torch.equal(a[0], b[0])  # clean: both copies at speed 1.0 are the same
    for a, b in zip(noisy[:n], noisy[n:]):
        assert not torch.allclose(a[0], b[0])  # each copy draws its own noise
    for a, b in zip(clean, noisy):
        assert a[0].shape == b[0].shape and not torch.allclose(a[0], b[0])
    for a, b in zip(*cached["listener (dev)"]):
        assert torch.equal(a[0], b[0])
