"""Multi-condition training audio: additive noise and babble at a drawn SNR, reverberation with simulated or
recorded room impulse responses, a telephone channel, band limits, gain, pitch shifts.

All waveforms are float32 mono at 16 kHz. Every random choice comes from a `random.Random` passed in (torch draws
from a generator seeded by it), so the training set's augmentation is fixed by (seed, epoch, utterance) whatever
the worker count and after a resume. The noise sources live in asr/data/noise.py.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf
import torch
import torchaudio
from omegaconf import DictConfig, OmegaConf
from scipy.fft import next_fast_len

from ..frontend import SAMPLE_RATE
from .noise import NOISE_KINDS, GeneratedNoise, NoiseDirectory, fit_length, unit_rms

__all__ = ["Augmenter", "Babble", "GeneratedNoise", "NoiseDirectory", "RirDirectory", "SimulatedRirs",
           "apply_gain", "band_limit", "compensate_delay", "mix_at_snr", "pitch_shift", "reverberate",
           "simulate_rirs", "telephone", "truncate_rir"]

TELEPHONE_RATE = 8000
ROOM_SIZE = ((3.0, 10.0), (3.0, 8.0), (2.4, 4.0))  # metres: length, width, height ranges of simulated rooms
WALL_MARGIN = 0.5  # metres between a source or microphone and the walls
SABINE = 24 * math.log(10) / 343.0  # RT60 = SABINE * volume / (surface * absorption), as pyroomacoustics has it


@functools.lru_cache(maxsize=64)
def resampler(orig_freq: int, new_freq: int, sharp: bool = False) -> torchaudio.transforms.Resample:
    """A resampler built once per rate pair: building the sinc kernel costs about as much as applying it.
    `sharp`: a longer kernel with its passband ending at 95% of the lower Nyquist frequency, which leaves less
    than 1e-4 of white noise's power above it (torchaudio's default lets through about 5e-3)."""
    if sharp:
        return torchaudio.transforms.Resample(orig_freq, new_freq, lowpass_filter_width=16, rolloff=0.95)
    return torchaudio.transforms.Resample(orig_freq, new_freq)


# --- additive noise --------------------------------------------------------------------------------------
def mix_at_snr(speech: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """speech (N,) + noise (M,) tiled or cropped to N and scaled so that speech power / added noise power is
    snr_db. A silent noise leaves the speech as it is."""
    noise = fit_length(noise, speech.numel())
    if not noise.abs().max() > 0:
        return speech
    return torchaudio.functional.add_noise(speech, noise, torch.tensor(float(snr_db)))


class Babble:
    """A crowd of other utterances (talkers drawn per sample from `talkers`, uniformly), each at the same RMS,
    cropped or tiled from a random offset. `utterance(i) -> Tensor (M,)` gives utterance i of n_utterances."""

    def __init__(self, utterance: Callable[[int], torch.Tensor], n_utterances: int,
                 talkers: tuple[int, int] = (3, 7)):
        self.utterance, self.n_utterances, self.talkers = utterance, n_utterances, talkers

    def sample(self, n_samples: int, rng: random.Random) -> torch.Tensor:
        """Babble (n_samples,)."""
        crowd = torch.zeros(n_samples)
        count = min(rng.randint(*self.talkers), self.n_utterances)
        for i in rng.sample(range(self.n_utterances), count):
            other = self.utterance(i)
            # a longer talker is cropped without wrapping around, a shorter one tiled from a random point
            starts = other.numel() - n_samples + 1 if other.numel() >= n_samples else other.numel()
            crowd += unit_rms(fit_length(other, n_samples, rng.randrange(starts)))
        return crowd


# --- reverberation ---------------------------------------------------------------------------------------
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


# --- channels, level, pitch ------------------------------------------------------------------------------
def telephone(wav: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A narrow-band telephone channel (N,) -> (N,): to 8 kHz, the 300-3400 Hz band, 8-bit mu-law, back."""
    narrow = resampler(sample_rate, TELEPHONE_RATE)(wav)
    # the band pass runs at 8 kHz, after the resampler has removed everything above 4 kHz: half the samples
    narrow = torchaudio.functional.highpass_biquad(narrow, TELEPHONE_RATE, 300.0)
    narrow = torchaudio.functional.lowpass_biquad(narrow, TELEPHONE_RATE, 3400.0)
    codes = torchaudio.functional.mu_law_encoding(narrow.clamp(-1.0, 1.0), 256)
    narrow = torchaudio.functional.mu_law_decoding(codes, 256)
    return fit_length(resampler(TELEPHONE_RATE, sample_rate)(narrow), wav.numel())


def band_limit(wav: torch.Tensor, cutoff_hz: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Low pass (N,) -> (N,) by resampling down to 2 x cutoff_hz and back: a sharp cutoff (the band from 95% of
    it up is stopped), unlike a biquad's 12 dB per octave. A cutoff at or above the Nyquist frequency changes
    nothing."""
    cutoff_hz = int(cutoff_hz)
    if 2 * cutoff_hz >= sample_rate:
        return wav
    if cutoff_hz <= 0:
        raise ValueError(f"band_limit: cutoff_hz={cutoff_hz} must be positive")
    narrow = resampler(sample_rate, 2 * cutoff_hz, sharp=True)(wav)
    return fit_length(resampler(2 * cutoff_hz, sample_rate, sharp=True)(narrow), wav.numel())


def apply_gain(wav: torch.Tensor, gain_db: float) -> torch.Tensor:
    """wav (N,) scaled by gain_db, clipped to [-1, 1] as a recording would be."""
    return (wav * 10 ** (gain_db / 20)).clamp(-1.0, 1.0)


def pitch_shift(wav: torch.Tensor, semitones: float, sample_rate: int = SAMPLE_RATE, n_fft: int = 512,
                hop: int = 128) -> torch.Tensor:
    """Pitch (and formants) shifted by `semitones`, duration kept: (N,) -> (N,). A phase-vocoder time stretch
    by the pitch factor, then a resampling that undoes the length change and moves the pitch.

    torchaudio.functional.pitch_shift does the same but resamples from int(sample_rate / factor) Hz, a rate
    that mostly shares only a small factor with 16 kHz, so its kernel has thousands of phases and is built on
    every call: on a 5 s utterance it took 26 ms at -1.5 semitones and 15 s at +1 on one core. Here that rate is
    rounded to 100 Hz (the shift is then off by less than 0.06 semitones) and its resampler is built once: 10 to
    15 ms for 5 s, most of it in the phase vocoder."""
    source_rate = round(sample_rate * 2 ** (semitones / 12) / 100) * 100
    if source_rate == sample_rate:
        return wav
    window = torch.hann_window(n_fft)
    spec = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
    phase_advance = torch.linspace(0, math.pi * hop, spec.shape[-2]).unsqueeze(-1)
    stretched = torchaudio.functional.phase_vocoder(spec, sample_rate / source_rate, phase_advance)
    longer = torch.istft(stretched, n_fft, hop, window=window, length=round(wav.numel() * source_rate / sample_rate))
    return fit_length(resampler(source_rate, sample_rate)(longer), wav.numel())


# --- the pipeline ----------------------------------------------------------------------------------------
Plan = list[tuple[str, float]]


class Augmenter:
    """Multi-condition augmentation of one training waveform. Each effect has its own probability and they run
    in the order pitch -> reverb -> noise or babble -> telephone or band limit -> gain.

    `draw(rng)` chooses the effects and their settings (an empty plan leaves the utterance clean, which the
    dataset serves from its feature cache); `apply(wav, plan, rng)` runs them; `__call__` does both.
    Babble needs the training utterances: `bind_utterances` (FeatureDataset does it) or the constructor.
    """

    def __init__(self, *, pitch_prob: float = 0.0, semitones: tuple[float, float] = (-2.0, 2.0),
                 reverb_prob: float = 0.0, rirs: SimulatedRirs | RirDirectory | None = None,
                 noise_prob: float = 0.0, noise: GeneratedNoise | NoiseDirectory | None = None,
                 noise_snr_db: tuple[float, float] = (0.0, 20.0), babble_prob: float = 0.0,
                 babble_talkers: tuple[int, int] = (3, 7), babble_snr_db: tuple[float, float] = (0.0, 20.0),
                 telephone_prob: float = 0.0, band_limit_prob: float = 0.0, cutoffs_hz: Sequence[int] = (4000,),
                 gain_prob: float = 0.0, gain_db: tuple[float, float] = (-10.0, 6.0),
                 utterance: Callable[[int], torch.Tensor] | None = None, n_utterances: int = 0):
        self.pitch_prob, self.semitones = pitch_prob, tuple(semitones)
        self.reverb_prob, self.rirs = reverb_prob, rirs or SimulatedRirs()
        self.noise_prob, self.noise, self.noise_snr_db = noise_prob, noise or GeneratedNoise(), tuple(noise_snr_db)
        self.babble_prob, self.babble_talkers, self.babble_snr_db = babble_prob, babble_talkers, tuple(babble_snr_db)
        self.babble = Babble(utterance, n_utterances, babble_talkers) if utterance and n_utterances else None
        self.telephone_prob, self.band_limit_prob, self.cutoffs_hz = telephone_prob, band_limit_prob, list(cutoffs_hz)
        self.gain_prob, self.gain_db = gain_prob, tuple(gain_db)

    @property
    def active(self) -> bool:
        """False when no effect can ever fire: such an augmenter is dropped and the cache serves every read."""
        return any(p > 0 for p in (self.pitch_prob, self.reverb_prob, self.noise_prob, self.babble_prob,
                                   self.telephone_prob, self.band_limit_prob, self.gain_prob))

    @property
    def clean_share(self) -> float:
        """The expected share of utterances that no effect touches."""
        share = 1.0
        for p in (self.pitch_prob, self.reverb_prob, self.noise_prob + self.babble_prob,
                  self.telephone_prob + self.band_limit_prob, self.gain_prob):
            share *= 1 - p
        return share

    def bind_utterances(self, utterance: Callable[[int], torch.Tensor], n_utterances: int) -> None:
        """Where babble gets its talkers: `utterance(i) -> Tensor (M,)` for i < n_utterances."""
        self.babble = Babble(utterance, n_utterances, self.babble_talkers)

    def prepare(self) -> None:
        """Make the simulated room bank now if reverberation is on (DataLoader workers then inherit it)."""
        if self.reverb_prob > 0 and isinstance(self.rirs, SimulatedRirs):
            _ = self.rirs.bank

    def draw(self, rng: random.Random) -> Plan:
        """The effects for one utterance with their settings, in the order they apply; [] leaves it clean. The
        five decisions come first, one draw each: changing one probability does not change which other effects
        an utterance gets."""
        plan: Plan = []
        pitch, reverb, mix, channel, gain = (rng.random() for _ in range(5))
        if pitch < self.pitch_prob:
            plan.append(("pitch", rng.uniform(*self.semitones)))
        if reverb < self.reverb_prob:
            plan.append(("reverb", 0.0))
        if mix < self.noise_prob:
            plan.append(("noise", rng.uniform(*self.noise_snr_db)))
        elif mix < self.noise_prob + self.babble_prob:
            plan.append(("babble", rng.uniform(*self.babble_snr_db)))
        if channel < self.telephone_prob:
            plan.append(("telephone", 0.0))
        elif channel < self.telephone_prob + self.band_limit_prob:
            plan.append(("band_limit", float(rng.choice(self.cutoffs_hz))))
        if gain < self.gain_prob:
            plan.append(("gain", rng.uniform(*self.gain_db)))
        return plan

    def apply(self, wav: torch.Tensor, plan: Plan, rng: random.Random) -> torch.Tensor:
        """wav (N,) through the effects of `plan` -> (N,)."""
        n = wav.numel()
        for effect, value in plan:
            if effect == "pitch":
                wav = pitch_shift(wav, value)
            elif effect == "reverb":
                wav = reverberate(wav, self.rirs.sample(rng))
            elif effect in ("noise", "babble"):
                if effect == "babble" and self.babble is None:
                    raise RuntimeError("babble needs the training utterances: bind_utterances() first")
                source = self.noise if effect == "noise" else self.babble
                wav = mix_at_snr(wav, source.sample(n, rng), value)
                wav = wav / wav.abs().max().clamp_min(1.0)  # back within [-1, 1]; the SNR stays
            elif effect == "telephone":
                wav = telephone(wav)
            elif effect == "band_limit":
                wav = band_limit(wav, int(value))
            elif effect == "gain":
                wav = apply_gain(wav, value)
        return wav

    def __call__(self, wav: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """wav (N,) -> (N,), augmented as `rng` draws (possibly left as it is)."""
        return self.apply(wav, self.draw(rng), rng)

    def describe(self) -> str:
        """One line: each effect that is on with its probability and source."""
        parts = [f"{name} {p:g}{detail}" for name, p, detail in (
            ("pitch", self.pitch_prob, f" ({self.semitones[0]:g} to {self.semitones[1]:g} semitones)"),
            ("reverb", self.reverb_prob, f" ({self.rirs})"),
            ("noise", self.noise_prob, f" ({self.noise}, {self.noise_snr_db[0]:g}-{self.noise_snr_db[1]:g} dB)"),
            ("babble", self.babble_prob, f" ({self.babble_talkers[0]}-{self.babble_talkers[1]} talkers, "
                                         f"{self.babble_snr_db[0]:g}-{self.babble_snr_db[1]:g} dB)"),
            ("telephone", self.telephone_prob, ""),
            ("band limit", self.band_limit_prob, f" ({', '.join(f'{c:g}' for c in self.cutoffs_hz)} Hz)"),
            ("gain", self.gain_prob, f" ({self.gain_db[0]:g} to {self.gain_db[1]:g} dB)")) if p > 0]
        return ", ".join(parts) + f"; {100 * self.clean_share:.0f}% of utterances stay clean" if parts else "none"

    @classmethod
    def from_config(cls, cfg: DictConfig | dict | None, utterance: Callable[[int], torch.Tensor] | None = None,
                    n_utterances: int = 0) -> Augmenter:
        """From the `augment` config block (conf/augment/*.yaml); an empty or missing block does nothing."""
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        cfg = dict(cfg or {})
        pitch, reverb, noise, babble = (_block(cfg, k) for k in ("pitch", "reverb", "noise", "babble"))
        phone, band, gain = (_block(cfg, k) for k in ("telephone", "band_limit", "gain"))
        probs = {k: _prob(b, k) for k, b in (("pitch", pitch), ("reverb", reverb), ("noise", noise),
                                             ("babble", babble), ("telephone", phone), ("band_limit", band),
                                             ("gain", gain))}
        for a, b in (("noise", "babble"), ("telephone", "band_limit")):
            if probs[a] + probs[b] > 1:
                raise ValueError(f"augment.{a}.prob + augment.{b}.prob = {probs[a] + probs[b]:g}: they exclude "
                                 "each other, so the sum must be at most 1")
        rirs = noise_source = None
        if probs["reverb"] > 0:
            if cfg.get("rir_dir") is not None:
                rirs = RirDirectory(_required_path(cfg, "rir_dir", "a folder of .wav impulse responses"))
            else:
                rooms, rt60 = int(reverb.get("rooms", 200)), _span(reverb, "reverb", "rt60", (0.2, 0.8))
                if rooms < 1:
                    raise ValueError(f"augment.reverb.rooms={rooms}: must be at least 1")
                largest = [high for _, high in ROOM_SIZE]  # needs the most absorption for a given RT60
                if rt60[0] <= 0 or SABINE * math.prod(largest) / (rt60[0] * _surface(largest)) >= 1:
                    raise ValueError(f"augment.reverb.rt60={list(rt60)}: {rt60[0]:g} s is too short for the largest "
                                     f"simulated room ({' x '.join(f'{d:g}' for d in largest)} m)")
                rirs = SimulatedRirs(rooms, int(cfg.get("seed", 0)), rt60, int(reverb.get("max_order", 30)))
        if probs["noise"] > 0:
            if cfg.get("noise_dir") is not None:
                noise_source = NoiseDirectory(_required_path(cfg, "noise_dir", "a folder in the MUSAN layout"),
                                              noise.get("subdirs", ("noise", "music")))
            else:
                kinds = noise.get("kinds", NOISE_KINDS)
                if not kinds or set(kinds) - set(NOISE_KINDS):
                    raise ValueError(f"augment.noise.kinds={kinds}: use some of {', '.join(NOISE_KINDS)}")
                noise_source = GeneratedNoise(kinds)
        talkers = tuple(int(t) for t in _span(babble, "babble", "talkers", (3, 7)))
        if talkers[0] < 1:
            raise ValueError(f"augment.babble.talkers={list(talkers)}: at least one talker")
        cutoffs = list(band.get("cutoff_hz", [4000]))
        if not cutoffs or not all(0 < int(c) for c in cutoffs):
            raise ValueError(f"augment.band_limit.cutoff_hz={cutoffs}: a list of positive frequencies")
        return cls(pitch_prob=probs["pitch"], semitones=_span(pitch, "pitch", "semitones", (-2.0, 2.0)),
                   reverb_prob=probs["reverb"], rirs=rirs, noise_prob=probs["noise"], noise=noise_source,
                   noise_snr_db=_span(noise, "noise", "snr_db", (0.0, 20.0)), babble_prob=probs["babble"],
                   babble_talkers=talkers, babble_snr_db=_span(babble, "babble", "snr_db", (0.0, 20.0)),
                   telephone_prob=probs["telephone"], band_limit_prob=probs["band_limit"],
                   cutoffs_hz=[int(c) for c in cutoffs], gain_prob=probs["gain"],
                   gain_db=_span(gain, "gain", "gain_db", (-10.0, 6.0)), utterance=utterance,
                   n_utterances=n_utterances)


def _surface(size: Sequence[float]) -> float:
    length, width, height = size
    return 2 * (length * width + length * height + width * height)


def _block(cfg: dict, name: str) -> dict:
    block = cfg.get(name) or {}
    if not isinstance(block, dict):
        raise ValueError(f"augment.{name}={block!r}: expected a block of options such as prob")
    return block


def _prob(block: dict, name: str) -> float:
    p = block.get("prob", 0.0)
    if not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"augment.{name}.prob={p!r}: must be a probability between 0 and 1")
    return float(p)


def _span(block: dict, name: str, key: str, default: tuple[float, float]) -> tuple[float, float]:
    span = block.get(key, default)
    if (not isinstance(span, (list, tuple)) or len(span) != 2
            or not all(isinstance(v, (int, float)) for v in span) or span[0] > span[1]):
        raise ValueError(f"augment.{name}.{key}={span!r}: expected [low, high] with low <= high")
    return float(span[0]), float(span[1])


def _required_path(cfg: dict, key: str, what: str) -> Path:
    value = cfg.get(key)
    if value in (None, "???", ""):
        raise ValueError(f"augment.{key} is required: {what} (augment.{key}=DIR)")
    if not Path(value).is_dir():
        raise ValueError(f"augment.{key}={value}: no such directory")
    return Path(value)
