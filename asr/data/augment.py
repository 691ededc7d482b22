"""Multi-condition training audio: additive noise and babble at a drawn SNR, reverberation with simulated or
recorded room impulse responses, a telephone channel, band limits, gain, pitch shifts.

All waveforms are float32 mono at 16 kHz. Every random choice comes from a `random.Random` passed in (torch draws
from a generator seeded by it), so the training set's augmentation is fixed by (seed, epoch, utterance) whatever
the worker count and after a resume. The noise sources live in asr/data/noise.py, the rooms in
asr/data/rooms.py, the channel, level and pitch transforms in asr/data/channel.py; this module draws, mixes and
chains them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchaudio
from omegaconf import DictConfig, OmegaConf

from .channel import apply_gain, band_limit, pitch_shift, telephone
from .noise import NOISE_KINDS, GeneratedNoise, NoiseDirectory, fit_length, unit_rms
from .rooms import (
    ROOM_SIZE,
    SABINE,
    RirDirectory,
    SimulatedRirs,
    compensate_delay,
    reverberate,
    room_surface,
    simulate_rirs,
    truncate_rir,
)

__all__ = ["Augmenter", "Babble", "GeneratedNoise", "NoiseDirectory", "RirDirectory", "SimulatedRirs",
           "apply_gain", "band_limit", "compensate_delay", "mix_at_snr", "pitch_shift", "reverberate",
           "simulate_rirs", "telephone", "truncate_rir"]


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
                if rt60[0] <= 0 or SABINE * math.prod(largest) / (rt60[0] * room_surface(largest)) >= 1:
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
