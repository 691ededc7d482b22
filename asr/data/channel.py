"""Channel, level and pitch transforms of one waveform (N,) -> (N,) at 16 kHz: a telephone line, a band
limit, gain with clipping, a pitch shift."""

from __future__ import annotations

import functools
import math

import torch
import torchaudio

from ..frontend import SAMPLE_RATE
from .noise import fit_length

TELEPHONE_RATE = 8000


@functools.lru_cache(maxsize=64)
def resampler(orig_freq: int, new_freq: int, sharp: bool = False) -> torchaudio.transforms.Resample:
    """A resampler built once per rate pair: building the sinc kernel costs about as much as applying it.
    `sharp`: a longer kernel with its passband ending at 95% of the lower Nyquist frequency, which leaves less
    than 1e-4 of white noise's power above it (torchaudio's default lets through about 5e-3)."""
    if sharp:
        return torchaudio.transforms.Resample(orig_freq, new_freq, lowpass_filter_width=16, rolloff=0.95)
    return torchaudio.transforms.Resample(orig_freq, new_freq)


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
