"""The silence around synthetic speech: trimming it, or keeping a chosen amount with a noise floor.

espeak-ng pads its output with a little digital silence. The corpus normally trims that to short
margins; for some training utterances it keeps a drawn length at each end instead, as real recordings
have, so that a model learns that silence at the edges is nothing.
"""

from __future__ import annotations

import numpy as np


def speech_bounds(x: np.ndarray, threshold: float) -> tuple[int, int] | None:
    """(first, last + 1) index of the samples louder than ``threshold``; None if there are none."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return None
    return int(loud[0]), int(loud[-1]) + 1


def trim_silence(x: np.ndarray, rate: int, threshold: float, min_silence: float, margin: float) -> np.ndarray:
    """Shorten leading/trailing silence longer than ``min_silence`` seconds to ``margin`` seconds."""
    bounds = speech_bounds(x, threshold) if threshold > 0 else None
    if bounds is None:
        return x
    start, end = bounds[0], len(x) - bounds[1]  # silent samples at each end
    keep = int(round(margin * rate))
    cut_start = start - keep if start > min_silence * rate else 0
    cut_end = end - keep if end > min_silence * rate else 0
    return x[cut_start: len(x) - cut_end]


def place_edges(x: np.ndarray, rate: int, lead: float, trail: float, threshold: float) -> np.ndarray:
    """Exactly ``lead`` seconds before the first sample louder than ``threshold`` and ``trail`` after the
    last: the quiet samples already there are kept as far as they reach, zeros make up the rest.

    An array with no sample above ``threshold`` is returned as it is.
    """
    bounds = speech_bounds(x, threshold)
    if bounds is None:
        return x
    start, end = bounds
    n_lead, n_trail = int(round(lead * rate)), int(round(trail * rate))
    kept = x[max(0, start - n_lead): min(len(x), end + n_trail)]
    pad_lead, pad_trail = max(0, n_lead - start), max(0, n_trail - (len(x) - end))
    return np.concatenate([np.zeros(pad_lead, x.dtype), kept, np.zeros(pad_trail, x.dtype)])


def add_noise_floor(x: np.ndarray, db: float | None, seed: int) -> np.ndarray:
    """``x`` plus white Gaussian noise of RMS ``db`` dB below full scale (1.0); None adds nothing.

    The noise covers the whole signal, the pauses between words included, so that its presence does
    not mark the edges alone.
    """
    if db is None:
        return x
    noise = np.random.default_rng(seed).standard_normal(len(x)) * 10.0 ** (db / 20.0)
    return (x + noise).astype(x.dtype, copy=False)


def add_edge_silence(x: np.ndarray, rate: int, lead: float, trail: float, threshold: float = 0.01,
                     noise_db: float | None = -70.0, seed: int = 0) -> np.ndarray:
    """A float waveform (full scale 1.0) with ``lead``/``trail`` seconds of silence around its speech.

    Speech is what lies between the first and last sample louder than ``threshold``; the silence is
    what was there plus zeros, and a noise floor of ``noise_db`` dBFS (None: none) seeded by ``seed``
    covers the result. The asr-synth corpus applies the same steps to its edge-silence utterances.
    """
    return add_noise_floor(place_edges(np.asarray(x, dtype=np.float32), rate, lead, trail, threshold),
                           noise_db, seed)
