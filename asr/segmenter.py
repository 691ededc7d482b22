"""Split long recordings on silence so each piece decodes like a normal utterance.

Energy-based: 25 ms frames every 10 ms; a frame is silent when its energy is `threshold_db` below the
recording's loud frames (95th percentile), so the split adapts to the recording's level. Pieces end in the
middle of every pause of at least `min_pause`, and a piece still longer than `max_seconds` is cut in its
longest shorter pause until none is; pieces without speech are dropped. Each piece is then trimmed to its
speech and `margin` seconds either side: a model trained on tightly cut utterances decodes a piece that
starts and ends in silence worse (mini recipe: greedy WER 28.9% on 40 test files, 30.7% with 0.15 s of
silence added at each end).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .frontend import SAMPLE_RATE

HOP = SAMPLE_RATE // 100
WINDOW = SAMPLE_RATE * 25 // 1000
SILENT_PEAK = 1e-4  # below this amplitude a recording is digital silence, whatever its relative level
MIN_CUT_FRAMES = 5  # 50 ms: the shortest pause a piece that is too long may be cut in


@dataclass
class SegmenterOptions:
    max_seconds: float = 20.0     # pieces longer than this are cut again at their longest pause
    min_pause: float = 0.25       # every pause at least this long (seconds) ends a piece
    threshold_db: float = 35.0    # silence: this far below the loud frames' energy
    margin: float = 0.05          # seconds of silence kept before and after the speech of each piece


def frame_energy_db(wav: torch.Tensor) -> torch.Tensor:
    """(N,) samples -> (frames,) energy in dB."""
    if wav.numel() < WINDOW:
        wav = torch.nn.functional.pad(wav, (0, WINDOW - wav.numel()))
    frames = wav.unfold(0, WINDOW, HOP)
    return 10 * torch.log10(frames.pow(2).mean(-1) + 1e-12)


def is_silent(wav: torch.Tensor) -> bool:
    """Digital silence: nothing to transcribe, whatever the level of the rest of a recording."""
    return wav.numel() == 0 or bool(wav.abs().max() < SILENT_PEAK)


def speech_frames(wav: torch.Tensor, threshold_db: float) -> torch.Tensor:
    """(frames,) bool: True where there is speech."""
    if is_silent(wav):
        return torch.zeros(max(1, (wav.numel() - WINDOW) // HOP + 1), dtype=torch.bool)
    energy = frame_energy_db(wav)
    return energy > torch.quantile(energy, 0.95) - threshold_db


def pauses(speech: torch.Tensor, min_frames: int) -> list[tuple[int, int]]:
    """Runs of silent frames (start, end) at least `min_frames` long, in frames."""
    runs, start = [], None
    for i, s in enumerate(speech.tolist() + [True]):
        if not s and start is None:
            start = i
        elif s and start is not None:
            if i - start >= min_frames:
                runs.append((start, i))
            start = None
    return runs


def split_on_silence(wav: torch.Tensor, options: SegmenterOptions | None = None) -> list[tuple[int, int]]:
    """(N,) samples at 16 kHz -> [(start, end)] sample spans, in order, each at most max_seconds long
    unless it has no pause to cut at; empty when there is no speech."""
    opt = options or SegmenterOptions()
    speech = speech_frames(wav, opt.threshold_db)
    if not speech.any():
        return []
    # every pause of min_pause ends a piece: a LAS model trained on single sentences tends to stop after the
    # first one or skip ahead when a piece holds several
    gaps = pauses(speech, MIN_CUT_FRAMES)
    cuts = [(a + b) // 2 for a, b in gaps if b - a >= round(opt.min_pause * 100)]
    bounds = [0, *cuts, len(speech)]
    max_frames = round(opt.max_seconds * 100)
    pieces, todo = [], list(zip(bounds[:-1], bounds[1:]))[::-1]
    while todo:  # a piece still too long is cut in its longest shorter pause
        start, end = todo.pop()
        inner = [(a, b) for a, b in gaps if a > start and b < end]
        if end - start <= max_frames or not inner:
            pieces.append((start, end))
            continue
        a, b = max(inner, key=lambda g: g[1] - g[0])
        middle = (a + b) // 2
        todo += [(middle, end), (start, middle)]
    spans, margin = [], round(opt.margin * 100)
    for start, end in sorted(pieces):
        voiced = speech[start:end].nonzero().flatten()
        if len(voiced):
            first, last = start + int(voiced[0]), start + int(voiced[-1])
            start, end = max(start, first - margin), min(end, last + 1 + margin)
            spans.append((start * HOP, min(wav.numel(), end * HOP + WINDOW)))
    return spans
