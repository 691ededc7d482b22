"""Which espeak-ng voices and variants a synthetic corpus can use: the configured ones that this espeak-ng has
and that make a sound."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .espeak import PROBE_MIN_RMS, available_variants, available_voices, espeak_paths, probe_variants

if TYPE_CHECKING:
    from .synth_plan import SynthConfig


def _check_voices(cfg: SynthConfig, data_path: str) -> None:
    voices = available_voices(data_path)
    missing = [voice for voice in cfg.voices if voice.lower() not in voices]
    if missing:
        raise ValueError(f"espeak-ng has no voice {', '.join(missing)}")


def _silent(cfg: SynthConfig, data_path: str, variants: list[str]) -> list[str]:
    """The variants that fail to load or make no sound with the first configured voice."""
    if not variants:
        return []
    rms = probe_variants(espeak_paths()[0], data_path, cfg.voices[0], tuple(variants))
    return [variant for variant in variants if rms[variant] < PROBE_MIN_RMS]


def usable_variants(cfg: SynthConfig, data_path: str) -> list[str]:
    """The variants the corpus draws from; checks the voices too.

    ``cfg.variants``, or when None every variant of ``voices/!v`` in name order, less the held-out ones;
    variants this espeak-ng lacks or that make no sound (a probe word, once per data directory) are left
    out with a warning. Every variant of espeak-ng 1.52 passes (and none names a language other than English).
    """
    _check_voices(cfg, data_path)
    present = available_variants(data_path)
    if cfg.variants is None:
        wanted = sorted(present)
    else:
        wanted = list(cfg.variants)
        missing = [variant for variant in wanted if variant not in present]
        if missing:
            warnings.warn(f"espeak-ng has no variant {', '.join(missing)}; left out", stacklevel=2)
        wanted = [variant for variant in wanted if variant in present]
    wanted = [variant for variant in wanted if variant not in cfg.heldout_variants]
    silent = _silent(cfg, data_path, wanted)
    if silent:
        warnings.warn(f"espeak-ng variant(s) {', '.join(silent)} make no sound; left out", stacklevel=2)
    return [variant for variant in wanted if variant not in silent]


def check_variants(variants: Sequence[str], cfg: SynthConfig, data_path: str) -> list[str]:
    """``variants`` as a list; ValueError if a voice or variant is missing or a variant makes no sound."""
    _check_voices(cfg, data_path)
    variants = list(variants)
    if not variants:
        raise ValueError("no variants given")
    missing = sorted(set(variants) - available_variants(data_path))
    if missing:
        raise ValueError(f"espeak-ng has no variant {', '.join(missing)}")
    silent = _silent(cfg, data_path, variants)
    if silent:
        raise ValueError(f"espeak-ng variant(s) {', '.join(silent)} make no sound")
    return variants
