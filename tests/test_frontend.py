import numpy as np
import pytest
import soundfile as sf
import torch

from asr.data.tokenizer import CharTokenizer
from asr.frontend import AudioError, GlobalNorm, LogMel, SpecAugment, load_audio, prepare_samples


def test_logmel_shape_and_rate():
    feats = LogMel(80)(torch.randn(16000))
    assert feats.shape == (101, 80)  # 10 ms hop, centred windows
    assert torch.isfinite(feats).all()


def test_logmel_takes_its_settings_from_a_features_block():
    wav = torch.randn(16000)
    default = LogMel.from_config({"n_mels": 40})
    assert default.settings == {"n_mels": 40, "n_fft": 512, "win_length": 400, "log_floor": 1e-6}
    assert torch.equal(default(wav), LogMel(40)(wav))  # a block with n_mels only (older model directories)
    wider = LogMel.from_config({"n_mels": 40, "n_fft": 1024, "win_length": 800})
    assert wider(wav).shape == default(wav).shape  # the frame rate stays 10 ms
    assert not torch.allclose(wider(wav), default(wav))
    silent = torch.zeros(1600)
    assert LogMel.from_config({"log_floor": 1e-3})(silent).max() == pytest.approx(np.log(1e-3))
    with pytest.raises(ValueError, match="unknown setting hop_length"):
        LogMel.from_config({"hop_length": 80})
    with pytest.raises(ValueError, match="win_length"):
        LogMel(win_length=600, n_fft=512)


def test_normalization_stats_remember_their_features(tmp_path):
    logmel = LogMel(n_mels=4, n_fft=256, win_length=200)
    norm = GlobalNorm.from_features([torch.randn(50, 4)], logmel.settings)
    norm.save(tmp_path / "norm.json")
    loaded = GlobalNorm.load(tmp_path / "norm.json")
    assert loaded.features == logmel.settings and torch.allclose(loaded.mean, norm.mean)
    loaded.check(logmel, "norm.json")  # the same settings: fine
    with pytest.raises(ValueError, match=r"^norm.json: normalization stats of features .*n_fft.: 256"):
        loaded.check(LogMel(n_mels=4), "norm.json")
    GlobalNorm(norm.mean, norm.std).check(LogMel(n_mels=4), "norm.json")  # stats without settings: not checked


def test_load_audio_downmixes_and_resamples(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32)
    path = tmp_path / "tone.wav"
    sf.write(path, stereo, 44100)
    wav = load_audio(path)
    assert wav.shape == (16000,)
    assert wav.abs().max() == pytest.approx(0.5, abs=0.02)  # mono mean of a full and a silent channel


@pytest.mark.parametrize("samples, problem", [
    (np.zeros(0, np.float32), "empty audio"),
    (np.full(1600, np.nan, np.float32), "NaN"),
    (np.zeros(160, np.float32), "too short"),
])
def test_bad_samples_name_the_problem(samples, problem):
    with pytest.raises(AudioError, match=problem) as err:
        prepare_samples(samples, 16000, name="clip.wav")
    assert str(err.value).startswith("clip.wav: ")


def test_unreadable_files_give_one_line(tmp_path):
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"not audio at all" * 10)
    for path, problem in ((garbage, "cannot read audio"), (tmp_path / "missing.wav", "no such file")):
        with pytest.raises(AudioError) as err:
            load_audio(path)
        message = str(err.value)
        assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_global_norm_gives_zero_mean_unit_variance(tmp_path):
    feats = [torch.randn(50 + 10 * i, 4) * 3 + 7 for i in range(5)]
    norm = GlobalNorm.from_features(feats)
    out = torch.cat([norm(f) for f in feats])
    assert out.mean(0).abs().max() < 1e-4
    assert (out.std(0, unbiased=False) - 1).abs().max() < 1e-4
    norm.save(tmp_path / "norm.json")
    again = GlobalNorm.load(tmp_path / "norm.json")
    assert torch.allclose(again.mean, norm.mean) and torch.allclose(again.std, norm.std)


def test_specaugment_masks_only_in_training():
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=20, time_width_ratio=0.2)
    x = torch.randn(4, 200, 80) + 5  # no zeros before masking
    aug.train()
    y = aug(x)
    assert y.shape == x.shape
    assert (y == 0).any() and ((y == 0) | (y == x)).all()
    aug.eval()
    assert torch.equal(aug(x), x)


def test_tokenizer_round_trip(tmp_path):
    texts = ["HELLO WORLD", "IT'S A TEST"]
    tok = CharTokenizer.build(texts)
    for text in texts:
        ids = tok.encode(text)
        assert min(ids) > tok.unk
        assert tok.decode(ids) == text
    assert tok.encode("Z")[0] == tok.unk
    tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(tmp_path / "tok.json").symbols == tok.symbols
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        CharTokenizer.load(tmp_path / "bad.json")
