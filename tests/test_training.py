import csv

import pytest
import torch

from asr.data.batching import BucketBatchSampler, bucket_batches
from asr.training.checkpoint import load_checkpoint, save_atomic
from asr.training.schedule import lr_factor
from asr.training.trainer import Trainer

from .conftest import train_config


def test_buckets_respect_the_frame_budget_and_cover_everything():
    durations = [0.5 + (i * 7919 % 97) / 10 for i in range(300)]
    batches = bucket_batches(durations, max_frames=3000, max_batch=20)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for b in batches:
        longest = max(int(durations[i] * 100) + 1 for i in b)
        assert len(b) <= 20 and (longest * len(b) <= 3000 or len(b) == 1)


def test_sampler_order_is_seeded_and_curriculum_is_shortest_first():
    durations = [float(i % 13 + 1) for i in range(100)]
    sampler = BucketBatchSampler(durations, max_frames=2000, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert list(sampler) != first
    sampler.set_epoch(0, shortest_first=True)
    longest = [max(durations[i] for i in b) for b in sampler]
    assert longest == sorted(longest)
    sampler.set_epoch(1, skip=3)
    assert list(sampler) == first[3:]


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, warmup_steps=10, total_steps=100, decay="cosine", final_ratio=0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))
    assert f[100] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    # a spent time budget anneals fully whatever the step
    assert lr_factor(20, 10, 100, "cosine", 0.1, time_fraction=1.0) == pytest.approx(0.1)
    assert lr_factor(20, 10, 100, "cosine", 0.1, time_fraction=0.5) == pytest.approx(0.55)


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic({"w": torch.ones(3), "step": 4}, path)
    assert load_checkpoint(path)["step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary left behind
    path.write_bytes(b"torn")
    with pytest.raises(ValueError, match="ck.pt: unreadable checkpoint"):
        load_checkpoint(path)


def test_resumed_run_matches_uninterrupted_run(tiny_corpus, tmp_path):
    manifests = tiny_corpus / "manifests"
    straight = Trainer(train_config(manifests, tmp_path / "a", "train.max_epochs=2"))
    straight.run()
    steps_per_epoch = len(straight.sampler.batches)
    assert steps_per_epoch >= 3
    # "killed" in the middle of the first epoch, then resumed twice more
    Trainer(train_config(manifests, tmp_path / "b", "train.max_epochs=2", "train.stop_after_steps=2")).run()
    state = load_checkpoint(tmp_path / "b" / "last.pt")["state"]
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 2, 2)
    resumed = Trainer(train_config(manifests, tmp_path / "b", "train.max_epochs=2", "resume=true"))
    resumed.run()
    assert resumed.state["step"] == straight.state["step"] == 2 * steps_per_epoch
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    with open(tmp_path / "a" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert all(0 <= float(r["dev_cer"]) for r in rows)
    assert {"config.yaml", "tokenizer.json", "norm.json", "model.pt", "last.pt"} <= {
        p.name for p in (tmp_path / "a").iterdir()}
