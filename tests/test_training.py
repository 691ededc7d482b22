import csv
import math

import pytest
import torch

from asr.cli.average import main as average_main
from asr.data.batching import BucketBatchSampler, FeatureDataset, bucket_batches, collate, perturb_speed
from asr.data.librispeech import read_manifest
from asr.data.tokenizer import CharTokenizer
from asr.decoding.greedy import greedy_decode
from asr.frontend import SAMPLE_RATE, GlobalNorm, LogMel
from asr.modeldir import export_model_dir, load_model_dir
from asr.training.average import average_checkpoints, average_state_dicts
from asr.training.schedule import lr_factor
from asr.training.trainer import Trainer
from asr.weights import load_checkpoint, save_atomic

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
    straight = Trainer(train_config(manifests, tmp_path / "a", "train.max_epochs=2", "device=cpu"))
    straight.run()
    steps_per_epoch = len(straight.sampler.batches)
    assert steps_per_epoch >= 3
    # "killed" in the middle of the first epoch, then resumed twice more
    Trainer(train_config(manifests, tmp_path / "b", "train.max_epochs=2", "train.stop_after_steps=2",
                         "device=cpu")).run()
    state = load_checkpoint(tmp_path / "b" / "last.pt")["state"]
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 2, 2)
    resumed = Trainer(train_config(manifests, tmp_path / "b", "train.max_epochs=2", "resume=true", "device=cpu"))
    resumed.run()
    assert resumed.state["step"] == straight.state["step"] == 2 * steps_per_epoch
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    logs = []
    for run in ("a", "b"):
        with open(tmp_path / run / "train_log.csv") as f:
            logs.append(list(csv.DictReader(f)))
    assert [r["epoch"] for r in logs[0]] == ["0", "1"]
    # the resumed run's log has each epoch once, with the dev figures of the uninterrupted run
    assert [(r["epoch"], r["dev_cer"], r["dev_wer"]) for r in logs[1]] == \
        [(r["epoch"], r["dev_cer"], r["dev_wer"]) for r in logs[0]]
    assert {"config.yaml", "tokenizer.json", "norm.json", "model.pt", "last.pt"} <= {
        p.name for p in (tmp_path / "a").iterdir()}


# --- distributed batches ----------------------------------------------------------------------------------
@pytest.mark.parametrize("world_size,group", [(2, 1), (3, 1), (2, 2), (4, 3)])
def test_distributed_sampler_splits_an_epoch_evenly_and_once(world_size, group):
    durations = [0.5 + (i * 7919 % 97) / 10 for i in range(301)]
    ranks = [BucketBatchSampler(durations, 3000, 20, seed=5, rank=r, world_size=world_size, group=group)
             for r in range(world_size)]
    for shortest_first in (True, False):
        per_rank = []
        for sampler in ranks:
            sampler.set_epoch(4, shortest_first=shortest_first)
            per_rank.append(list(sampler))
        # equal counts (DDP never waits for a missing rank), whole accumulation groups, each utterance once
        assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) % group == 0
        assert sorted(i for batches in per_rank for b in batches for i in b) == list(range(301))
        for batches in per_rank:  # the frame budget still holds after splitting
            assert all(max(int(durations[i] * 100) + 1 for i in b) * len(b) <= 3000 or len(b) == 1
                       for b in batches)
        # one process with world_size x group micro-batches per step sees what the ranks see together
        single = BucketBatchSampler(durations, 3000, 20, seed=5, group=world_size * group)
        single.set_epoch(4, shortest_first=shortest_first)
        interleaved = [b for step in zip(*per_rank) for b in step]
        assert list(single) == interleaved
    again = BucketBatchSampler(durations, 3000, 20, seed=5, rank=1, world_size=world_size, group=group)
    again.set_epoch(4)
    assert list(again) == per_rank[1]  # deterministic from (seed, epoch)
    again.set_epoch(5)
    assert list(again) != per_rank[1]


def test_sampler_in_a_world_of_one_is_the_plain_bucketing():
    durations = [float(i % 13 + 1) for i in range(100)]
    assert BucketBatchSampler(durations, max_frames=2000).batches == bucket_batches(durations, 2000, 256)
    # fewer utterances than ranks: batches are repeated rather than leaving a rank without a step
    ranks = [BucketBatchSampler([1.0] * 3, 100, rank=r, world_size=4) for r in range(4)]
    assert [len(list(s)) for s in ranks] == [1, 1, 1, 1]


# --- speed perturbation -----------------------------------------------------------------------------------
def test_speed_perturbation_changes_tempo_and_pitch():
    t = torch.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    wav = torch.sin(2 * math.pi * 1000 * t)
    fast = perturb_speed(wav, 1.1)
    assert abs(len(fast) - len(wav) / 1.1) <= 2
    peak = torch.fft.rfft(fast).abs().argmax().item() * SAMPLE_RATE / len(fast)
    assert abs(peak - 1100) < 5  # pitch up by the factor, Kaldi-style (not a tempo-only change)
    logmel = LogMel(80)
    frames, fast_frames = len(logmel(wav)), len(logmel(fast))
    assert abs(fast_frames - frames / 1.1) <= 1.5


def test_speed_perturbed_dataset_draws_a_factor_per_utterance_and_epoch(tiny_corpus):
    manifests = tiny_corpus / "manifests"
    utts = read_manifest(manifests / "train-synth.jsonl")[:12]
    tok, norm, logmel = CharTokenizer.load(manifests / "tokenizer.json"), GlobalNorm.load(manifests / "norm.json"), \
        LogMel(80)
    plain = FeatureDataset(utts, tok, logmel, norm)
    fast = FeatureDataset(utts, tok, logmel, norm, speed_perturb=[1.1])
    for i in range(3):
        assert abs(len(fast[i]["feats"]) - len(plain[i]["feats"]) / 1.1) <= 1.5
        assert torch.equal(fast[i]["tokens"], plain[i]["tokens"])
    assert not fast.cache  # perturbed features are never cached
    mixed = FeatureDataset(utts, tok, logmel, norm, speed_perturb=[0.9, 1.0, 1.1], seed=3)
    epoch0 = [mixed.speed_factor(i) for i in range(12)]
    assert epoch0 == [mixed.speed_factor(i) for i in range(12)] and len(set(epoch0)) > 1
    mixed.set_epoch(1)
    assert [mixed.speed_factor(i) for i in range(12)] != epoch0
    with pytest.raises(ValueError, match="speed_perturb"):
        FeatureDataset(utts, tok, logmel, norm, speed_perturb=[0.0, 1.0])


# --- precision, accumulation, resume ----------------------------------------------------------------------
def test_bf16_autocast_trains_on_cpu(tiny_corpus, tmp_path):
    losses, dtypes = {}, []
    for precision in ("bf16", "fp32"):
        trainer = Trainer(train_config(tiny_corpus / "manifests", tmp_path, f"train.precision={precision}",
                                       "device=cpu", "specaug.enabled=false", "train.warmup_steps=1",
                                       "model.speller.dropout=0", "model.listener.dropout=0"))
        trainer.model.listener.register_forward_hook(lambda m, i, out: dtypes.append(out[0].dtype))
        batch = collate([trainer.train_set[i] for i in trainer.sampler.batches[0]])
        losses[precision] = []
        for _ in range(8):
            trainer.set_lr()
            losses[precision].append(trainer.train_step([batch])["loss"])
    assert dtypes[0] == torch.bfloat16 and dtypes[-1] == torch.float32  # autocast really ran the listener in bf16
    bf16 = losses["bf16"]
    assert all(map(math.isfinite, bf16)) and bf16 == sorted(bf16, reverse=True) and bf16[-1] < 0.95 * bf16[0]
    for low, full in zip(bf16, losses["fp32"]):  # and it tracks the fp32 run
        assert abs(low - full) < 0.03 * full
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Trainer(train_config(tiny_corpus / "manifests", tmp_path, "train.precision=fp16", "device=cpu"))


def test_the_front_end_follows_the_config_and_must_match_the_stats(tiny_corpus, tmp_path):
    manifests = tiny_corpus / "manifests"
    with pytest.raises(ValueError, match=r"norm.json: normalization stats of features .* compute them again"):
        Trainer(train_config(manifests, tmp_path / "a", "features.n_fft=1024", "device=cpu"))
    # stats made with the same settings: the trainer's features and the model directory's are those
    norm = GlobalNorm.load(manifests / "norm.json")
    stats = tmp_path / "manifests"
    stats.mkdir()
    for f in manifests.iterdir():
        (stats / f.name).write_bytes(f.read_bytes())
    GlobalNorm(norm.mean, norm.std, {**norm.features, "n_fft": 1024, "win_length": 800}).save(stats / "norm.json")
    trainer = Trainer(train_config(stats, tmp_path / "b", "features.n_fft=1024", "features.win_length=800",
                                   "train.max_epochs=1", "train.stop_after_steps=1", "device=cpu"))
    assert trainer.train_set.logmel.settings["win_length"] == 800
    trainer.run()
    _, _, logmel, _ = load_model_dir(tmp_path / "b")
    assert logmel.settings == {"n_mels": 80, "n_fft": 1024, "win_length": 800, "log_floor": 1e-6}


def test_accumulated_step_equals_one_step_on_the_joined_gradient(tiny_corpus, tmp_path):
    overrides = ["device=cpu", "specaug.enabled=false", "model.speller.dropout=0", "model.listener.dropout=0"]
    one = Trainer(train_config(tiny_corpus / "manifests", tmp_path / "a", "train.accum_steps=2", *overrides))
    two = Trainer(train_config(tiny_corpus / "manifests", tmp_path / "b", *overrides))
    a, b = (collate([one.train_set[i] for i in idx]) for idx in one.sampler.batches[:2])
    one.train_step([a, b])
    two.optimizer.zero_grad()  # the reference: one step on the mean of the two batches' gradients, by hand
    for batch in (a, b):
        out = two.model(batch["feats"], batch["feat_lengths"], batch["tokens"], batch["token_lengths"])
        (out["loss"] / 2).backward()
    torch.nn.utils.clip_grad_norm_(two.model.parameters(), two.cfg.train.grad_clip)
    two.optimizer.step()
    for (name, p), q in zip(one.model.named_parameters(), two.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("augmentation", [
    ["specaug.enabled=true", "specaug.start_epoch=0"],
    ["augment=multi", "augment.start_epoch=0", "augment.reverb.rooms=8"],  # multi-condition audio, drawn per read
], ids=["specaug", "multi_condition"])
def test_mid_epoch_resume_is_exact_with_accumulation_augmentation_and_workers(tiny_corpus, tmp_path, augmentation):
    manifests = tiny_corpus / "manifests"
    # dropout stays on: its RNG must be restored too
    common = ["train.max_epochs=1", "train.accum_steps=2", "data.speed_perturb=[0.9,1.0,1.1]", *augmentation,
              "device=cpu"]
    straight = Trainer(train_config(manifests, tmp_path / "a", *common))
    straight.run()
    assert straight.state["step"] >= 2
    Trainer(train_config(manifests, tmp_path / "b", *common, "train.stop_after_steps=1")).run()
    assert load_checkpoint(tmp_path / "b" / "last.pt")["state"]["batch_in_epoch"] == 2
    resumed = Trainer(train_config(manifests, tmp_path / "b", *common, "resume=true", "data.num_workers=2"))
    resumed.run()
    assert resumed.state["step"] == straight.state["step"]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


# --- checkpoint averaging ---------------------------------------------------------------------------------
def test_average_is_the_elementwise_mean(tmp_path):
    torch.manual_seed(0)
    a = {"w": torch.randn(4, 3), "b": torch.randn(3), "count": torch.tensor(5)}
    b = {"w": torch.randn(4, 3), "b": torch.randn(3), "count": torch.tensor(7)}
    save_atomic(a, tmp_path / "epoch0.pt")
    save_atomic({"model": b, "step": 3}, tmp_path / "epoch1.pt")  # a training checkpoint holds "model"
    mean = average_checkpoints([tmp_path / "epoch0.pt", tmp_path / "epoch1.pt"])
    assert torch.equal(mean["w"], (a["w"] + b["w"]) / 2) and torch.equal(mean["b"], (a["b"] + b["b"]) / 2)
    assert mean["count"].item() == 7 and mean["w"].dtype == torch.float32
    with pytest.raises(ValueError, match="different parameters"):
        average_state_dicts([a, {"w": a["w"]}])


def test_asr_average_best_and_last_epochs_give_a_decoding_model(tiny_model, tiny_corpus, tmp_path, capsys):
    assert average_main([str(tiny_model), "--best", "1", "--out", str(tmp_path / "best.pt")]) == 0
    best, chosen = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tiny_model / "model.pt")
    assert all(torch.equal(best[k], chosen[k]) for k in chosen)  # model.pt is the best epoch by dev CER
    assert average_main([str(tiny_model), "--last", "2", "--out", str(tmp_path / "avg.pt")]) == 0
    assert "epoch0.pt, epoch1.pt" in capsys.readouterr().out
    e0, e1 = load_checkpoint(tiny_model / "epoch0.pt"), load_checkpoint(tiny_model / "epoch1.pt")
    avg = load_checkpoint(tmp_path / "avg.pt")
    assert all(torch.equal(avg[k], (e0[k] + e1[k]) / 2) for k in e0 if e0[k].is_floating_point())
    model, tok, logmel, norm = load_model_dir(export_model_dir(tiny_model, tmp_path / "model", tmp_path / "avg.pt"))
    utts = read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")[:2]
    batch = collate([FeatureDataset(utts, tok, logmel, norm)[i] for i in range(2)])
    hyps, _ = greedy_decode(model, batch["feats"], batch["feat_lengths"])
    assert len(hyps) == 2 and all(0 <= t < len(tok) for h in hyps for t in h)
    assert average_main([str(tiny_model), "--last", "9", "--out", str(tmp_path / "x.pt")]) == 2
    assert "9 epochs asked, 2 epoch checkpoints" in capsys.readouterr().err
