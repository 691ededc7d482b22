"""Shared fixtures: a tiny synthetic corpus in the LibriSpeech layout, prepared, and a briefly trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from asr import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
TINY_SYNTH = ["n_train=40", "n_dev=6", "n_test=6", "n_train_speakers=4", "n_unseen_speakers=2", "jobs=2",
              "progress=false", "max_words=12"]
TINY_MODEL = ["model.listener.channels=4", "model.listener.hidden=24", "model.listener.layers=2",
              "model.attention.attention_dim=16", "model.speller.hidden=32", "model.speller.embed_dim=16",
              "data.max_frames=6000", "data.max_batch=8", "train.warmup_steps=5", "train.lr=3e-3", "threads=1",
              "train.max_minutes=null"]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a console script of this venv, failing the test with its output if it fails."""
    exe = Path(sys.executable).parent / args[0]
    result = subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


class FakeClock:
    """A clock for a training loop's budget that moves only when a test moves it (`now`)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TickingClock(FakeClock):
    """A clock that moves `step` seconds every time it is read."""

    def __init__(self, step: float):
        super().__init__()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def train_config(manifests: Path, exp: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("train", overrides=[f"data.manifest_dir={manifests}", f"exp_dir={exp}", *TINY_MODEL,
                                           *overrides])


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A few dozen synthesized utterances, prepared: returns the folder with LibriSpeech/ and manifests/."""
    root = tmp_path_factory.mktemp("tiny")
    run("asr-synth", f"out_dir={root}", *TINY_SYNTH)
    run("asr-prepare", "--corpus", str(root / "LibriSpeech"), "--subsets", "train-synth", "dev-seen",
        "test-seen", "--train", "train-synth", "--out", str(root / "manifests"))
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus, tmp_path_factory) -> Path:
    """A model directory trained for two short epochs (its transcripts are poor; the plumbing is real)."""
    from asr.training.trainer import Trainer

    exp = tmp_path_factory.mktemp("exp")
    Trainer(train_config(tiny_corpus / "manifests", exp, "train.max_epochs=2")).run()
    return exp


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
