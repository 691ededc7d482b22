"""recipes/librispeech/run.sh end to end without the internet: the tiny synthetic corpus packed as openslr
archives (train-clean-100, dev-clean, dev-other, test-clean, test-other) and served from 127.0.0.1, the noise
corpora's stages on stand-ins of MUSAN and RIRS_NOISES, and what the training stage is told about them; and the
real LibriSpeech recordings kept in tests/data."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from omegaconf import OmegaConf

from asr.data.librispeech import read_manifest, scan_subset
from asr.frontend import load_audio

from .archive_server import ArchiveServer
from .conftest import ROOT, TINY_MODEL
from .test_download import REAL, make_archive
from .test_download_noise import MUSAN_WAVS, RIRS_WAVS, make_musan, make_rirs

# openslr subset name <- tiny synthetic subset standing in for it
STAND_INS = {"train-clean-100": "train-synth", "dev-clean": "dev-seen", "dev-other": "dev-unseen",
             "test-clean": "test-seen", "test-other": "test-unseen"}
EVAL = ["dev-clean", "dev-other", "test-clean", "test-other"]
STAGES = ["download", "extract", "manifests", "stats", "tokenizer", "train", "average", "ctc", "decode", "score"]
RUN = ROOT / "recipes" / "librispeech" / "run.sh"


def recipe_env(*front: Path) -> dict[str, str]:
    """The environment run.sh runs in: this venv's console scripts on PATH (after `front`), no progress bars."""
    path = ":".join(str(p) for p in (*front, Path(sys.executable).parent))
    return {**os.environ, "PATH": f"{path}:{os.environ['PATH']}", "TQDM_DISABLE": "1"}


def test_real_recordings_read_as_librispeech():
    """The five real LibriSpeech FLAC files: 16 kHz mono, header duration = decoded samples, one transcript line
    per recording and a recording per line."""
    lines = {}
    for transcript in REAL.rglob("*.trans.txt"):
        for line in transcript.read_text().splitlines():
            uid, text = line.split(" ", 1)
            lines[uid] = text
            assert text == text.upper().strip() and text
    flacs = sorted(REAL.rglob("*.flac"))
    assert sorted(f.stem for f in flacs) == sorted(lines) and len(flacs) == 5
    utts, problems = scan_subset(REAL)
    assert problems == []
    for flac, utt in zip(flacs, utts):
        info = sf.info(str(flac))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        audio = load_audio(str(flac))
        assert audio.dim() == 1 and audio.numel() == info.frames
        assert utt.duration == pytest.approx(audio.numel() / 16000)
        assert 0 < audio.abs().max() <= 1.0
        assert utt.text == lines[utt.id]


@pytest.mark.slow
def test_librispeech_recipe_end_to_end(tiny_corpus, tmp_path):
    """Every stage on clean speech (--augment none skips the noise stages 3 and 4; they have tests of their own)."""
    archives = tmp_path / "served"
    archives.mkdir()
    md5s = {name: make_archive(archives / f"{name}.tar.gz", tiny_corpus / "LibriSpeech" / synth, name)
            for name, synth in STAND_INS.items()}
    data, exp = tmp_path / "data", tmp_path / "exp"
    env = recipe_env()
    with ArchiveServer() as server:
        for name in md5s:
            server.files[f"/12/{name}.tar.gz"] = (archives / f"{name}.tar.gz").read_bytes()
        server.cut["/12/train-clean-100.tar.gz"] = 50_000  # a dropped connection on the way
        data_opts = [f"base_url={server.url}", "tokenizer.type=bpe", "tokenizer.vocab_size=60",
                     *(f"archives.{name}.md5={md5}" for name, md5 in md5s.items())]
        train_opts = [*TINY_MODEL, "train.max_epochs=2", "data.speed_perturb=null", "data.num_workers=0",
                      "data.dev_max_utts=6"]
        cmd = ["bash", str(RUN), "--data", str(data), "--exp", str(exp), "--data-opts", " ".join(data_opts),
               "--augment", "none", "--train", " ".join(train_opts), "--average", "2", "--ctc", "ctc.hidden=16"]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert len(server.requests) == 6  # five archives, one of them resumed once; no noise corpus
        headers = [line for line in result.stdout.splitlines() if line.startswith("=== stage")]
        assert headers == ["=== stage 1: download ===", "=== stage 2: extract ===",
                           "=== stage 3: noise_download skipped (--augment none) ===",
                           "=== stage 4: noise_extract skipped (--augment none) ===",
                           *(f"=== stage {n}: {name} ===" for n, name in enumerate(
                               [*STAGES[2:], "results"], start=5))]
        assert not (data / "musan").exists() and not (data / "RIRS_NOISES").exists()
        assert ("/12/train-clean-100.tar.gz", "bytes=50000-", len(server.files["/12/train-clean-100.tar.gz"])
                - 50_000) in server.requests

        # idempotent: the data stages again fetch, extract and rewrite nothing
        manifest = data / "manifests" / "train.jsonl"
        before = {p: p.stat().st_mtime_ns for p in [manifest, data / "manifests" / "tokenizer.json",
                                                    data / "manifests" / "norm.json"]}
        again = subprocess.run([*cmd, "--stage", "1", "--stop-stage", "7"], capture_output=True, text=True,
                               env=env)
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(server.requests) == 6
        assert again.stdout.count("MD5 verified earlier") == 5
        assert {p: p.stat().st_mtime_ns for p in before} == before

    # the corpus came through the archives intact
    for name, synth in STAND_INS.items():
        got = read_manifest(data / "manifests" / f"{name}.jsonl")
        want = read_manifest(tiny_corpus / "manifests" / f"{synth}.jsonl") if synth in (
            "train-synth", "dev-seen", "test-seen") else None
        assert len(got) > 0 and all(Path(u.audio).is_relative_to(data / "LibriSpeech" / name) for u in got)
        if want is not None:
            assert [(u.id, u.text, u.duration) for u in got] == [(u.id, u.text, u.duration) for u in want]
        assert (data / "archives" / f"{name}.tar.gz.extracted").is_file()
    assert [u.id for u in read_manifest(manifest)] == [u.id for u in read_manifest(
        data / "manifests" / "train-clean-100.jsonl")]
    tokenizer = json.loads((data / "manifests" / "tokenizer.json").read_text())
    assert tokenizer["type"] == "sentencepiece" and tokenizer["model_type"] == "bpe"
    assert (exp / "las" / "tokenizer.json").read_text() == (data / "manifests" / "tokenizer.json").read_text()

    results = json.loads((exp / "results.json").read_text())
    assert list(results["stage_seconds"]) == STAGES
    for part in EVAL:
        row = results[part]
        assert row["utterances"] == 6 and row["words"] > 0 and row["rtf"] > 0
        assert row["wer"] == pytest.approx(100 * (row["sub"] + row["del"] + row["ins"]) / row["words"], abs=0.01)
        # decoded with stage 10's model (the same weights with a fitted CTC head, or its own when that is better)
        assert json.loads((exp / "decode" / part / "decode.json").read_text())["model_dir"] == str(exp / "las_ctc")
        hyp = (exp / "decode" / part / "hyp.txt").read_text().splitlines()
        ref = (exp / "decode" / part / "ref.txt").read_text().splitlines()
        assert len(hyp) == len(ref) == 6
        assert f"| {part} |" in result.stdout
    passes = OmegaConf.load(ROOT / "conf" / "fit_ctc.yaml").fit.passes
    assert len(list(csv.DictReader((exp / "las_ctc" / "fit_ctc_log.csv").open()))) == passes
    if shutil.which("asr-average", path=env["PATH"]):
        assert (exp / "model_avg" / "model.pt").is_file()
    else:  # the average stage is optional until asr-average exists; decoding then uses the best epoch
        assert "asr-average is not installed" in result.stdout


def test_librispeech_recipe_noise_stages(tmp_path):
    """Stages 3 and 4 fetch (MD5-checked) and extract MUSAN and RIRS_NOISES into DATA/musan and DATA/RIRS_NOISES,
    once; with --augment none they do nothing."""
    served = tmp_path / "served"
    served.mkdir()
    md5s = {"musan": make_musan(served / "musan.tar.gz"), "rirs_noises": make_rirs(served / "rirs_noises.zip")}
    data, exp = tmp_path / "data", tmp_path / "exp"
    with ArchiveServer() as server:
        server.files["/17/musan.tar.gz"] = (served / "musan.tar.gz").read_bytes()
        server.files["/28/rirs_noises.zip"] = (served / "rirs_noises.zip").read_bytes()
        data_opts = [f"base_url={server.url}", *(f"noise.{name}.md5={md5}" for name, md5 in md5s.items())]
        cmd = ["bash", str(RUN), "--data", str(data), "--exp", str(exp), "--data-opts", " ".join(data_opts),
               "--stage", "3", "--stop-stage", "4"]

        skipped = subprocess.run([*cmd, "--augment", "none"], capture_output=True, text=True, env=recipe_env())
        assert skipped.returncode == 0, skipped.stdout[-2000:] + skipped.stderr[-2000:]
        assert "=== stage 3: noise_download skipped (--augment none) ===" in skipped.stdout
        assert server.requests == [] and not data.exists()

        result = subprocess.run(cmd, capture_output=True, text=True, env=recipe_env())
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert [r[0] for r in server.requests] == ["/17/musan.tar.gz", "/28/rirs_noises.zip"]
        assert result.stdout.count("downloaded, MD5 ok") == 2
        for wav in MUSAN_WAVS + RIRS_WAVS:
            assert sf.info(str(data / wav)).samplerate == 16000
        assert {p.name for p in data.iterdir()} == {"archives", "musan", "RIRS_NOISES"}
        assert list(json.loads((exp / "stage_seconds.json").read_text())) == ["noise_download", "noise_extract"]

        again = subprocess.run(cmd, capture_output=True, text=True, env=recipe_env())
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(server.requests) == 2 and again.stdout.count("MD5 verified earlier") == 2


def test_librispeech_train_stage_gets_the_noise_corpora(tmp_path):
    """Stage 8 passes augment=musan and the folders of stages 3 and 4 to asr-train, or augment=none and no
    folders with --augment none (a stand-in asr-train records its arguments)."""
    bin_dir, args_file = tmp_path / "bin", tmp_path / "args.txt"
    bin_dir.mkdir()
    (bin_dir / "asr-train").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {args_file}\n")
    (bin_dir / "asr-train").chmod(0o755)
    data, exp = tmp_path / "data", tmp_path / "exp"
    cmd = ["bash", str(RUN), "--data", str(data), "--exp", str(exp), "--stage", "8", "--stop-stage", "8"]

    def train_args(*options: str) -> list[str]:
        result = subprocess.run([*cmd, *options], capture_output=True, text=True, env=recipe_env(bin_dir))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "=== stage 8: train ===" in result.stdout
        return args_file.read_text().splitlines()

    args = train_args()  # musan is the default
    assert args[-3:] == ["augment=musan", f"augment.noise_dir={data}/musan", f"augment.rir_dir={data}/RIRS_NOISES"]
    assert args[:2] == ["--config-name", "librispeech/las_100h"]
    args = train_args("--augment", "none", "--train", "train.max_epochs=1")
    assert [a for a in args if a.startswith("augment")] == ["augment=none"] and args[-1] == "train.max_epochs=1"

    wrong = subprocess.run([*cmd, "--augment", "babble"], capture_output=True, text=True, env=recipe_env(bin_dir))
    assert wrong.returncode == 2 and wrong.stderr.strip() == "run.sh: --augment is musan or none, not babble"
