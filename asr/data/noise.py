"""Noise sources for additive-noise augmentation: noise made on the fly (coloured noise, mains hum, tones,
music-like notes) and noise read from a folder in the MUSAN layout. Every source has
`sample(n_samples, rng) -> Tensor (n_samples,)`, float32 at 16 kHz, with all randomness drawn from `rng`."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
from scipy.fft import next_fast_len

from ..frontend import SAMPLE_RATE, prepare_samples

NOISE_KINDS = ("white", "pink", "brown", "hum", "tones", "music")
COLOUR_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^alpha
AUDIO_SUFFIXES = frozenset("." + name.lower() for name in sf.available_formats())
WAVETABLE_SIZE = 2048


def torch_generator(rng: random.Random) -> torch.Generator:
    """A torch generator seeded from `rng`, so torch's draws follow the caller's seed and not the global RNG."""
    return torch.Generator().manual_seed(rng.getrandbits(63))


def fit_length(x: torch.Tensor, n: int, offset: int = 0) -> torch.Tensor:
    """Samples (M,) -> (n,): read circularly from `offset`, so a short clip is tiled and a long one cropped."""
    offset %= x.numel()
    if offset + n <= x.numel():
        return x[offset: offset + n]
    return x[(torch.arange(n) + offset) % x.numel()]


def unit_rms(x: torch.Tensor) -> torch.Tensor:
    return x / x.pow(2).mean().sqrt().clamp_min(1e-9)


def coloured_noise(n: int, alpha: float, gen: torch.Generator, sample_rate: int = SAMPLE_RATE,
                   lowest_hz: float = 20.0) -> torch.Tensor:
    """Gaussian noise (n,) whose power spectrum falls as 1 / f^alpha (0 white, 1 pink, 2 brown), shaped in the
    FFT domain, unit RMS. Nothing below `lowest_hz`: inaudible, and it would take most of brown noise's power."""
    size = next_fast_len(n, real=True)
    bins = size // 2 + 1
    spectrum = torch.complex(torch.randn(bins, generator=gen), torch.randn(bins, generator=gen))
    freqs = torch.fft.rfftfreq(size, 1 / sample_rate)
    gain = torch.where(freqs >= lowest_hz, freqs.clamp_min(lowest_hz) ** (-alpha / 2), torch.zeros(()))
    return unit_rms(torch.fft.irfft(spectrum * gain, n=size)[:n])


def hum(n: int, rng: random.Random, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Mains hum (n,): 50 or 60 Hz and a random number of harmonics with falling amplitudes, unit RMS."""
    f0 = rng.choice((50, 60))
    # every harmonic of f0 repeats after this many samples: one period is computed and tiled
    period = sample_rate // math.gcd(sample_rate, f0)
    t = torch.arange(period) / sample_rate
    wave = torch.zeros(period)
    for h in range(1, min(rng.randint(3, 12), int(sample_rate / 2 // f0)) + 1):
        wave += rng.uniform(0.2, 1.0) / h * torch.sin(2 * math.pi * h * f0 * t + rng.uniform(0, 2 * math.pi))
    return unit_rms(fit_length(wave, n, rng.randrange(period)))


def tones(n: int, rng: random.Random, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """One to three steady sine tones (n,) between 200 Hz and 4 kHz, each beeping on and off half the time."""
    t = torch.arange(n) / sample_rate
    out = torch.zeros(n)
    for _ in range(rng.randint(1, 3)):
        freq = math.exp(rng.uniform(math.log(200), math.log(4000)))
        tone = rng.uniform(0.3, 1.0) * torch.sin(2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi))
        if rng.random() < 0.5:
            period, duty = rng.uniform(0.2, 1.0), rng.uniform(0.2, 0.7)
            tone = tone * (((t + rng.uniform(0, period)) % period) < duty * period)
        out += tone
    return unit_rms(out)


def music(n: int, rng: random.Random, sample_rate: int = SAMPLE_RATE, max_harmonics: int = 8) -> torch.Tensor:
    """Music-like sound (n,): one to three voices, each a sequence of notes (a random pitch and timbre, 0.12 to
    0.6 s long, fast attack and exponential decay). Each note is read from a one-period wavetable of its timbre
    at its frequency: one lookup per sample instead of one sine per harmonic, for all notes at once."""
    out = torch.zeros(n)
    harmonics = torch.arange(1, max_harmonics + 1)
    cycle = torch.sin(2 * math.pi * harmonics[:, None] * torch.arange(WAVETABLE_SIZE) / WAVETABLE_SIZE)
    for _ in range(rng.randint(1, 3)):
        lengths, freqs, amplitudes, phases, decays = [], [], [], [], []
        while sum(lengths) < n:
            lengths.append(min(round(rng.uniform(0.12, 0.6) * sample_rate), n - sum(lengths)))
            freqs.append(440.0 * 2 ** ((rng.randint(45, 84) - 69) / 12))
            count = rng.randint(2, max_harmonics)  # harmonics above the Nyquist frequency stay silent
            amplitudes.append([rng.uniform(0.3, 1.0) / h if h <= count and h * freqs[-1] < sample_rate / 2 else 0.0
                               for h in range(1, max_harmonics + 1)])
            phases.append(rng.random())
            decays.append(rng.uniform(0.1, 0.5))
        tables = (torch.tensor(amplitudes) @ cycle).flatten()  # (notes x WAVETABLE_SIZE,)
        note = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
        starts = torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0)
        t = (torch.arange(n) - starts[note]) / sample_rate  # time since the note's onset
        phase = (torch.tensor(freqs)[note] * t + torch.tensor(phases)[note]) % 1.0
        envelope = torch.clamp(t / 0.01, max=1.0) * torch.exp(-t / torch.tensor(decays)[note])
        out += tables[note * WAVETABLE_SIZE + (phase * WAVETABLE_SIZE).long().clamp(max=WAVETABLE_SIZE - 1)] * envelope
    return unit_rms(out)


class GeneratedNoise:
    """Noise made on the fly, of a kind drawn per sample from `kinds` (see NOISE_KINDS)."""

    def __init__(self, kinds: Sequence[str] = NOISE_KINDS, sample_rate: int = SAMPLE_RATE):
        unknown = sorted(set(kinds) - set(NOISE_KINDS))
        if unknown or not kinds:
            raise ValueError(f"noise kinds {list(kinds)}: use some of {', '.join(NOISE_KINDS)}")
        self.kinds, self.sample_rate = list(kinds), sample_rate

    def sample(self, n_samples: int, rng: random.Random) -> torch.Tensor:
        """Noise (n_samples,), unit RMS."""
        kind = rng.choice(self.kinds)
        if kind in COLOUR_EXPONENTS:
            return coloured_noise(n_samples, COLOUR_EXPONENTS[kind], torch_generator(rng), self.sample_rate)
        return {"hum": hum, "tones": tones, "music": music}[kind](n_samples, rng, self.sample_rate)

    def __repr__(self) -> str:
        return f"generated {'/'.join(self.kinds)}"


def audio_files(root: Path, subdirs: Sequence[str] = (".",)) -> list[Path]:
    """The soundfile-readable files below root/<subdir> for each subdir, sorted (the same list on every run)."""
    return sorted(p for d in subdirs for p in (root / d).rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


class NoiseDirectory:
    """Noise read from a folder in the MUSAN layout (root/music/**, root/noise/**, root/speech/**), from the
    `subdirs` given: a file drawn per sample, a random crop of it (tiled when shorter), mono at 16 kHz. Only the
    crop is decoded, so long music files cost no more than short ones."""

    def __init__(self, root: str | Path, subdirs: Sequence[str] = ("noise", "music"),
                 sample_rate: int = SAMPLE_RATE):
        self.root, self.subdirs, self.sample_rate = Path(root), tuple(subdirs), sample_rate
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: no such noise directory")
        self.files = audio_files(self.root, self.subdirs)
        if not self.files:
            raise ValueError(f"{self.root}: no audio files under {', '.join(s + '/' for s in self.subdirs)} "
                             "(expected the MUSAN layout: music/, noise/, speech/)")

    def sample(self, n_samples: int, rng: random.Random) -> torch.Tensor:
        """A crop (n_samples,) of a random file at its own level."""
        path = rng.choice(self.files)
        info = sf.info(str(path))
        frames = math.ceil(n_samples * info.samplerate / self.sample_rate) + 1
        start = rng.randrange(max(1, info.frames - frames + 1))
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
        wav = prepare_samples(data, rate, self.sample_rate, name=str(path))
        return fit_length(wav, n_samples, rng.randrange(wav.numel()) if wav.numel() < n_samples else 0)

    def __repr__(self) -> str:
        return f"{self.root} ({', '.join(self.subdirs)}: {len(self.files)} files)"
