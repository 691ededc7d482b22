"""DistributedDataParallel on the CPU: torchrun with two gloo processes against one process that accumulates the
same two batches per optimizer step (DDP averages gradients over ranks as accumulation averages over steps)."""

import csv
import os
import subprocess
import sys

import pytest
import torch

from asr.training import distributed
from asr.training.trainer import Trainer
from asr.weights import load_checkpoint

from .conftest import ROOT, TINY_MODEL, train_config

# no dropout, no SpecAugment: the two runs draw different random numbers, so none may matter
SAME_RANDOMNESS = ["specaug.enabled=false", "model.speller.dropout=0", "model.listener.dropout=0", "device=cpu",
                   "train.max_epochs=1"]


def test_a_plain_run_is_a_world_of_one(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    env = distributed.setup("cpu")
    assert (env.rank, env.world_size, env.main, env.enabled) == (0, 1, True, False)
    assert env.sum([1.0, 2.0]) == [1.0, 2.0] and env.from_main([3.0]) == [3.0] and env.gather("x") == ["x"]
    assert not torch.distributed.is_initialized()
    with pytest.raises(ValueError, match="device='tpu'"):
        distributed.setup("tpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="must be integers"):
        distributed.setup("cpu")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_corpus, tmp_path):
    manifests = tiny_corpus / "manifests"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "asr.cli.train", f"data.manifest_dir={manifests}", f"exp_dir={tmp_path / 'ddp'}", *TINY_MODEL,
           *SAME_RANDOMNESS]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    single = Trainer(train_config(manifests, tmp_path / "one", *SAME_RANDOMNESS, "train.accum_steps=2"))
    single.run()

    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ddp["state"]["step"] == single.state["step"] >= 2
    for name, param in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], param, rtol=0, atol=1e-5, msg=name)
    rows = {}
    for run in ("ddp", "one"):
        with open(tmp_path / run / "train_log.csv") as f:
            rows[run] = list(csv.DictReader(f))
    assert len(rows["ddp"]) == len(rows["one"]) == 1  # rank 0 alone writes the log
    assert abs(float(rows["ddp"][0]["train_loss"]) - float(rows["one"][0]["train_loss"])) <= 1e-4
    assert rows["ddp"][0]["dev_cer"] == rows["one"][0]["dev_cer"]  # sharded dev decoding scored every utterance
    assert result.stdout.count("asr-train: best dev CER") == 1
    assert len(ddp["rng"]) == 2  # each rank's RNG state, for an exact resume of every rank
