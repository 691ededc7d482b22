"""Streaming recognition: audio arrives in chunks of any size; features, listener frames and speller steps are
computed as far as the audio allows, and the text grows as it goes.

Exactness: with a unidirectional listener (`asr.models.streaming_listener`) and hard monotonic attention
(monotonic or MoChA), the final result equals offline `greedy_decode` of the whole utterance. A speller step
is taken only when the monotonic scan selects a frame that has arrived: the scan stops at the first frame
whose selection probability reaches 0.5, which frames arriving later cannot change. When the scan finds no
frame yet, the step is thrown away and taken again once more frames are there. At the end of the stream the
decoder goes on as offline decoding does (no frame selected: zero context).

    recognizer = StreamingRecognizer(*load_model_dir("exp/streaming"))   # asr.modeldir.load_model_dir
    for chunk in chunks:                      # float32 samples at 16 kHz, any length
        recognizer.accept(chunk); print(recognizer.text)
    recognizer.finish(); print(recognizer.text)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio

from ..frontend import MIN_SECONDS, SAMPLE_RATE, AudioError, GlobalNorm, LogMel, load_audio
from ..models.attention.monotonic import MonotonicAttention
from ..models.las import LAS


class StreamingFeatures:
    """`LogMel` then `GlobalNorm`, incrementally: samples (N,) in chunks of any size -> normalized frames
    (M, F), each given out as soon as its window is complete, equal to the offline frames.

    The offline STFT is centred: the signal is reflect-padded by n_fft // 2 at both ends, so the first frames
    need the first n_fft // 2 + 1 samples, and the last frames (reflected at the end) come only from `finish`.
    """

    def __init__(self, logmel: LogMel, norm: GlobalNorm):
        spec = logmel.mel.spectrogram
        if spec.pad or not spec.onesided or spec.pad_mode != "reflect":
            raise ValueError("StreamingFeatures supports the LogMel front end as configured in asr/frontend.py")
        self.logmel, self.norm, self.spec = logmel, norm, spec
        self.n_fft, self.hop = spec.n_fft, spec.hop_length
        self.edge = spec.n_fft // 2 if spec.center else 0  # reflect padding at each end
        self.reset()

    def reset(self) -> None:
        self.raw = torch.zeros(0)  # samples before the left padding could be built
        self.padded: torch.Tensor | None = None  # the padded signal from index `offset` on
        self.offset = 0
        self.samples = 0  # received so far
        self.frames = 0  # given out so far

    def _frames(self, segment: torch.Tensor) -> torch.Tensor:
        """Padded samples covering whole windows -> normalized frames (M, F), as LogMel.forward computes them."""
        s = self.spec
        power = torchaudio.functional.spectrogram(segment, 0, s.window, s.n_fft, s.hop_length, s.win_length,
                                                  s.power, s.normalized, center=False)
        return self.norm(torch.log(self.logmel.mel.mel_scale(power) + 1e-6).transpose(-1, -2))

    def _emit(self, ready: int) -> torch.Tensor:
        """Frames self.frames .. ready - 1 from the padded signal; drops the samples no later frame needs."""
        if self.padded is None or ready <= self.frames:
            return torch.zeros(0, self.logmel.mel.n_mels)
        begin = self.frames * self.hop - self.offset
        out = self._frames(self.padded[begin: (ready - 1) * self.hop + self.n_fft - self.offset])
        keep_from = ready * self.hop - self.offset
        self.padded, self.offset, self.frames = self.padded[keep_from:], ready * self.hop, ready
        return out

    @torch.no_grad()
    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """samples (N,) float32 at 16 kHz -> the frames (M, F) that became complete (M may be 0)."""
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.samples += samples.numel()
        if self.padded is None:
            self.raw = torch.cat([self.raw, samples])
            if self.raw.numel() <= self.edge:  # the left reflection needs samples 1 .. edge
                return self._emit(0)
            self.padded = torch.cat([self.raw[1: self.edge + 1].flip(0), self.raw])
            self.raw = torch.zeros(0)
        else:
            self.padded = torch.cat([self.padded, samples])
        available = self.edge + self.samples  # padded samples there are before the right padding
        ready = (available - self.n_fft) // self.hop + 1 if available >= self.n_fft else 0
        return self._emit(ready)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """End of stream: the last frames, whose windows reach into the right reflection. (M, F)."""
        if self.samples / SAMPLE_RATE < MIN_SECONDS or self.padded is None:
            raise AudioError(f"<stream>: too short ({self.samples / SAMPLE_RATE:.3f} s, need at least "
                             f"{MIN_SECONDS} s)")
        tail = self.padded[-self.edge - 1: -1].flip(0) if self.edge else self.padded[:0]
        self.padded = torch.cat([self.padded, tail])
        total = (self.samples + 2 * self.edge - self.n_fft) // self.hop + 1
        return self._emit(total)


@dataclass
class Emission:
    """One emitted token: when (audio seconds received when it was emitted) and where it attended
    (listener frame, -1 for no frame selected)."""

    token: int
    audio_seconds: float
    frame: int


class StreamingRecognizer:
    """Online greedy decoding of a LAS model with a streaming listener and hard monotonic attention.

    `accept(samples)` feeds a chunk and returns the tokens it made possible; `finish()` ends the stream;
    `text` is the text so far; `emissions` records when and where each token was emitted.
    """

    def __init__(self, model: LAS, tokenizer, logmel: LogMel, norm: GlobalNorm, max_len_ratio: float = 1.0):
        listener, attention = model.listener, model.speller.attention
        if not hasattr(listener, "stream_step"):
            raise ValueError(f"{type(listener).__name__} cannot stream: train with model/listener=ulstm")
        if not isinstance(attention, MonotonicAttention):
            raise ValueError(f"{type(attention).__name__} cannot stream (it attends over all frames): "
                             "train with model/attention=monotonic or mocha")
        self.model, self.tokenizer, self.max_len_ratio = model.eval(), tokenizer, max_len_ratio
        self.features = StreamingFeatures(logmel, norm)
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.features.reset()
        self.listener_state = self.model.listener.stream_init(1, self.device)
        self.speller_state = None
        self.frames = 0  # listener frames so far
        self.steps = 0  # speller steps taken (tokens, <eos> included)
        self.previous = torch.tensor([self.model.sos_eos], device=self.device)
        self.tokens: list[int] = []
        self.emissions: list[Emission] = []
        self.done = False

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.tokens)

    def max_steps(self, frames: int) -> int:
        """Offline greedy decoding's token limit for `frames` listener frames (the same float arithmetic)."""
        return int(torch.tensor([frames]).mul(self.max_len_ratio).ceil().long().clamp(min=1))

    @torch.inference_mode()
    def accept(self, samples: torch.Tensor | np.ndarray) -> list[int]:
        """Feed samples (N,), float32 at 16 kHz. Returns the tokens emitted because of them."""
        return self._advance(self.features.accept(torch.as_tensor(samples)), final=False)

    @torch.inference_mode()
    def finish(self) -> list[int]:
        """End the stream: complete the last frames and decode to the end. Returns the last tokens."""
        return self._advance(self.features.finish(), final=True)

    def _advance(self, feats: torch.Tensor, final: bool) -> list[int]:
        if self.done:
            return []
        memory, self.listener_state = self.model.listener.stream_step(feats.to(self.device).unsqueeze(0),
                                                                      self.listener_state, final)
        speller = self.model.speller
        if memory.shape[1]:
            if self.speller_state is None:
                self.speller_state = speller.init_state(memory, torch.tensor([memory.shape[1]]))
            else:
                attention = speller.attention.extend(self.speller_state.attention, memory)
                self.speller_state = replace(self.speller_state, attention=attention)
            self.frames += memory.shape[1]
        seconds = self.features.samples / SAMPLE_RATE
        # never more tokens than offline decoding allows for the frames so far: that limit only grows
        limit = self.max_steps(self.frames)
        new: list[int] = []
        while self.speller_state is not None and self.steps < limit:
            features, _, state = speller.step(self.previous, self.speller_state)
            frame = int(state.attention.extra["position"][0])
            if frame < 0 and not final:
                break  # the frame this step will attend has not arrived: wait for the next chunk
            logits = speller.output(features)
            logits[:, self.model.blank] = float("-inf")  # as greedy_decode: the CTC blank is not a speller token
            token = logits.argmax(-1)
            self.speller_state, self.previous, self.steps = state, token, self.steps + 1
            if int(token) == self.model.sos_eos:
                self.done = True
                break
            new.append(int(token))
            self.emissions.append(Emission(int(token), seconds, frame))
        self.tokens.extend(new)
        self.done |= final
        return new


def stream_samples(recognizer: StreamingRecognizer, wav: torch.Tensor, chunk_ms: float = 200.0,
                   on_partial: Callable[[str], None] | None = None) -> str:
    """Feed samples (N,) at 16 kHz in chunks of `chunk_ms`; on_partial(text) whenever the text grows.
    Returns the final text."""
    recognizer.reset()
    chunk = max(int(round(SAMPLE_RATE * chunk_ms / 1000)), 1)
    for start in range(0, wav.numel(), chunk):
        if recognizer.accept(wav[start: start + chunk]) and on_partial:
            on_partial(recognizer.text)
    if recognizer.finish() and on_partial:
        on_partial(recognizer.text)
    return recognizer.text


def stream_file(recognizer: StreamingRecognizer, path: str | Path, chunk_ms: float = 200.0,
                on_partial: Callable[[str], None] | None = None) -> str:
    """Recognize an audio file as if it arrived live in chunks of `chunk_ms`. Raises AudioError for a file
    that cannot be read."""
    return stream_samples(recognizer, load_audio(path), chunk_ms, on_partial)


def stream_microphone(recognizer: StreamingRecognizer, chunk_ms: float = 200.0,
                      on_partial: Callable[[str], None] | None = None, seconds: float | None = None,
                      device: int | str | None = None) -> str:
    """Recognize live microphone input (the optional `sounddevice` package) until `seconds` have passed or
    Ctrl-C; on_partial(text) whenever the text grows. Returns the final text."""
    try:
        import sounddevice
    except ImportError:
        raise RuntimeError("microphone input needs the optional sounddevice package: "
                           "pip install sounddevice") from None
    recognizer.reset()
    chunk = max(int(round(SAMPLE_RATE * chunk_ms / 1000)), 1)
    blocks = math.inf if seconds is None else math.ceil(seconds * SAMPLE_RATE / chunk)
    try:
        with sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=chunk,
                                     device=device) as stream:
            while blocks > 0:
                data, overflowed = stream.read(chunk)
                if overflowed:
                    print("asr: microphone overflow (audio dropped): the machine is too slow", file=sys.stderr)
                if recognizer.accept(torch.from_numpy(data[:, 0].copy())) and on_partial:
                    on_partial(recognizer.text)
                blocks -= 1
    except KeyboardInterrupt:
        pass
    if recognizer.finish() and on_partial:
        on_partial(recognizer.text)
    return recognizer.text
