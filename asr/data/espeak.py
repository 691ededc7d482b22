"""espeak-ng in-process through ctypes, and what its bundled voice data offers.

The engine comes from the ``espeakng-loader`` wheel (libespeak-ng and its ``espeak-ng-data``), so no
system package is needed. The C library keeps global state: use one :class:`Espeak` per process and
parallelize with processes, not threads.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct

import numpy as np

ESPEAK_MISSING = "asr-synth needs espeak-ng: pip install espeakng-loader"

# espeak-ng C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)

# A variant whose probe word is quieter than this (RMS, fraction of full scale) counts as silent; the
# quietest variants of espeak-ng 1.52 (klatt, klatt2) speak it at about 0.02.
PROBE_MIN_RMS = 0.005
PROBE_WORD = "hello"


class EspeakUnavailableError(ImportError):
    """espeak-ng (the ``espeakng-loader`` wheel) is not installed."""


def espeak_paths() -> tuple[str, str]:
    """(library path, data path) of the espeak-ng bundled by ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as err:
        raise EspeakUnavailableError(ESPEAK_MISSING) from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def available_variants(data_path: str) -> set[str]:
    """Names of the voice variants (``voices/!v``) in an espeak-ng data directory."""
    return set(os.listdir(os.path.join(data_path, "voices", "!v")))


def available_voices(data_path: str) -> set[str]:
    """Lowercased language voice names (the files below ``lang/``) of an espeak-ng data directory."""
    names = set()
    for _, _, filenames in os.walk(os.path.join(data_path, "lang")):
        names.update(name.lower() for name in filenames)
    return names


def variant_sex(data_path: str, variant: str) -> str:
    """F or M from the ``gender`` line of a variant file (espeak-ng's default is male)."""
    path = os.path.join(data_path, "voices", "!v", variant)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if [word.lower() for word in line.split()[:2]] == ["gender", "female"]:
                return "F"
    return "M"


class Espeak:
    """The espeak-ng C library through ctypes, synthesizing into memory."""

    def __init__(self, lib_path: str, data_path: str):
        self.lib = ctypes.CDLL(lib_path)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed for data path {data_path}")
        self._buffers: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: C holds only a raw pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        # Breath noise comes from espeak-ng's own generator, which espeak_Initialize seeds with the
        # clock; other parts may still call libc rand(). Both are seeded per utterance.
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._srand = ctypes.CDLL(None).srand
        self._srand.argtypes = [ctypes.c_uint]

    def _collect(self, wav, n_samples, _events) -> int:
        if n_samples > 0:
            self._buffers.append(ctypes.string_at(wav, 2 * n_samples))
        return 0  # 0 = keep going

    def speak(self, text: str, name: str, pitch: int, pitch_range: int, rate: int, seed: int,
              word_gap: int = 0) -> bytes:
        """Int16 samples at ``self.sample_rate`` for ``text`` spoken by voice ``name``.

        ``word_gap`` is the extra pause between words in units of 10 ms (at the default rate).
        """
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng cannot select voice {name}")
        # Every parameter is set each time: they outlive voice changes and would leak between utterances.
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, pitch_range, 0)
        self.lib.espeak_SetParameter(_PARAM_WORDGAP, word_gap, 0)
        self.lib.espeak_ng_SetRandSeed(seed)
        self._srand(seed)
        self._buffers = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return b"".join(self._buffers)


_PROBE_RESULT = struct.Struct("<d")


@functools.lru_cache(maxsize=8)
def probe_variants(lib_path: str, data_path: str, voice: str, variants: tuple[str, ...]) -> dict[str, float]:
    """RMS (fraction of full scale) of :data:`PROBE_WORD` spoken by ``voice+variant``; -1 where it fails.

    Runs in a forked child: a process that will render must not have touched espeak-ng before (its
    first utterances would differ, see ``asr.data.synth``). Takes a fraction of a second for all
    variants of espeak-ng 1.52.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, report, leave without running any Python cleanup
        os.close(read_fd)
        code = 1
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                engine = Espeak(lib_path, data_path)
                for variant in variants:
                    try:
                        raw = engine.speak(PROBE_WORD, f"{voice}+{variant}", 50, 50, 175, 1)
                        x = np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768.0
                        rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
                    except ValueError:
                        rms = -1.0
                    pipe.write(_PROBE_RESULT.pack(rms))
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or len(data) != _PROBE_RESULT.size * len(variants):
        raise RuntimeError(f"espeak-ng probe failed (status {status})")
    return {variant: _PROBE_RESULT.unpack_from(data, i * _PROBE_RESULT.size)[0]
            for i, variant in enumerate(variants)}
