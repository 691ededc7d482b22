"""Rendering planned utterances to FLAC over a pool of processes, deterministically.

espeak-ng keeps state between utterances that is never reset (e.g. the pitch flutter phase, a
function-level static in its wave generator), so the same utterance spoken after different predecessors
comes out slightly different. Each worker therefore initializes the library once and forks a fresh child
for every fixed chunk of ``CHUNK_SIZE`` consecutive plan entries; the child speaks the whole chunk in
order, so every file depends only on the plan, not on ``jobs``, scheduling or which files a resumed run
skips. Forking per chunk rather than per utterance keeps the fork cost (milliseconds in a process that
has torch loaded) small next to the synthesis.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing as mp
import os
import signal
import struct
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from .espeak import Espeak
from .synth_audio import add_edge_silence, trim_silence
from .synth_plan import PlannedUtterance, SynthConfig

# Part of the determinism contract: changing it changes the bytes of the rendered files.
CHUNK_SIZE = 32
# Bumped when rendering changes, so that a resumed run re-renders files made the old way.
RENDER_VERSION = 2


def fingerprint(utt: PlannedUtterance, cfg: SynthConfig) -> str:
    """What the FLAC's comment field records, so that a resumed run with other settings re-renders it."""
    text = hashlib.sha1(utt.text.encode()).hexdigest()[:16]
    s = utt.speaker
    edge = "none" if utt.edge is None else f"{utt.edge[0]},{utt.edge[1]},{cfg.edge_noise_db}"
    return (f"asr-synth {RENDER_VERSION} {s.espeak_name} pitch={s.pitch} range={s.range} gap={s.word_gap} "
            f"rate={utt.rate} seed={utt.seed} trim={cfg.trim_threshold},{cfg.trim_min_silence},{cfg.trim_margin} "
            f"edge={edge} text={text}")


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


@dataclass(frozen=True)
class _Job:
    """One utterance as a worker sees it; ``path`` is None for an entry that is only spoken for its
    effect on espeak-ng's state (its file is already finished)."""

    text: str  # lowercased: espeak-ng spells out some all-capital words letter by letter
    name: str
    pitch: int
    pitch_range: int
    word_gap: int
    rate: int
    seed: int
    edge: tuple[float, float] | None
    path: str | None
    comment: str


# ---------------------------------------------------------------------------------------------------
# Worker side. Each pool process holds one espeak-ng instance (the library has global C state).

_ENGINE: Espeak | None = None
_RESAMPLER: torchaudio.transforms.Resample | None = None
_SETTINGS: dict[str, float | None] = {}
_HEADER = struct.Struct("<ii")  # (job index or -1 for an error, payload bytes)


def _init_worker(lib_path: str, data_path: str, settings: dict[str, float | None], parent: int) -> None:
    global _ENGINE, _RESAMPLER, _SETTINGS
    _follow_parent(parent)
    torch.set_num_threads(1)  # the pool is the parallelism; more threads only contend
    _ENGINE = Espeak(lib_path, data_path)
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
                samples = _ENGINE.speak(job.text, job.name, job.pitch, job.pitch_range, job.rate, job.seed,
                                        job.word_gap)
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


def _to_output(job: _Job, samples: bytes) -> np.ndarray:
    """Float samples at the output rate: trimmed as usual, or with the job's edge silence."""
    x = np.frombuffer(samples, dtype=np.int16).astype(np.float32) / 32768.0
    if job.edge is None:
        x = trim_silence(x, _ENGINE.sample_rate, _SETTINGS["trim_threshold"], _SETTINGS["trim_min_silence"],
                         _SETTINGS["trim_margin"])
    with torch.inference_mode():
        y = _RESAMPLER(torch.from_numpy(x)).numpy()
    if job.edge is not None:
        y = add_edge_silence(y, int(_SETTINGS["sample_rate"]), *job.edge, threshold=_SETTINGS["trim_threshold"],
                             noise_db=_SETTINGS["edge_noise_db"], seed=job.seed)
    return y


def _write_flac(job: _Job, samples: bytes) -> int:
    """Trim or pad, resample and write one FLAC atomically; returns its frame count."""
    y = _to_output(job, samples)
    audio = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    path = Path(job.path)
    # Same directory so that os.replace is atomic; the leading dot keeps *.flac globs off it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with sf.SoundFile(tmp, "w", int(_SETTINGS["sample_rate"]), 1, "PCM_16", format="FLAC") as out:
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


def make_chunks(plan: list[PlannedUtterance], root: Path, cfg: SynthConfig,
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
                             word_gap=s.word_gap, rate=utt.rate, seed=utt.seed, edge=utt.edge,
                             path=None if done is not None else str(path), comment=comment))
        if todo:
            chunks.append(jobs)
    return chunks


def render_chunks(chunks: list[list[_Job]], cfg: SynthConfig, lib_path: str, data_path: str,
                  frames: dict[str, int], root: Path) -> set[str]:
    """Render the chunks over a process pool; fills ``frames`` and returns the relpaths written."""
    settings = {"sample_rate": cfg.sample_rate, "trim_threshold": cfg.trim_threshold,
                "trim_min_silence": cfg.trim_min_silence, "trim_margin": cfg.trim_margin,
                "edge_noise_db": cfg.edge_noise_db}
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
