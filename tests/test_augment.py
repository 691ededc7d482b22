import math
import random

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from asr import CONF_DIR
from asr.data.augment import (
    Augmenter,
    GeneratedNoise,
    NoiseDirectory,
    RirDirectory,
    SimulatedRirs,
    apply_gain,
    band_limit,
    compensate_delay,
    mix_at_snr,
    pitch_shift,
    reverberate,
    simulate_rirs,
    telephone,
)
from asr.data.batching import FeatureDataset, collate
from asr.data.librispeech import read_manifest
from asr.data.tokenizer import CharTokenizer
from asr.frontend import SAMPLE_RATE, GlobalNorm, LogMel
from asr.training.trainer import Trainer

from .conftest import train_config


def speech_like(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Harmonics of a wandering 120-180 Hz pitch under a syllable-rate envelope, peak 0.5."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 150 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SAMPLE_RATE
    wav = sum(torch.sin(h * phase) / h for h in range(1, 20)) * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t))
    wav = wav + 0.01 * torch.randn(len(t), generator=gen)
    return 0.5 * wav / wav.abs().max()


def power_spectrum(wav: torch.Tensor, n_fft: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Welch's average periodogram: frequencies (n_fft // 2 + 1,) and power (n_fft // 2 + 1,)."""
    frames = wav[: len(wav) // n_fft * n_fft].reshape(-1, n_fft) * torch.hann_window(n_fft, periodic=False)
    return torch.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE), torch.fft.rfft(frames).abs().pow(2).mean(0)


def share_above(wav: torch.Tensor, hz: float) -> float:
    freqs, power = power_spectrum(wav)
    return (power[freqs > hz].sum() / power.sum()).item()


def augment_config(name: str = "multi", *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("train", overrides=[f"augment={name}", *overrides]).augment


EVERYTHING = {"pitch": {"prob": 1.0}, "reverb": {"prob": 1.0, "rooms": 4}, "noise": {"prob": 1.0},
              "telephone": {"prob": 1.0}, "gain": {"prob": 1.0}}


# --- signal functions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 20.0])
def test_mixture_has_the_requested_snr_with_tiled_noise(snr_db):
    speech = speech_like(1.0)
    noise = torch.randn(3001, generator=torch.Generator().manual_seed(1))  # shorter: tiled over the speech
    added = mix_at_snr(speech, noise, snr_db) - speech
    assert added.shape == speech.shape
    measured = 10 * math.log10(speech.pow(2).sum() / added.pow(2).sum())
    assert abs(measured - snr_db) < 0.1
    torch.testing.assert_close(added[3001:6002], added[:3001])  # the noise repeats, not zero-padded
    assert torch.equal(mix_at_snr(speech, torch.zeros(100), 10.0), speech)


def test_unit_impulse_and_delayed_impulse_leave_speech_unchanged():
    speech = speech_like(0.5)
    impulse = torch.zeros(400)
    impulse[0] = 1.0
    torch.testing.assert_close(reverberate(speech, impulse), speech, rtol=0, atol=1e-5)
    delayed = torch.zeros(400)
    delayed[37] = -0.25
    compensated = compensate_delay(delayed)
    assert compensated[0] == 1 and len(compensated) == 363 and compensated[1:].abs().sum() == 0
    torch.testing.assert_close(reverberate(speech, delayed), speech, rtol=0, atol=1e-5)


def test_reverberation_keeps_length_and_peak_and_adds_a_tail():
    speech = torch.zeros(8000)
    speech[1000] = 0.5  # a click: its echo must follow it, never precede it
    wet = reverberate(speech, simulate_rirs(1, seed=3)[0])
    assert wet.shape == speech.shape and wet.abs().max().item() == pytest.approx(0.5)
    assert wet[:1000].abs().max() < 1e-4 and wet[1000] == pytest.approx(0.5)
    assert wet[1001:].pow(2).sum() > 0.01 * 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_rooms_are_compensated_and_seeded(seed):
    rooms = simulate_rirs(4, seed)
    for rir in rooms:
        assert rir.abs().argmax() == 0 and rir[0] == 1
        assert len(rir) > 400 and rir[1:].pow(2).sum() > 0.01  # a reverberant tail
    again = simulate_rirs(4, seed)
    assert all(torch.equal(a, b) for a, b in zip(rooms, again))
    assert not torch.equal(rooms[0], simulate_rirs(1, seed + 10)[0])


def decay_time(rir: torch.Tensor) -> float:
    """RT60 estimated from the -5 to -25 dB span of Schroeder's energy decay curve."""
    curve = 10 * torch.log10(rir.pow(2).flip(0).cumsum(0).flip(0) / rir.pow(2).sum())
    return 3 * ((curve < -25).nonzero()[0] - (curve < -5).nonzero()[0]).item() / SAMPLE_RATE


def test_room_reverberation_time_follows_the_requested_rt60():
    short = [decay_time(r) for r in simulate_rirs(3, 5, rt60=(0.3, 0.3))]
    long = [decay_time(r) for r in simulate_rirs(3, 5, rt60=(0.8, 0.8))]
    assert all(0.15 < t < 0.5 for t in short) and all(0.5 < t < 1.2 for t in long), (short, long)


def test_room_bank_is_lazy_and_seeded():
    bank = SimulatedRirs(count=3, seed=7)
    assert bank._bank is None  # constructing it simulates nothing
    rng = random.Random(0)
    first = bank.sample(rng)
    assert len(bank.bank) == 3 and any(torch.equal(first, r) for r in simulate_rirs(3, 7))


def test_telephone_band_and_length():
    wav = 0.1 * torch.randn(SAMPLE_RATE + 123, generator=torch.Generator().manual_seed(0))
    phone = telephone(wav)
    assert phone.shape == wav.shape and share_above(wav, 4000) > 0.4
    assert share_above(phone, 4000) < 1e-3
    freqs, power = power_spectrum(phone)
    assert power[(freqs > 300) & (freqs < 3400)].sum() > 0.9 * power.sum()


@pytest.mark.parametrize("cutoff", [4000, 6000])
def test_band_limit_removes_energy_above_the_cutoff(cutoff):
    wav = 0.1 * torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    low = band_limit(wav, cutoff)
    assert low.shape == wav.shape
    assert share_above(low, cutoff) < 1e-3
    assert low.pow(2).sum() > 0.9 * (cutoff / 8000) * wav.pow(2).sum()  # the band below is kept
    assert torch.equal(band_limit(wav, 8000), wav)


def test_gain_scales_and_clips():
    wav = torch.tensor([0.1, -0.2, 0.5])
    torch.testing.assert_close(apply_gain(wav, -20.0), wav / 10)
    assert torch.equal(apply_gain(wav, 20.0), torch.tensor([1.0, -1.0, 1.0]))


def test_pitch_shift_moves_the_pitch_and_keeps_the_length():
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    up = pitch_shift(tone, 2.0)
    assert up.shape == tone.shape
    peak = torch.fft.rfft(up).abs().argmax().item() * SAMPLE_RATE / len(up)
    assert abs(peak - 440 * 2 ** (2 / 12)) < 5
    assert torch.equal(pitch_shift(tone, 0.0), tone)


# --- noise sources ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_the_spectral_slope(kind, slope):
    noise = GeneratedNoise([kind]).sample(4 * SAMPLE_RATE, random.Random(0))
    freqs, power = power_spectrum(noise)
    band = (freqs > 100) & (freqs < 6000)
    fitted = np.polyfit(np.log10(freqs[band].numpy()), np.log10(power[band].numpy()), 1)[0]
    assert abs(fitted - slope) < 0.15, fitted


def test_generated_noise_kinds_are_seeded_and_sound_as_named():
    for kind in ("white", "pink", "brown", "hum", "tones", "music"):
        source = GeneratedNoise([kind])
        a, b = source.sample(12345, random.Random(3)), source.sample(12345, random.Random(3))
        assert a.shape == (12345,) and torch.equal(a, b) and torch.isfinite(a).all(), kind
        assert a.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-3)
        assert not torch.equal(a, source.sample(12345, random.Random(4)))
    freqs, power = power_spectrum(GeneratedNoise(["hum"]).sample(2 * SAMPLE_RATE, random.Random(1)), 8000)
    assert freqs[power.argmax()].item() % 50 == 0 or freqs[power.argmax()].item() % 60 == 0
    freqs, power = power_spectrum(GeneratedNoise(["tones"]).sample(2 * SAMPLE_RATE, random.Random(1)))
    assert 180 < freqs[power.argmax()].item() < 4200
    with pytest.raises(ValueError, match="purple"):
        GeneratedNoise(["purple"])


def write_wav(path, samples, rate=SAMPLE_RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate)


def test_noise_and_rir_directories(tmp_path):
    musan = tmp_path / "musan"
    write_wav(musan / "noise" / "free-sound" / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    write_wav(musan / "music" / "b.flac", 0.2 * np.sin(np.arange(40000) / 10))
    write_wav(musan / "speech" / "c.wav", np.ones(20000) * 0.3)  # not among the default subdirs
    source = NoiseDirectory(musan)
    assert len(source.files) == 2
    for seed in range(6):
        crop = source.sample(30000, random.Random(seed))  # the 8 kHz file: 1 s at 16 kHz, tiled
        assert crop.shape == (30000,) and torch.isfinite(crop).all() and not (crop == 0.3).all()
        assert torch.equal(crop, source.sample(30000, random.Random(seed)))
    (tmp_path / "empty" / "noise").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty: no audio files") as err:
        NoiseDirectory(tmp_path / "empty")
    assert "\n" not in str(err.value)

    rirs = tmp_path / "RIRS_NOISES"
    rir = np.zeros(4000)
    rir[50], rir[300] = 0.5, 0.2
    write_wav(rirs / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav", rir)
    write_wav(rirs / "real_rirs_isotropic_noises" / "RVB2014_type1_noise_largeroom1_1.wav", np.ones(4000))
    source = RirDirectory(rirs)
    assert len(source.files) == 1  # the recorded noise is not an impulse response
    got = source.sample(random.Random(0))
    assert got[0] == 1 and got[250] == pytest.approx(0.4, abs=1e-3)  # 16-bit file
    with pytest.raises(ValueError, match="no .wav impulse responses"):
        RirDirectory(tmp_path / "empty")

    aug = Augmenter.from_config(augment_config("musan", f"augment.noise_dir={musan}", f"augment.rir_dir={rirs}",
                                               "augment.reverb.prob=1", "augment.noise.prob=1",
                                               "augment.babble.prob=0"))
    wav = speech_like(1.0)
    assert aug(wav, random.Random(0)).shape == wav.shape


# --- the augmenter ----------------------------------------------------------------------------------------
def test_augmenter_is_seeded_by_its_rng_alone():
    aug = Augmenter.from_config({**EVERYTHING, "babble": {"prob": 0.0}})
    wav = speech_like(1.5)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    a = aug(wav, random.Random("1:augment:0:5"))
    b = aug(wav, random.Random("1:augment:0:5"))
    assert torch.equal(a, b) and a.shape == wav.shape and a.abs().max() <= 1
    assert not torch.equal(a, aug(wav, random.Random("1:augment:1:5")))  # another epoch, another sound
    # the global generators (dropout, SpecAugment; restored on resume) are left alone
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state


def test_effects_apply_in_order_and_multi_leaves_a_third_clean():
    aug = Augmenter.from_config(EVERYTHING)
    assert [name for name, _ in aug.draw(random.Random(0))] == ["pitch", "reverb", "noise", "telephone", "gain"]
    multi = Augmenter.from_config(augment_config("multi"))
    assert multi.active and 0.3 <= multi.clean_share <= 0.4
    clean = sum(not multi.draw(random.Random(f"0:augment:0:{i}")) for i in range(2000)) / 2000
    assert abs(clean - multi.clean_share) < 0.04
    none = Augmenter.from_config(augment_config("none"))
    assert not none.active and none.describe() == "none"


def test_babble_mixes_other_utterances_at_the_snr():
    others = [speech_like(0.3 + 0.1 * k, seed=k) for k in range(10)]
    calls = []
    aug = Augmenter(babble_prob=1.0, babble_talkers=(3, 7), babble_snr_db=(5.0, 5.0),
                    utterance=lambda i: calls.append(i) or others[i], n_utterances=len(others))
    wav = speech_like(1.0, seed=99)
    out = aug(wav, random.Random(2))
    assert 3 <= len(calls) <= 7 and len(set(calls)) == len(calls)
    added = out - wav  # the peak stays below 1 here: no rescaling, so the SNR holds exactly
    assert 10 * math.log10(wav.pow(2).sum() / added.pow(2).sum()) == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("override,option", [
    ("augment.noise.prob=1.5", "augment.noise.prob"),
    ("augment.noise.snr_db=[20,0]", "augment.noise.snr_db"),
    ("augment.noise.kinds=[purple]", "augment.noise.kinds"),
    ("augment.babble.prob=0.8", "augment.noise.prob + augment.babble.prob"),
    ("augment.reverb.rooms=0", "augment.reverb.rooms"),
    ("augment.reverb.rt60=[0.05,0.5]", "augment.reverb.rt60"),
    ("augment.band_limit.cutoff_hz=[]", "augment.band_limit.cutoff_hz"),
])
def test_bad_config_names_the_option(override, option):
    with pytest.raises(ValueError, match=option.replace("+", r"\+").replace(".", r"\.")) as err:
        Augmenter.from_config(augment_config("multi", override))
    assert "\n" not in str(err.value)


def test_musan_config_requires_its_folders(tmp_path):
    with pytest.raises(ValueError, match=r"augment\.(noise|rir)_dir is required"):
        Augmenter.from_config(augment_config("musan"))
    with pytest.raises(ValueError, match=r"augment\.noise_dir=/nonexistent: no such directory"):
        Augmenter.from_config(augment_config("musan", "augment.noise_dir=/nonexistent", "augment.reverb.prob=0"))
    with pytest.raises(ValueError, match=f"{tmp_path}: no .wav impulse responses"):
        Augmenter.from_config(augment_config("musan", f"augment.noise_dir={tmp_path}", f"augment.rir_dir={tmp_path}"))


# --- the dataset and the trainer --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_parts(tiny_corpus):
    manifests = tiny_corpus / "manifests"
    utts = read_manifest(manifests / "train-synth.jsonl")[:16]
    return utts, CharTokenizer.load(manifests / "tokenizer.json"), LogMel(80), GlobalNorm.load(manifests / "norm.json")


def test_dataset_augments_only_what_the_draw_says(corpus_parts):
    utts, tok, logmel, norm = corpus_parts
    plain = FeatureDataset(utts, tok, logmel, norm, seed=1)
    idle = FeatureDataset(utts, tok, logmel, norm, seed=1, augment=Augmenter())  # does nothing: dropped
    assert idle.augment is None and idle.waves is None
    config = augment_config("multi", "augment.reverb.rooms=8")
    train = FeatureDataset(utts, tok, logmel, norm, seed=1, augment=Augmenter.from_config(config))
    train.preload()
    assert len(train.waves) == len(utts) and all(w.dtype == torch.int16 for w in train.waves.values())
    touched = 0
    for i in range(len(utts)):
        assert torch.equal(idle[i]["feats"], plain[i]["feats"])
        plan = train.augment.draw(train.augment_rng(i))
        same = torch.equal(train[i]["feats"], plain[i]["feats"])
        assert same == (not plan), (i, plan)
        assert torch.equal(train[i]["tokens"], plain[i]["tokens"])
        assert train[i]["feats"].shape == plain[i]["feats"].shape  # no effect changes the duration
        touched += bool(plan)
    assert 0 < touched < len(utts)
    train.set_epoch(1)
    assert any(not torch.equal(train[i]["feats"], plain[i]["feats"]) for i in range(len(utts)))


def batches(dataset: FeatureDataset, workers: int) -> list[torch.Tensor]:
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]],
                                         collate_fn=collate, num_workers=workers)
    return [b["feats"] for b in loader]


def test_augmented_items_are_the_same_in_workers_and_across_instances(corpus_parts):
    utts, tok, logmel, norm = corpus_parts
    config = augment_config("multi", "augment.reverb.rooms=8", "augment.noise.prob=0.4", "augment.babble.prob=0.3")
    runs = []
    for workers in (0, 0, 1):
        dataset = FeatureDataset(utts, tok, logmel, norm, seed=4, speed_perturb=[0.9, 1.0, 1.1],
                                 augment=Augmenter.from_config(config))
        dataset.set_epoch(2)
        runs.append(batches(dataset, workers))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    # a worker runs torch on one thread, which may sum FFTs and convolutions in another order than the main
    # process: the same draws then agree to rounding, where a different draw would differ by whole units
    for a, b in zip(runs[0], runs[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-3)
    clean = FeatureDataset(utts, tok, logmel, norm, seed=4, speed_perturb=[0.9, 1.0, 1.1])
    clean.set_epoch(2)
    assert any(not torch.equal(a, b) for a, b in zip(runs[0], batches(clean, 0)))


def test_trainer_augments_the_training_set_only(tiny_corpus, tmp_path, capsys):
    trainer = Trainer(train_config(tiny_corpus / "manifests", tmp_path, "augment=multi", "device=cpu"))
    assert trainer.train_set.augment is not None and trainer.train_set.augment.babble is not None
    assert trainer.dev_set.augment is None
    assert "training augmentation: pitch 0.1" in capsys.readouterr().out
    plain = Trainer(train_config(tiny_corpus / "manifests", tmp_path / "b", "device=cpu"))
    assert plain.train_set.augment is None
    # conf/augment/multi.yaml starts at epoch 1: epoch 0 reads clean features, epoch 1 augmented ones
    data = trainer.train_set
    assert data.augment_start_epoch == 1
    clean = [data[i]["feats"] for i in range(len(data))]
    data.set_epoch(1)
    augmented = [data[i]["feats"] for i in range(len(data))]
    data.set_epoch(0)
    assert all(torch.equal(a, data[i]["feats"]) for i, a in enumerate(clean))
    assert sum(not torch.equal(a, b) for a, b in zip(clean, augmented)) > len(data) // 3
