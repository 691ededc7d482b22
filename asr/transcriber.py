"""Python API: `Transcriber.from_pretrained(DIR).transcribe(path_or_array)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from .decoding.greedy import ctc_greedy_decode
from .decoding.search import Search
from .decoding.search_config import read_search_file
from .decoding.timestamps import Word, word_times
from .frontend import FRAMES_PER_SECOND, SAMPLE_RATE, AudioError, load_audio, prepare_samples
from .modeldir import load_model_dir
from .models.attention.windowed import add_decode_window
from .scoring import score
from .segmenter import SegmenterOptions, is_silent, split_on_silence
from .vad import VadOptions, VoiceActivity

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
    """A stretch of one input to decode: its features and where it starts in the input (seconds). The CTC gate
    listens to `heard_in` instead of `feats` when given (the detector's stretch of speech in an input decoded
    whole), and wants a best path of at least `min_chars_per_second` (an input the detector found no speech in)."""

    index: int
    feats: torch.Tensor
    offset: float
    heard_in: torch.Tensor | None = None
    min_chars_per_second: float = 0.0


class Transcriber:
    """A loaded model directory with its front end, a voice activity detector and a search (greedy by default;
    from_pretrained takes the directory's own search when it carries one).

    Every input goes through the detector first, so noise, music or hum give no text. An input longer than
    `segmenter.max_seconds` (the length of the longest training utterances) is split at its pauses into pieces of
    at most that length, decoded one by one; a shorter one (or any, with segment=False) is decoded whole, as
    asr-decode decodes an utterance. With `vad.ctc_gate`, the model's CTC head must also hear a token in each
    piece (in an input decoded whole: in the detector's stretch of speech, `segmenter.edge_margin` around it). An
    input decoded whole in which the detector finds no speech gets an empty transcript, unless the CTC head reads
    at least `vad.ctc_rescue` characters per second in it and the search's transcript agrees with that reading
    (`vad.rescue_agreement`): the detector misses whispered speech.
    """

    def __init__(self, model, tokenizer, logmel, norm, search: Search | None = None, segment: bool = True,
                 segmenter: SegmenterOptions | None = None, batch_seconds: float = 300.0,
                 vad: VadOptions | None = None):
        self.model, self.tokenizer, self.logmel, self.norm = model, tokenizer, logmel, norm
        self.search = search or Search()
        if self.search.method == "beam" and self.search.beam.ctc_weight > 0 and model.ctc_head is None:
            # found now rather than at the first batch, where it would end every input with the same error
            raise ValueError(f"search: ctc_weight {self.search.beam.ctc_weight} needs a model with a CTC head, "
                             f"and this one has none (ctc_weight 0 searches without it)")
        self.segment, self.segmenter = segment, segmenter or SegmenterOptions()
        self.batch_seconds = batch_seconds
        self.vad = VoiceActivity(vad)

    @classmethod
    def from_pretrained(cls, directory: str | Path, search: Search | None = None, **kwargs) -> Transcriber:
        """Load a model directory. The search is `search` when given (Search() is greedy); else the one the
        directory carries (search.yaml and lm/, written by asr-export), with its decode-time attention window;
        else greedy. A malformed directory raises ValueError or FileNotFoundError naming the file."""
        model, tokenizer, logmel, norm = load_model_dir(directory)
        if search is None:
            bundle = read_search_file(directory)
            if bundle is not None:
                search = bundle.build()
                if bundle.window:
                    add_decode_window(model, *bundle.window)
        return cls(model, tokenizer, logmel, norm, search=search, **kwargs)

    def samples(self, audio: Audio, sample_rate: int = SAMPLE_RATE, name: str | None = None) -> torch.Tensor:
        """Mono 16 kHz samples (N,) of a file path or an array of samples (N,) or (N, channels)."""
        if isinstance(audio, (str, Path)):
            return load_audio(audio)
        samples = audio.numpy() if isinstance(audio, torch.Tensor) else audio
        return prepare_samples(samples, sample_rate, name=name or "<array>")

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        return self.norm(self.logmel(wav))

    def pieces(self, index: int, wav: torch.Tensor) -> list[_Piece]:
        """samples (N,) of input `index` -> what to decode of it; empty when there is nothing to decode."""
        if is_silent(wav):
            return []
        if self.segment and wav.numel() > self.segmenter.max_seconds * SAMPLE_RATE:
            return [_Piece(index, self.features(wav[a:b]), a / SAMPLE_RATE)
                    for a, b in split_on_silence(wav, self.segmenter, self.vad) if b - a >= SAMPLE_RATE // 10]
        speech = self.vad.speech_spans(wav)
        if speech:
            margin = round(self.segmenter.edge_margin * SAMPLE_RATE)
            start, end = max(speech[0][0] - margin, 0), min(speech[-1][1] + margin, wav.numel())
            return [_Piece(index, self.features(wav), 0.0, heard_in=self.features(wav[start:end]))]
        if self.vad.options.ctc_rescue > 0 and self.model.ctc_head is not None:
            return [_Piece(index, self.features(wav), 0.0, min_chars_per_second=self.vad.options.ctc_rescue)]
        return []

    @torch.inference_mode()
    def heard(self, pieces: Sequence[_Piece]) -> list[str | None]:
        """What the model's CTC head reads (its best path as text) in each piece that it hears enough in: any token
        (with vad.ctc_gate) and at least the piece's min_chars_per_second; None where it does not. "" where
        neither asks (or the model has no CTC head)."""
        gate = self.vad.options.ctc_gate
        asks = [self.model.ctc_head is not None and (gate or p.min_chars_per_second > 0) for p in pieces]
        out: list[str | None] = [""] * len(pieces)
        feats = [p.feats if p.heard_in is None else p.heard_in for p, a in zip(pieces, asks) if a]
        if not feats:
            return out
        tokens, _ = ctc_greedy_decode(self.model, pad_sequence(feats, batch_first=True),
                                      torch.tensor([len(f) for f in feats]))
        listened = iter(zip(tokens, feats))
        for i, (p, a) in enumerate(zip(pieces, asks)):
            if a:
                best, heard_feats = next(listened)
                reading = self.tokenizer.decode(best)
                rate = len(reading.replace(" ", "")) / (len(heard_feats) / FRAMES_PER_SECOND)
                out[i] = reading if best and rate >= p.min_chars_per_second else None
        return out

    @torch.inference_mode()
    def decode_pieces(self, pieces: Sequence[_Piece]) -> list[tuple[str, list[Word]]]:
        """(text, words) per piece; a piece the CTC gate finds empty is not searched. A rescued piece (one the
        detector found no speech in) keeps its text only where the search agrees with the CTC head's reading
        (character error rate between them at most vad.rescue_agreement): on noise, a CTC head reads runs of
        letters that no speller spells the same way."""
        readings = self.heard(pieces)
        out: list[tuple[str, list[Word]]] = [("", [])] * len(pieces)
        feats = [p.feats for p, r in zip(pieces, readings) if r is not None]
        if not feats:
            return out
        hyps = iter(self.search(self.model, pad_sequence(feats, batch_first=True),
                                torch.tensor([len(f) for f in feats]), frames=True, symbols=self.tokenizer.symbols))
        reduction = getattr(self.model.listener, "reduction", 4)
        for i, (p, reading) in enumerate(zip(pieces, readings)):
            if reading is None:
                continue
            hyp = next(hyps)
            text = self.tokenizer.decode(hyp.tokens)
            if p.min_chars_per_second > 0 and not self.agrees(reading, text):
                continue
            out[i] = (text, word_times(self.tokenizer.symbols, hyp.tokens, hyp.frames, reduction, p.offset))
        return out

    def agrees(self, reading: str, text: str) -> bool:
        """Whether a transcript is within vad.rescue_agreement (CER, %) of the CTC head's reading."""
        limit = self.vad.options.rescue_agreement
        return bool(text.strip()) and score({"piece": reading}, {"piece": text})["cer"] <= limit

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
            limit = self.batch_seconds * FRAMES_PER_SECOND
            if j == len(ready) - 1 or len(ready[j + 1].feats) * (len(batch) + 1) > limit:
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
