"""Python API: `Transcriber.from_pretrained(DIR).transcribe(path_or_array)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from .decoding.greedy import greedy_decode
from .frontend import SAMPLE_RATE, AudioError, load_audio, prepare_samples
from .modeldir import load_model_dir

Audio = str | Path | np.ndarray | torch.Tensor


@dataclass
class Transcript:
    """The result for one input: `text`, or `error` (one line naming the input and the problem)."""

    source: str
    text: str = ""
    error: str | None = None
    duration: float = 0.0


class Transcriber:
    """A loaded model directory with its front end; decodes batches of files or arrays greedily."""

    def __init__(self, model, tokenizer, logmel, norm, max_len_ratio: float = 1.0, batch_seconds: float = 300.0):
        self.model, self.tokenizer, self.logmel, self.norm = model, tokenizer, logmel, norm
        self.max_len_ratio, self.batch_seconds = max_len_ratio, batch_seconds

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> Transcriber:
        return cls(*load_model_dir(directory), **kwargs)

    def features(self, audio: Audio, sample_rate: int = SAMPLE_RATE, name: str | None = None) -> torch.Tensor:
        """Normalized features (T, F) of a file path or an array of samples (N,) or (N, channels)."""
        if isinstance(audio, (str, Path)):
            wav = load_audio(audio)
        else:
            samples = audio.numpy() if isinstance(audio, torch.Tensor) else audio
            wav = prepare_samples(samples, sample_rate, name=name or "<array>")
        return self.norm(self.logmel(wav))

    @torch.inference_mode()
    def decode_features(self, feats: Sequence[torch.Tensor]) -> list[str]:
        lengths = torch.tensor([len(f) for f in feats])
        tokens, _ = greedy_decode(self.model, pad_sequence(list(feats), batch_first=True), lengths,
                                  self.max_len_ratio)
        return [self.tokenizer.decode(t) for t in tokens]

    def transcribe_many(self, inputs: Sequence[Audio], sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
        """Transcribe many inputs in length-sorted batches; a bad input gets an error, the rest go on."""
        results, ready = [], []
        for i, item in enumerate(inputs):
            name = str(item) if isinstance(item, (str, Path)) else f"<array {i}>"
            try:
                feats = self.features(item, sample_rate, name)
                results.append(Transcript(name, duration=len(feats) / 100))
                ready.append((i, feats))
            except AudioError as err:
                results.append(Transcript(name, error=str(err)))
        ready.sort(key=lambda x: len(x[1]))
        batch: list[tuple[int, torch.Tensor]] = []
        for j, (i, feats) in enumerate(ready):
            batch.append((i, feats))
            # sorted by length, so the next item would pad the batch to its own length
            if j == len(ready) - 1 or len(ready[j + 1][1]) * (len(batch) + 1) > self.batch_seconds * 100:
                for (k, _), text in zip(batch, self.decode_features([f for _, f in batch])):
                    results[k].text = text
                batch = []
        return results

    def transcribe(self, audio: Audio, sample_rate: int = SAMPLE_RATE) -> str:
        """Transcribe one file or array; raises AudioError for input that cannot be transcribed."""
        result = self.transcribe_many([audio], sample_rate)[0]
        if result.error:
            raise AudioError(result.error)
        return result.text
