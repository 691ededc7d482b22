"""Reverberation: room impulse responses simulated with pyroomacoustics or read from a folder (the
RIRS_NOISES layout), delay-compensated so that reverberant speech keeps the timing of the dry speech."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
import torchaudio
from scipy.fft import next_fast_len

from ..frontend import SAMPLE_RATE
from .channel import resampler

ROOM_SIZE = ((3.0, 10.0), (3.0, 8.0), (2.4, 4.0))  # metres: length, width, height ranges of simulated rooms
WALL_MARGIN = 0.5  # metres between a source or microphone and the walls
SABINE = 24 * math.log(10) / 343.0  # RT60 = SABINE * volume / (surface * absorption), as pyroomacoustics has it


def compensate_delay(rir: torch.Tensor) -> torch.Tensor:
    """Impulse response (K,) -> (K - d,): the d samples before the direct-path peak dropped and the peak scaled
    to 1, so the reverberant speech keeps the timing (and the alignment) of the dry speech."""
    peak = int(rir.abs().argmax())
    if rir[peak] == 0:
        raise ValueError("an all-zero room impulse response")
    return rir[peak:] / rir[peak]


def truncate_rir(rir: torch.Tensor, decay_db: float = 60.0) -> torch.Tensor:
    """Impulse response (K,) -> (L <= K,): cut where the energy still to come has fallen decay_db below the
    total (Schroeder's backward integral); the rest cannot be heard under the speech and costs convolution."""
    remaining = rir.pow(2).flip(0).cumsum(0).flip(0)
    below = (remaining < remaining[0] * 10 ** (-decay_db / 10)).nonzero()
    return rir[: int(below[0])] if len(below) else rir


def reverberate(speech: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """speech (N,) convolved with the delay-compensated rir (K,), cut to (N,) and scaled back to the input's
    peak: the tail adds energy, and matching the peak keeps the samples within [-1, 1] like the input."""
    rir = compensate_delay(rir)
    n, full = speech.numel(), speech.numel() + rir.numel() - 1
    # an FFT whose size has a large prime factor is several times slower: pad to a 2-3-5-smooth size
    padded = torch.nn.functional.pad(speech, (0, next_fast_len(full, real=True) - full))
    wet = torchaudio.functional.fftconvolve(padded, rir)[:n]
    peak = wet.abs().max()
    return wet * (speech.abs().max() / peak) if peak > 0 else wet


def simulate_rirs(count: int, seed: int, sample_rate: int = SAMPLE_RATE, rt60: tuple[float, float] = (0.2, 0.8),
                  room_size: Sequence[tuple[float, float]] = ROOM_SIZE, max_order: int = 30) -> list[torch.Tensor]:
    """`count` impulse responses (K_i,) of shoebox rooms simulated with pyroomacoustics' image-source model:
    room size, RT60 (uniform in `rt60`), source and microphone position drawn from `seed`; wall absorption from
    the RT60 by Sabine's formula. Each is delay-compensated (peak 1 at index 0) and cut at -60 dB.

    `max_order` caps the reflection order: the order that Sabine asks for grows with RT60 and the cost with its
    cube (0.2 s per room at 0.5-0.8 s uncapped); at 30 the RT60 of the result still follows the target."""
    import pyroomacoustics as pra  # 0.8 s to import: only where rooms are simulated

    rng = random.Random(f"{seed}:rooms")
    rirs = []
    for _ in range(count):
        size = [rng.uniform(low, high) for low, high in room_size]
        target = rng.uniform(*rt60)
        try:
            absorption, order = pra.inverse_sabine(target, size)
        except ValueError:
            raise ValueError(f"rt60 {target:.2f} s: too short for a room of {size[0]:.1f} x {size[1]:.1f} x "
                             f"{size[2]:.1f} m") from None
        room = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, max_order))
        source = [rng.uniform(WALL_MARGIN, side - WALL_MARGIN) for side in size]
        mic = source
        while math.dist(mic, source) < 1.0:  # not on top of the source: the direct path would drown the room
            mic = [rng.uniform(WALL_MARGIN, side - WALL_MARGIN) for side in size]
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rirs.append(truncate_rir(compensate_delay(torch.from_numpy(room.rir[0][0]).float())))
    return rirs


class SimulatedRirs:
    """A bank of simulated rooms, made on first use (constructing it is free) from its seed: same seed, same bank."""

    def __init__(self, count: int = 200, seed: int = 0, rt60: tuple[float, float] = (0.2, 0.8), max_order: int = 30):
        self.count, self.seed, self.rt60, self.max_order = count, seed, tuple(rt60), max_order
        self._bank: list[torch.Tensor] | None = None

    @property
    def bank(self) -> list[torch.Tensor]:
        if self._bank is None:
            self._bank = simulate_rirs(self.count, self.seed, rt60=self.rt60, max_order=self.max_order)
        return self._bank

    def sample(self, rng: random.Random) -> torch.Tensor:
        """A delay-compensated impulse response (K,) drawn from the bank."""
        return self.bank[rng.randrange(self.count)]

    def __repr__(self) -> str:
        return f"{self.count} simulated rooms, rt60 {self.rt60[0]:g}-{self.rt60[1]:g} s, seed {self.seed}"


class RirDirectory:
    """Impulse responses read from a folder, any .wav below root (the RIRS_NOISES layout: simulated_rirs/**,
    real_rirs_isotropic_noises/*). Files named *noise* are the recorded noises that corpus ships beside its
    impulse responses and are left out. A multichannel file gives its first channel."""

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE):
        self.root, self.sample_rate = Path(root), sample_rate
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: no such impulse response directory")
        self.files = sorted(p for p in self.root.rglob("*.wav") if "noise" not in p.name.lower())
        if not self.files:
            raise ValueError(f"{self.root}: no .wav impulse responses below it (expected the RIRS_NOISES layout)")

    def sample(self, rng: random.Random) -> torch.Tensor:
        """A delay-compensated impulse response (K,) of a random file, cut at -60 dB."""
        path = rng.choice(self.files)
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        rir = torch.from_numpy(data[:, 0].copy())
        if rate != self.sample_rate:
            rir = resampler(rate, self.sample_rate)(rir)
        return truncate_rir(compensate_delay(rir))

    def __repr__(self) -> str:
        return f"{self.root} ({len(self.files)} impulse responses)"


def room_surface(size: Sequence[float]) -> float:
    """Wall, floor and ceiling area (m^2) of a shoebox room (length, width, height)."""
    length, width, height = size
    return 2 * (length * width + length * height + width * height)
