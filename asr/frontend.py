"""Audio front end: load any soundfile-readable file, log-mel features, global normalization, SpecAugment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # samples between feature frames (10 ms): the frame rate every part of the package counts in
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH
MIN_SECONDS = 0.1  # shorter clips cannot give the listener enough frames to attend to


class AudioError(Exception):
    """A file that cannot be transcribed; the message is one line naming the file and the problem."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read a file, down-mix to mono and resample. Returns float32 samples (N,) in [-1, 1]."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types; all mean the same thing to a user
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not Path(path).exists():
            reason = "no such file"
        raise AudioError(f"{path}: cannot read audio ({reason})") from None
    return prepare_samples(data, rate, sample_rate, name=str(path))


def prepare_samples(data: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE, name: str = "<array>"
                    ) -> torch.Tensor:
    """Check and convert samples (N,) or (N, channels) at `rate` to mono float32 (M,) at `sample_rate`."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1:
        raise AudioError(f"{name}: expected samples (N,) or (N, channels), got shape {data.shape}")
    if data.size == 0:
        raise AudioError(f"{name}: empty audio")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if data.size / rate < MIN_SECONDS:
        raise AudioError(f"{name}: too short ({data.size / rate:.3f} s, need at least {MIN_SECONDS} s)")
    wav = torch.from_numpy(data)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    return wav


class LogMel(torch.nn.Module):
    """Log-mel filterbank: samples (N,) -> features (T, n_mels), windows of `win_length` samples every 10 ms.
    The settings are a config's `features` block (conf/train.yaml), kept in a model directory's config.yaml and
    in the normalization stats computed with them."""

    def __init__(self, n_mels: int = 80, n_fft: int = 512, win_length: int = 400, log_floor: float = 1e-6,
                 sample_rate: int = SAMPLE_RATE):
        super().__init__()
        if not 0 < win_length <= n_fft:
            raise ValueError(f"features: win_length ({win_length}) must be between 1 and n_fft ({n_fft})")
        self.settings = {"n_mels": n_mels, "n_fft": n_fft, "win_length": win_length, "log_floor": log_floor}
        self.log_floor = log_floor
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=HOP_LENGTH, n_mels=n_mels)

    @classmethod
    def from_config(cls, features) -> LogMel:
        """From a `features` block; keys it lacks keep their defaults (older model directories give n_mels only)."""
        known = ("n_mels", "n_fft", "win_length", "log_floor")
        unknown = sorted(set(features) - set(known))
        if unknown:
            raise ValueError(f"features: unknown setting {', '.join(unknown)} (known: {', '.join(known)})")
        return cls(**{k: features[k] for k in known if k in features})

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav) + self.log_floor).transpose(-1, -2).contiguous()


class GlobalNorm(torch.nn.Module):
    """Per-dimension mean/variance normalization with statistics from the training manifest. `features`: the
    LogMel settings the statistics were computed with (None: not recorded)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, features: dict | None = None):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-5))
        self.features = features

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    def check(self, logmel: LogMel, where: str) -> None:
        """Raise ValueError unless these statistics were computed with `logmel`'s settings (or say nothing)."""
        if self.features is not None and dict(self.features) != logmel.settings:
            raise ValueError(f"{where}: normalization stats of features {self.features}, but the config asks "
                             f"for {logmel.settings}; compute them again (asr-prepare --force --steps stats ...)")

    @classmethod
    def from_features(cls, feats: list[torch.Tensor], features: dict | None = None) -> GlobalNorm:
        """Accumulate in float64: sums over hours of frames lose precision in float32."""
        total = torch.zeros(feats[0].shape[-1], dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        frames = 0
        for f in feats:
            f = f.double()
            total += f.sum(0)
            total_sq += (f * f).sum(0)
            frames += f.shape[0]
        mean = total / frames
        std = (total_sq / frames - mean * mean).clamp_min(0).sqrt()
        return cls(mean, std, features)

    def save(self, path: str | Path) -> None:
        data = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.features is not None:
            data["features"] = dict(self.features)
        Path(path).write_text(json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GlobalNorm:
        try:
            data = json.loads(Path(path).read_text())
            return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]), data.get("features"))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: not a normalization stats file ({err})") from None


class SpecAugment(torch.nn.Module):
    """Frequency and time masks (Park et al. 2019) on normalized features (B, T, F), in training only.

    Masks are set to 0, the global mean after normalization. Time mask width is capped at a fraction of
    each batch's length so short utterances are not blanked out.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 2, time_width: int = 40,
                 time_width_ratio: float = 0.05):
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width, self.time_width_ratio = time_masks, time_width, time_width_ratio

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T) as torchaudio expects
        for _ in range(self.freq_masks):
            x = torchaudio.functional.mask_along_axis_iid(x, self.freq_width, 0.0, axis=2)
        width = min(self.time_width, int(self.time_width_ratio * x.shape[-1]))
        if width > 0:
            for _ in range(self.time_masks):
                x = torchaudio.functional.mask_along_axis_iid(x, width, 0.0, axis=3)
        return x.squeeze(1).transpose(1, 2)
