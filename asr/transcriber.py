"""Python API: `Transcriber.from_pretrained(DIR).transcribe(path_or_array)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from .decoding.search import Search
from .decoding.timestamps import Word, word_times
from .frontend import SAMPLE_RATE, AudioError, load_audio, prepare_samples
from .modeldir import load_model_dir
from .segmenter import SegmenterOptions, is_silent, split_on_silence

Audio = str | Path | np.ndarray | torch.Tensor


@dataclass
class Transcript:
    """The result for one input: `text` and its `words` with times, or `error` (one line naming the input
    and the problem)."""

    source: str
    text: str = ""
    error: str | None = None
    duration: float = 0.0
    words: list[Word] = field(default_factory=list)


@dataclass
class _Piece:
    """A stretch of one input to decode: its features and where it starts in the input (seconds)."""

    index: int
    feats: torch.Tensor
    offset: float


class Transcriber:
    """A loaded model directory with its front end and a search (greedy by default).

    segment: split each input on silence into pieces of at most `segmenter.max_seconds` (long recordings);
    an input with no speech at all (digital silence) gives an empty transcript either way.
    """

    def __init__(self, model, tokenizer, logmel, norm, search: Search | None = None, segment: bool = False,
                 segmenter: SegmenterOptions | None = None, batch_seconds: float = 300.0):
        self.model, self.tokenizer, self.logmel, self.norm = model, tokenizer, logmel, norm
        self.search = search or Search()
        self.segment, self.segmenter = segment, segmenter or SegmenterOptions()
        self.batch_seconds = batch_seconds

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> Transcriber:
        return cls(*load_model_dir(directory), **kwargs)

    def samples(self, audio: Audio, sample_rate: int = SAMPLE_RATE, name: str | None = None) -> torch.Tensor:
        """Mono 16 kHz samples (N,) of a file path or an array of samples (N,) or (N, channels)."""
        if isinstance(audio, (str, Path)):
            return load_audio(audio)
        samples = audio.numpy() if isinstance(audio, torch.Tensor) else audio
        return prepare_samples(samples, sample_rate, name=name or "<array>")

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        return self.norm(self.logmel(wav))

    def pieces(self, index: int, wav: torch.Tensor) -> list[_Piece]:
        if self.segment:
            spans = split_on_silence(wav, self.segmenter)
        else:  # whole input, unless it is silence
            spans = [] if is_silent(wav) else [(0, wav.numel())]
        return [_Piece(index, self.features(wav[a:b]), a / SAMPLE_RATE) for a, b in spans
                if b - a >= SAMPLE_RATE // 10]

    @torch.inference_mode()
    def decode_pieces(self, pieces: Sequence[_Piece]) -> list[tuple[str, list[Word]]]:
        feats = [p.feats for p in pieces]
        lengths = torch.tensor([len(f) for f in feats])
        hyps = self.search(self.model, pad_sequence(feats, batch_first=True), lengths, frames=True)
        reduction = getattr(self.model.listener, "reduction", 4)
        return [(self.tokenizer.decode(h.tokens),
                 word_times(self.tokenizer.symbols, h.tokens, h.frames, reduction, p.offset))
                for h, p in zip(hyps, pieces)]

    def transcribe_many(self, inputs: Sequence[Audio], sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
        """Transcribe many inputs in length-sorted batches; a bad input gets an error, the rest go on."""
        results, ready = [], []
        for i, item in enumerate(inputs):
            name = str(item) if isinstance(item, (str, Path)) else f"<array {i}>"
            try:
                wav = self.samples(item, sample_rate, name)
                results.append(Transcript(name, duration=round(wav.numel() / SAMPLE_RATE, 3)))
                ready += self.pieces(i, wav)
            except AudioError as err:
                results.append(Transcript(name, error=str(err)))
        ready.sort(key=lambda p: len(p.feats))
        decoded: dict[int, list[tuple[float, str, list[Word]]]] = {}
        batch: list[_Piece] = []
        for j, piece in enumerate(ready):
            batch.append(piece)
            # sorted by length, so the next piece would pad the batch to its own length
            if j == len(ready) - 1 or len(ready[j + 1].feats) * (len(batch) + 1) > self.batch_seconds * 100:
                for p, (text, words) in zip(batch, self.decode_pieces(batch)):
                    decoded.setdefault(p.index, []).append((p.offset, text, words))
                batch = []
        for i, parts in decoded.items():
            parts.sort(key=lambda x: x[0])
            results[i].text = " ".join(t for _, t, _ in parts if t)
            results[i].words = [w for _, _, words in parts for w in words]
        return results

    def transcribe(self, audio: Audio, sample_rate: int = SAMPLE_RATE) -> str:
        """Transcribe one file or array; raises AudioError for input that cannot be transcribed."""
        result = self.transcribe_many([audio], sample_rate)[0]
        if result.error:
            raise AudioError(result.error)
        return result.text
