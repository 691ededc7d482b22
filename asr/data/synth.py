"""An offline speech corpus in the LibriSpeech layout, spoken by espeak-ng.

The sentences of two LibriSpeech transcript files (shipped in ``asr/resources/librispeech-text``) are
spoken by synthetic "speakers": an espeak-ng voice and variant with a fixed pitch and pitch range. The
result looks exactly like LibriSpeech::

    <out_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt:04d>.flac
    <out_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

Subsets: a training set, dev/test sets spoken by training speakers ("seen") and the same dev/test
sentences spoken by held-out speakers ("unseen"). Dev, test and train sentences are disjoint.

Determinism: the whole plan (sentence, speaker, rate, path) comes from ``seed`` alone. espeak-ng keeps
state between utterances that is never reset (e.g. the pitch flutter phase, a function-level static in
its wave generator), so the same utterance spoken after different predecessors comes out slightly
different. Each worker therefore initializes the library once and forks a fresh child for every fixed
chunk of ``CHUNK_SIZE`` consecutive plan entries; the child speaks the whole chunk in order, so every
file depends only on the plan, not on ``jobs``, scheduling or which files a resumed run skips.
Forking per chunk rather than per utterance keeps the fork cost (milliseconds in a process that has
torch loaded) small next to the synthesis.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.resources
import multiprocessing as mp
import os
import random
import signal
import struct
import sys
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from ..textfile import write_text_atomic

ESPEAK_MISSING = "asr-synth needs espeak-ng: pip install espeakng-loader"

SUBSET_KEYS = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
DEFAULT_SUBSETS = {
    "train": "train-synth",
    "dev_seen": "dev-seen",
    "dev_unseen": "dev-unseen",
    "test_seen": "test-seen",
    "test_unseen": "test-unseen",
}
DEFAULT_VOICES = ["en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-us-nyc"]
DEFAULT_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
                    "klatt", "klatt2", "klatt3"]
SENTENCE_FILES = ("dev-clean.trans.txt", "test-other.trans.txt")
FIRST_SPEAKER_ID = 100
# Part of the determinism contract: changing it changes the bytes of the rendered files.
CHUNK_SIZE = 32
# Bumped when rendering changes, so that a resumed run re-renders files made the old way.
RENDER_VERSION = 1

# espeak-ng C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


class EspeakUnavailableError(ImportError):
    """espeak-ng (the ``espeakng-loader`` wheel) is not installed."""


@dataclass
class SynthConfig:
    """Settings of :func:`synthesize_corpus`; ``conf/synth.yaml`` holds the same keys and defaults."""

    out_dir: str = "data"
    seed: int = 0
    jobs: int | None = None  # None: one per available CPU
    progress: bool = True
    subsets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SUBSETS))
    min_words: int = 1
    max_words: int = 40
    n_test: int = 200
    n_dev: int = 100
    n_train: int | None = None  # None: every sentence not used by dev/test
    train_copies: int = 1
    voices: list[str] = field(default_factory=lambda: list(DEFAULT_VOICES))
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    n_train_speakers: int = 60
    n_unseen_speakers: int = 12
    pitch_min: int = 30
    pitch_max: int = 70
    range_min: int = 20
    range_max: int = 80
    rate_min: int = 150
    rate_max: int = 210
    sample_rate: int = 16000
    trim_threshold: float = 0.01  # fraction of full scale; 0 turns trimming off
    trim_min_silence: float = 0.15  # seconds; shorter leading/trailing silences are kept
    trim_margin: float = 0.1  # seconds of silence kept before and after the speech

    @classmethod
    def from_any(cls, cfg: SynthConfig | Mapping[str, Any] | Any) -> SynthConfig:
        """Build from a SynthConfig, a mapping or an OmegaConf DictConfig (unknown keys are an error)."""
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        values = {key: value for key, value in cfg.items() if key != "hydra"}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown synth config keys: {', '.join(unknown)}")
        config = cls(**values)
        config.subsets = {**DEFAULT_SUBSETS, **dict(config.subsets)}
        config.voices, config.variants = list(config.voices), list(config.variants)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError for settings that cannot give a corpus."""
        unknown = sorted(set(self.subsets) - set(SUBSET_KEYS))
        if unknown:
            raise ValueError(f"unknown subsets keys {unknown}; expected {list(SUBSET_KEYS)}")
        names = [self.subsets[key] for key in SUBSET_KEYS]
        if len(set(names)) != len(names):
            raise ValueError(f"subset names must differ: {names}")
        for low, high in [("min_words", "max_words"), ("pitch_min", "pitch_max"),
                          ("range_min", "range_max"), ("rate_min", "rate_max")]:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} > {high}")
        if self.n_train_speakers < 1 or self.n_unseen_speakers < 1:
            raise ValueError("n_train_speakers and n_unseen_speakers must be at least 1")
        if not 1 <= self.train_copies <= self.n_train_speakers:
            raise ValueError("train_copies must be between 1 and n_train_speakers")


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an espeak-ng voice and variant with a fixed pitch and pitch range."""

    id: int
    voice: str
    variant: str
    pitch: int
    range: int
    seen: bool  # True: a training speaker; False: held out for dev-unseen/test-unseen

    @property
    def espeak_name(self) -> str:
        return f"{self.voice}+{self.variant}"


@dataclass(frozen=True)
class PlannedUtterance:
    """One file of the corpus; ``text`` is the original uppercase LibriSpeech text."""

    subset: str
    speaker: Speaker
    chapter: int
    index: int
    text: str
    rate: int
    seed: int

    @property
    def id(self) -> str:
        return f"{self.speaker.id}-{self.chapter}-{self.index:04d}"

    @property
    def relpath(self) -> str:
        """Path of the FLAC below ``<out_dir>/LibriSpeech``."""
        return f"{self.subset}/{self.speaker.id}/{self.chapter}/{self.id}.flac"


def espeak_paths() -> tuple[str, str]:
    """(library path, data path) of the espeak-ng bundled by ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as err:
        raise EspeakUnavailableError(ESPEAK_MISSING) from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def load_sentences(min_words: int = 1, max_words: int = 40) -> list[str]:
    """The distinct sentences of the bundled LibriSpeech transcripts, in file order."""
    root = importlib.resources.files("asr").joinpath("resources", "librispeech-text")
    sentences: dict[str, None] = {}
    for name in SENTENCE_FILES:
        for line in root.joinpath(name).read_text(encoding="utf-8").splitlines():
            parts = line.split(maxsplit=1)
            if len(parts) == 2 and min_words <= len(parts[1].split()) <= max_words:
                sentences[" ".join(parts[1].split())] = None
    return list(sentences)


def split_sentences(sentences: list[str], cfg: SynthConfig) -> dict[str, list[str]]:
    """Shuffle with the seed and cut into disjoint test, dev and train lists."""
    need = cfg.n_test + cfg.n_dev + 1
    if len(sentences) < need:
        raise ValueError(f"only {len(sentences)} sentences; n_test + n_dev + 1 = {need} needed")
    shuffled = list(sentences)
    random.Random(f"{cfg.seed}/sentences").shuffle(shuffled)
    test, rest = shuffled[: cfg.n_test], shuffled[cfg.n_test:]
    dev, train = rest[: cfg.n_dev], rest[cfg.n_dev:]
    if cfg.n_train is not None:
        train = train[: cfg.n_train]
    return {"train": train, "dev": dev, "test": test}


def available_variants(data_path: str) -> set[str]:
    """Names of the voice variants (``voices/!v``) in an espeak-ng data directory."""
    return set(os.listdir(os.path.join(data_path, "voices", "!v")))


def available_voices(data_path: str) -> set[str]:
    """Lowercased language voice names (the files below ``lang/``) of an espeak-ng data directory."""
    names = set()
    for _, _, filenames in os.walk(os.path.join(data_path, "lang")):
        names.update(name.lower() for name in filenames)
    return names


def make_speakers(cfg: SynthConfig, variants: list[str]) -> list[Speaker]:
    """The training speakers followed by the unseen ones; ids count up from FIRST_SPEAKER_ID."""
    combos = [(voice, variant) for voice in cfg.voices for variant in variants]
    need = cfg.n_train_speakers + cfg.n_unseen_speakers
    if need > len(combos):
        raise ValueError(f"{need} speakers wanted but only {len(combos)} voice+variant combinations")
    rng = random.Random(f"{cfg.seed}/speakers")
    rng.shuffle(combos)
    return [Speaker(id=FIRST_SPEAKER_ID + i, voice=voice, variant=variant,
                    pitch=rng.randint(cfg.pitch_min, cfg.pitch_max),
                    range=rng.randint(cfg.range_min, cfg.range_max),
                    seen=i < cfg.n_train_speakers)
            for i, (voice, variant) in enumerate(combos[:need])]


def usable_variants(cfg: SynthConfig, data_path: str) -> list[str]:
    """``cfg.variants`` without those this espeak-ng lacks (with a warning); checks the voices too."""
    voices = available_voices(data_path)
    missing_voices = [voice for voice in cfg.voices if voice.lower() not in voices]
    if missing_voices:
        raise ValueError(f"espeak-ng has no voice {', '.join(missing_voices)}")
    present = available_variants(data_path)
    missing = [variant for variant in cfg.variants if variant not in present]
    if missing:
        warnings.warn(f"espeak-ng has no variant {', '.join(missing)}; left out", stacklevel=2)
    return [variant for variant in cfg.variants if variant in present]


def build_plan(cfg: SynthConfig, data_path: str) -> tuple[list[Speaker], list[PlannedUtterance]]:
    """Every speaker and utterance of the corpus, computed from ``cfg.seed`` alone.

    Chapter ids are ``speaker * 10 + k`` with k = 1..5 the subset's position in SUBSET_KEYS, so every
    (speaker, subset) has its own chapter; utterances are numbered per chapter in plan order.
    """
    split = split_sentences(load_sentences(cfg.min_words, cfg.max_words), cfg)
    speakers = make_speakers(cfg, usable_variants(cfg, data_path))
    seen = [s for s in speakers if s.seen]
    unseen = [s for s in speakers if not s.seen]
    groups = [("train", split["train"], seen, cfg.train_copies),
              ("dev_seen", split["dev"], seen, 1), ("dev_unseen", split["dev"], unseen, 1),
              ("test_seen", split["test"], seen, 1), ("test_unseen", split["test"], unseen, 1)]
    counters: Counter[int] = Counter()
    plan = []
    for key, sentences, pool, copies in groups:
        # One stream per subset: dev/test speakers and rates stay put when n_train changes.
        rng = random.Random(f"{cfg.seed}/utterances/{key}")
        position = SUBSET_KEYS.index(key) + 1
        for text in sentences:
            for speaker in rng.sample(pool, copies):
                chapter = speaker.id * 10 + position
                plan.append(PlannedUtterance(
                    subset=cfg.subsets[key], speaker=speaker, chapter=chapter, index=counters[chapter],
                    text=text, rate=rng.randint(cfg.rate_min, cfg.rate_max), seed=rng.getrandbits(31)))
                counters[chapter] += 1
    return speakers, plan


def fingerprint(utt: PlannedUtterance, cfg: SynthConfig) -> str:
    """What the FLAC's comment field records, so that a resumed run with other settings re-renders it."""
    text = hashlib.sha1(utt.text.encode()).hexdigest()[:16]
    s = utt.speaker
    return (f"asr-synth {RENDER_VERSION} {s.espeak_name} pitch={s.pitch} range={s.range} rate={utt.rate} "
            f"seed={utt.seed} trim={cfg.trim_threshold},{cfg.trim_min_silence},{cfg.trim_margin} "
            f"text={text}")


def finished_frames(path: Path, expected_comment: str, sample_rate: int) -> int | None:
    """Frame count of a finished FLAC made with the same settings, else None."""
    if not path.is_file():
        return None
    try:
        with sf.SoundFile(path) as audio:
            ok = audio.comment == expected_comment and audio.samplerate == sample_rate
            return audio.frames if ok else None
    except (sf.LibsndfileError, RuntimeError):
        return None


def trim_silence(x: np.ndarray, rate: int, threshold: float, min_silence: float, margin: float) -> np.ndarray:
    """Shorten leading/trailing silence longer than ``min_silence`` seconds to ``margin`` seconds."""
    loud = np.flatnonzero(np.abs(x) > threshold) if threshold > 0 else np.empty(0, dtype=np.int64)
    if loud.size == 0:
        return x
    start, end = int(loud[0]), len(x) - 1 - int(loud[-1])  # silent samples at each end
    keep = int(round(margin * rate))
    cut_start = start - keep if start > min_silence * rate else 0
    cut_end = end - keep if end > min_silence * rate else 0
    return x[cut_start: len(x) - cut_end]


# ---------------------------------------------------------------------------------------------------
# Worker side. Each pool process holds one espeak-ng instance (the library has global C state).

class _Espeak:
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

    def speak(self, text: str, name: str, pitch: int, pitch_range: int, rate: int, seed: int) -> bytes:
        """Int16 samples at ``self.sample_rate`` for ``text`` spoken by voice ``name``."""
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng cannot select voice {name}")
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, pitch_range, 0)
        self.lib.espeak_ng_SetRandSeed(seed)
        self._srand(seed)
        self._buffers = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return b"".join(self._buffers)


@dataclass(frozen=True)
class _Job:
    """One utterance as a worker sees it; ``path`` is None for an entry that is only spoken for its
    effect on espeak-ng's state (its file is already finished)."""

    text: str  # lowercased: espeak-ng spells out some all-capital words letter by letter
    name: str
    pitch: int
    pitch_range: int
    rate: int
    seed: int
    path: str | None
    comment: str


_ENGINE: _Espeak | None = None
_RESAMPLER: torchaudio.transforms.Resample | None = None
_SETTINGS: dict[str, float] = {}
_HEADER = struct.Struct("<ii")  # (job index or -1 for an error, payload bytes)


def _init_worker(lib_path: str, data_path: str, settings: dict[str, float], parent: int) -> None:
    global _ENGINE, _RESAMPLER, _SETTINGS
    _follow_parent(parent)
    torch.set_num_threads(1)  # the pool is the parallelism; more threads only contend
    _ENGINE = _Espeak(lib_path, data_path)
    # torchaudio.functional.resample's algorithm with its kernel computed once rather than per call
    # (that alone took two thirds of the resampling time).
    _RESAMPLER = torchaudio.transforms.Resample(_ENGINE.sample_rate, int(settings["sample_rate"]))
    _SETTINGS = settings


def _follow_parent(parent: int) -> None:
    """Leave interrupts to the parent and die with it, rather than render on as an orphan."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent terminates the pool
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def _speak_chunk_in_child(jobs: list[_Job], fd: int) -> None:
    """Speak every job in order, sending the samples of those with a path down ``fd``."""
    with os.fdopen(fd, "wb") as pipe:
        try:
            for i, job in enumerate(jobs):
                samples = _ENGINE.speak(job.text, job.name, job.pitch, job.pitch_range, job.rate, job.seed)
                if job.path is not None:
                    pipe.write(_HEADER.pack(i, len(samples)) + samples)
        except Exception:
            message = traceback.format_exc().encode()
            pipe.write(_HEADER.pack(-1, len(message)) + message)
            raise


def _render_chunk(jobs: list[_Job]) -> list[tuple[str, int]]:
    """Render the jobs with a path from a fresh copy of the just-initialized espeak-ng (see module doc).

    Returns (path, frames) of every file written.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only espeak-ng work, then leave without running any Python cleanup
        os.close(read_fd)
        code = 1
        try:
            _speak_chunk_in_child(jobs, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    written, error = [], None
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while header := pipe.read(_HEADER.size):
                index, size = _HEADER.unpack(header)
                payload = pipe.read(size)
                if index < 0 or len(payload) != size:
                    error = payload.decode(errors="replace") if index < 0 else "child output cut short"
                    break
                job = jobs[index]
                written.append((job.path, _write_flac(job, payload)))
    finally:
        _, status = os.waitpid(pid, 0)  # also when writing failed: the child then dies of the closed pipe
    if error is not None or status != 0:
        raise RuntimeError(f"espeak-ng child failed (status {status}):\n{error or ''}")
    return written


def _write_flac(job: _Job, samples: bytes) -> int:
    """Trim, resample and write one FLAC atomically; returns its frame count."""
    rate, out_rate = _ENGINE.sample_rate, int(_SETTINGS["sample_rate"])
    x = np.frombuffer(samples, dtype=np.int16).astype(np.float32) / 32768.0
    x = trim_silence(x, rate, _SETTINGS["trim_threshold"], _SETTINGS["trim_min_silence"],
                     _SETTINGS["trim_margin"])
    with torch.inference_mode():
        y = _RESAMPLER(torch.from_numpy(x))
        audio = (y * 32768.0).round().clamp(-32768, 32767).to(torch.int16).numpy()
    path = Path(job.path)
    # Same directory so that os.replace is atomic; the leading dot keeps *.flac globs off it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with sf.SoundFile(tmp, "w", out_rate, 1, "PCM_16", format="FLAC") as out:
        out.comment = job.comment
        out.write(audio)
    os.replace(tmp, path)
    return len(audio)


# ---------------------------------------------------------------------------------------------------
# Parent side.

def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _make_chunks(plan: list[PlannedUtterance], root: Path, cfg: SynthConfig,
                 frames: dict[str, int]) -> list[list[_Job]]:
    """The fixed CHUNK_SIZE slices of the plan that still have a file to render.

    Fills ``frames`` (relpath -> frame count) for files that are already finished.
    """
    chunks = []
    for start in range(0, len(plan), CHUNK_SIZE):
        jobs, todo = [], False
        for utt in plan[start: start + CHUNK_SIZE]:
            path = root / utt.relpath
            comment = fingerprint(utt, cfg)
            done = finished_frames(path, comment, cfg.sample_rate)
            if done is None:
                todo = True
            else:
                frames[utt.relpath] = done
            s = utt.speaker
            jobs.append(_Job(text=utt.text.lower(), name=s.espeak_name, pitch=s.pitch, pitch_range=s.range,
                             rate=utt.rate, seed=utt.seed, path=None if done is not None else str(path),
                             comment=comment))
        if todo:
            chunks.append(jobs)
    return chunks


def _remove_stale_temps(root: Path, plan: list[PlannedUtterance]) -> None:
    """Delete temp files a killed run left in the chapter directories."""
    for directory in {(root / utt.relpath).parent for utt in plan}:
        if directory.is_dir():
            for tmp in directory.glob(".*.flac.*.tmp"):
                tmp.unlink(missing_ok=True)


def _warn_about_strays(root: Path, plan: list[PlannedUtterance], cfg: SynthConfig) -> None:
    """Warn about corpus files this plan did not make: a LibriSpeech reader would trip over them."""
    planned = {utt.relpath for utt in plan}
    planned |= {f"{utt.subset}/{utt.speaker.id}/{utt.chapter}/{utt.speaker.id}-{utt.chapter}.trans.txt"
                for utt in plan}
    strays = [path for name in cfg.subsets.values() for pattern in ("*/*/*.flac", "*/*/*.trans.txt")
              for path in sorted((root / name).glob(pattern))
              if path.relative_to(root).as_posix() not in planned]
    if strays:
        warnings.warn(f"{root} holds {len(strays)} file(s) that are not part of this corpus (left by a run "
                      f"with other settings?), e.g. {strays[0]}; delete them or use another out_dir", stacklevel=3)


def write_transcripts(root: Path, plan: list[PlannedUtterance]) -> None:
    """One ``<speaker>-<chapter>.trans.txt`` per chapter, lines ``ID TEXT`` sorted by id."""
    chapters: dict[Path, list[str]] = defaultdict(list)
    for utt in plan:
        chapters[(root / utt.relpath).parent].append(f"{utt.id} {utt.text}\n")
    for directory, lines in chapters.items():
        directory.mkdir(parents=True, exist_ok=True)
        write_text_atomic(directory / f"{directory.parent.name}-{directory.name}.trans.txt",
                          "".join(sorted(lines)))


def write_speakers(root: Path, speakers: list[Speaker], plan: list[PlannedUtterance],
                   frames: dict[str, int], sample_rate: int, data_path: str) -> None:
    """``SPEAKERS.TXT`` in LibriSpeech's format; NAME records the voice that speaks as the speaker."""
    minutes: Counter[int] = Counter()
    subsets: dict[int, list[str]] = defaultdict(list)
    for utt in plan:
        minutes[utt.speaker.id] += frames.get(utt.relpath, 0) / sample_rate / 60
        if utt.subset not in subsets[utt.speaker.id]:
            subsets[utt.speaker.id].append(utt.subset)
    lines = ["; Synthetic speakers of asr-synth: espeak-ng voice+variant, pitch and pitch range\n",
             ";ID  |SEX| SUBSET           |MINUTES| NAME\n"]
    for s in speakers:
        lines.append(f"{s.id:<5}| {_variant_sex(data_path, s.variant)} | {','.join(subsets[s.id]):<17}| "
                     f"{minutes[s.id]:5.2f} | {s.espeak_name} pitch {s.pitch} range {s.range}\n")
    write_text_atomic(root / "SPEAKERS.TXT", "".join(lines))


def _variant_sex(data_path: str, variant: str) -> str:
    """F or M from the ``gender`` line of a variant file (espeak-ng's default is male)."""
    path = os.path.join(data_path, "voices", "!v", variant)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.split()[:2] == ["gender", "female"]:
                return "F"
    return "M"


def synthesize_corpus(cfg: SynthConfig | Mapping[str, Any] | Any) -> dict[str, Any]:
    """Render the corpus described by ``cfg`` (see SynthConfig) into ``<out_dir>/LibriSpeech``.

    Finished FLACs made with the same settings are kept, so a killed run can simply be started again.
    Returns ``{"subsets": {name: {"utterances", "speakers", "hours", "rendered"}}, "rendered",
    "skipped", "seconds", "root"}``.
    """
    started = time.monotonic()
    cfg = SynthConfig.from_any(cfg)
    lib_path, data_path = espeak_paths()
    speakers, plan = build_plan(cfg, data_path)
    root = Path(cfg.out_dir) / "LibriSpeech"
    for directory in {(root / utt.relpath).parent for utt in plan}:
        directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root, plan)

    frames: dict[str, int] = {}
    chunks = _make_chunks(plan, root, cfg, frames)
    skipped = len(frames)
    rendered = _render_all(chunks, cfg, lib_path, data_path, frames, root)

    write_transcripts(root, plan)
    write_speakers(root, speakers, plan, frames, cfg.sample_rate, data_path)
    _warn_about_strays(root, plan, cfg)
    return _stats(cfg, plan, frames, rendered, skipped, root, time.monotonic() - started)


def _render_all(chunks: list[list[_Job]], cfg: SynthConfig, lib_path: str, data_path: str,
                frames: dict[str, int], root: Path) -> set[str]:
    """Render the chunks over a process pool; returns the relpaths written."""
    settings = {"sample_rate": cfg.sample_rate, "trim_threshold": cfg.trim_threshold,
                "trim_min_silence": cfg.trim_min_silence, "trim_margin": cfg.trim_margin}
    todo = sum(job.path is not None for chunk in chunks for job in chunk)
    rendered: set[str] = set()
    if not chunks:
        return rendered
    jobs = max(1, min(cfg.jobs or _default_jobs(), len(chunks)))
    # fork: workers must start from the parent's memory, not re-import the caller's main module.
    context = mp.get_context("fork")
    with (context.Pool(jobs, initializer=_init_worker, initargs=(lib_path, data_path, settings, os.getpid())) as pool,
          tqdm(total=todo, unit="utt", desc="asr-synth", disable=not cfg.progress) as bar):
        for written in pool.imap_unordered(_render_chunk, chunks):
            for path, n in written:
                relpath = Path(path).relative_to(root).as_posix()
                frames[relpath] = n
                rendered.add(relpath)
            bar.update(len(written))
    return rendered


def _stats(cfg: SynthConfig, plan: list[PlannedUtterance], frames: dict[str, int], rendered: set[str],
           skipped: int, root: Path, seconds: float) -> dict[str, Any]:
    subsets = {}
    for key in SUBSET_KEYS:
        name = cfg.subsets[key]
        utts = [utt for utt in plan if utt.subset == name]
        subsets[name] = {
            "utterances": len(utts),
            "speakers": len({utt.speaker.id for utt in utts}),
            "hours": sum(frames[utt.relpath] for utt in utts) / cfg.sample_rate / 3600,
            "rendered": sum(utt.relpath in rendered for utt in utts),
        }
    return {"subsets": subsets, "rendered": len(rendered), "skipped": skipped, "seconds": seconds,
            "root": str(root)}


def format_summary(stats: dict[str, Any]) -> list[str]:
    """One line per subset and a total line, for printing."""
    lines = [f"{name:<14} {s['utterances']:6d} utterances {s['speakers']:4d} speakers {s['hours']:7.3f} h"
             for name, s in stats["subsets"].items()]
    lines.append(f"{stats['root']}: rendered {stats['rendered']}, kept {stats['skipped']} finished, "
                 f"in {stats['seconds']:.1f} s")
    return lines
