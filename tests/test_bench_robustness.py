"""The robustness benchmark: its conditions are what they say, and a run writes every field of the report."""

from __future__ import annotations

import json

import pytest
import torch

from asr.bench import robustness
from asr.data.librispeech import read_manifest
from asr.frontend import SAMPLE_RATE
from asr.segmenter import frame_energy_db

CONDITIONS = ["clean", "noise_20db", "noise_10db", "noise_5db", "noise_0db", "babble_10db", "reverb", "telephone",
              "edge_silence"]


def test_repeats_ngram():
    assert robustness.repeats_ngram("A B C D A B C D A B C D")
    assert robustness.repeats_ngram("X A B C D E A B C D F A B C D")
    assert not robustness.repeats_ngram("A B C D A B C D")  # twice is not a loop
    assert not robustness.repeats_ngram("HER HER")
    assert robustness.repeats_ngram("HER HER HER HER HER HER")  # the 4-gram HER HER HER HER, three times
    assert not robustness.repeats_ngram("")


def test_nonspeech_clips_are_many_kinds_and_deterministic():
    clips = robustness.nonspeech_clips()
    assert len(clips) >= 50
    again = robustness.nonspeech_clips()
    assert all(torch.equal(clips[k], again[k]) for k in clips)
    silent = [k for k, w in clips.items() if w.abs().max() == 0]
    clipped = [k for k, w in clips.items() if (w.abs() >= 1.0).float().mean() > 0.2]
    assert silent and clipped  # digital silence and clipped tones are among them
    assert all(1.0 <= w.numel() / SAMPLE_RATE <= 8.0 for w in clips.values())


def test_edge_silence_pads_both_ends():
    speech = {"u": 0.5 * torch.sin(torch.arange(SAMPLE_RATE) * 0.05)}
    padded = robustness.edge_silence(speech)["u"]
    extra = (padded.numel() - SAMPLE_RATE) / SAMPLE_RATE
    assert 2 * robustness.EDGE_SILENCE[0] <= extra <= 2 * robustness.EDGE_SILENCE[1]
    energy = frame_energy_db(padded)
    assert energy[:40].max() < -60 and energy[-40:].max() < -60  # 0.4 s at each end stay near silent


def test_noise_conditions_reach_their_snr(tiny_corpus):
    utts = read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")[:2]
    clean = robustness.load_waves(utts)
    for snr in (20.0, 0.0):
        noisy = robustness.noisy(clean, snr, f"noise_{snr:g}db")
        for uid, wav in clean.items():
            noise = noisy[uid] - wav
            measured = 10 * torch.log10(wav.pow(2).mean() / noise.pow(2).mean())
            assert abs(measured.item() - snr) < 0.1
    # the benchmark's noise differs from one condition to the next and is the same on every run
    a, b = robustness.noisy(clean, 10.0, "noise_10db"), robustness.noisy(clean, 10.0, "noise_10db")
    c = robustness.noisy(clean, 10.0, "other")
    uid = utts[0].id
    assert torch.equal(a[uid], b[uid]) and not torch.equal(a[uid], c[uid])


def test_benchmark_writes_every_field(tiny_corpus, tiny_model, tmp_path):
    out = tmp_path / "robustness.json"
    manifests = tmp_path / "manifests"  # the tiny corpus has no test-unseen part: dev-seen stands in for it
    manifests.mkdir()
    for part, source in (("test-seen", "test-seen"), ("test-unseen", "dev-seen")):
        (manifests / f"{part}.jsonl").write_text((tiny_corpus / "manifests" / f"{source}.jsonl").read_text())
    real = tmp_path / "real" / "LibriSpeech"
    # the real-recordings condition reads any LibriSpeech-layout folder: here, the tiny corpus's test part
    real.mkdir(parents=True)
    (real / "test-seen").symlink_to(tiny_corpus / "LibriSpeech" / "test-seen")
    report = robustness.main(["--model", str(tiny_model), "--manifests", str(manifests),
                              "--baseline", str(tiny_model), "--real", str(tmp_path / "real"),
                              "--variants-dir", "none", "--max-utts", "2", "--threads", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    for part in (saved, saved["baseline"]):
        assert list(part["conditions"]) == [*CONDITIONS, "real"]
        for row in part["conditions"].values():
            assert row["wer"] >= 0 and row["utterances"] > 0
        assert part["nonspeech"]["clips"] >= 50
        assert 0 <= part["nonspeech"]["empty"] <= part["nonspeech"]["clips"]
        assert part["looping"]["files"] == 9 * 2 + part["conditions"]["real"]["utterances"] + 60
    # the same model twice: the same figures (the real-time factors aside)
    def figures(part):
        return {name: (row["wer"], row["cer"], row["utterances"]) for name, row in part["conditions"].items()}

    assert figures(saved) == figures(saved["baseline"])
    assert saved["nonspeech"] == saved["baseline"]["nonspeech"]


@pytest.mark.parametrize("snr", [5.0])
def test_babble_is_made_of_other_voices(tiny_corpus, snr):
    seen = robustness.load_waves(read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")[:2])
    talkers = list(robustness.load_waves(read_manifest(tiny_corpus / "manifests" / "dev-seen.jsonl")).values())
    mixed = robustness.babble(seen, talkers, snr)
    for uid, wav in seen.items():
        crowd = mixed[uid] - wav
        assert crowd.abs().max() > 0
        assert abs(10 * torch.log10(wav.pow(2).mean() / crowd.pow(2).mean()).item() - snr) < 0.1
