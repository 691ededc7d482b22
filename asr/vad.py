"""Voice activity detection with Silero VAD (the 16 kHz network bundled in the silero-vad wheel, no download).

Silero's own loop feeds the network one 32 ms chunk (512 samples, plus the previous chunk's last 64 samples as
context) per Python call. Only its LSTM carries anything from one chunk to the next, so `SileroNet` runs the
same weights over a whole recording at once: the spectrogram and the convolutions of every chunk in one
batch, then the LSTM over the chunk sequence in one call. Its probabilities equal silero's chunk by chunk
(tests/test_vad.py) at a fraction of the cost. Spans are then made from the probabilities by silero's own
rule (`get_speech_timestamps_from_probs`: hysteresis, shortest speech, shortest pause) and padded here, more
before than after: the network notices speech a little late (on the synthesized test set its spans start 23 ms
after the energy rule's on average, up to 140 ms) and lets go of it later still (61 ms after, up to 120 ms).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .frontend import SAMPLE_RATE

CHUNK = 512      # samples the network scores at a time (32 ms at 16 kHz)
CONTEXT = 64     # samples of the previous chunk it sees in front of each chunk
BLOCK = 8192     # chunks (about 4.4 min) batched through the convolutions at once, to bound memory


@dataclass
class VadOptions:
    """conf/decode.yaml `vad`."""

    threshold: float = 0.5        # speech probability from which a chunk counts as speech
    min_speech_ms: int = 250      # shorter stretches of speech are dropped
    min_silence_ms: int = 100     # shorter pauses do not end a stretch of speech
    pad_before_ms: int = 60       # milliseconds kept before each stretch of speech
    pad_after_ms: int = 0         # milliseconds kept after each stretch of speech
    ctc_gate: bool = True         # also ask the model: a piece whose CTC best path is empty gets no text
    ctc_rescue: float = 8.0       # decode an input the detector finds no speech in when the CTC head reads this
                                  # many characters per second in it (0: off) ...
    rescue_agreement: float = 20.0  # ... and keep the transcript when it is within this CER (%) of that reading


class SileroNet(nn.Module):
    """Silero VAD v5's 16 kHz network, run over a whole recording: samples (N,) -> speech probability per
    chunk (ceil(N / 512),). Starts from a zero state (and zero context) on every call."""

    def __init__(self):
        super().__init__()
        self.register_buffer("stft_basis", torch.zeros(258, 1, 256))  # real and imaginary DFT rows, 129 each
        self.encoder = nn.ModuleList([nn.Conv1d(129, 128, 3, 1, 1), nn.Conv1d(128, 64, 3, 2, 1),
                                      nn.Conv1d(64, 64, 3, 2, 1), nn.Conv1d(64, 128, 3, 1, 1)])
        self.rnn = nn.LSTM(128, 128, batch_first=True)
        self.out = nn.Conv1d(128, 1, 1)

    @classmethod
    def from_silero(cls, jit_model: torch.jit.ScriptModule) -> SileroNet:
        """Copy the 16 kHz weights of silero_vad.load_silero_vad()'s TorchScript model."""
        src = {k.removeprefix("_model."): v for k, v in jit_model.state_dict().items() if k.startswith("_model.")}
        net = cls()
        state = {"stft_basis": src["stft.forward_basis_buffer"],
                 "out.weight": src["decoder.decoder.2.weight"], "out.bias": src["decoder.decoder.2.bias"]}
        for i in range(4):
            for p in ("weight", "bias"):
                state[f"encoder.{i}.{p}"] = src[f"encoder.{i}.reparam_conv.{p}"]
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"rnn.{p}_l0"] = src[f"decoder.rnn.{p}"]
        net.load_state_dict(state)
        return net.eval()

    def encode(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (C, 576): each chunk with its context -> features (C, 128)."""
        x = F.pad(chunks[:, None], (0, CONTEXT), mode="reflect")  # (C, 1, 640), as silero pads
        spec = F.conv1d(x, self.stft_basis, stride=128)  # (C, 258, 4)
        x = spec[:, :129].square().add(spec[:, 129:].square()).sqrt()
        for conv in self.encoder:
            x = F.relu(conv(x))
        return x.squeeze(-1)  # the strided convolutions leave one frame per chunk

    @torch.inference_mode()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n_chunks = -(-wav.numel() // CHUNK)
        # each chunk sees the 64 samples before it (zeros before the first); the last chunk is zero padded
        wav = F.pad(wav.float(), (CONTEXT, n_chunks * CHUNK - wav.numel()))
        chunks = wav.unfold(0, CHUNK + CONTEXT, CHUNK)  # (C, 576), a view
        probs, state = [], None
        for start in range(0, n_chunks, BLOCK):
            h, state = self.rnn(self.encode(chunks[start:start + BLOCK])[None], state)  # (1, c, 128)
            probs.append(torch.sigmoid(self.out(F.relu(h).transpose(1, 2)))[0, 0])
        return torch.cat(probs) if probs else wav.new_zeros(0)


def import_silero():
    """The silero_vad package; importing it sets torch's thread count to 1, which is put back."""
    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside, as many as before after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.cache
def load_silero_net() -> SileroNet:
    """The bundled network, loaded once per process."""
    silero_vad = import_silero()
    with warnings.catch_warnings():  # deprecation notices of torch.jit.load and of importlib.resources.path
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        jit_model = silero_vad.load_silero_vad()
    return SileroNet.from_silero(jit_model)


class VoiceActivity:
    """Where a 16 kHz recording holds speech. The network is shared by every instance; each call starts from
    a fresh state, so no input's audio leaks into the next one's probabilities."""

    def __init__(self, options: VadOptions | None = None):
        self.options = options or VadOptions()
        if not 0 < self.options.threshold < 1:
            raise ValueError(f"vad.threshold must be between 0 and 1, not {self.options.threshold}")
        self.net = load_silero_net()

    def probabilities(self, wav: torch.Tensor) -> torch.Tensor:
        """samples (N,) at 16 kHz -> speech probability of each 512-sample chunk (ceil(N / 512),)."""
        # one thread: each LSTM step is a (1, 128) x (128, 512) product, too small to share, and a second
        # thread waiting at every one of them costs several times the whole computation on a busy machine
        with one_thread():
            return self.net(wav)

    @property
    def pads(self) -> tuple[int, int]:
        """Samples kept before and after each stretch of speech."""
        return (self.options.pad_before_ms * SAMPLE_RATE // 1000, self.options.pad_after_ms * SAMPLE_RATE // 1000)

    def spans_from(self, probs: torch.Tensor, n_samples: int, pad: bool = True) -> list[tuple[int, int]]:
        """probabilities (C,) of a recording of n_samples -> speech spans [(start, end)] in samples, in
        order; pad=False leaves out the margins."""
        opt = self.options
        from_probs = import_silero().get_speech_timestamps_from_probs
        spans = from_probs(probs.tolist(), sampling_rate=SAMPLE_RATE, threshold=opt.threshold,
                           min_speech_duration_ms=opt.min_speech_ms, min_silence_duration_ms=opt.min_silence_ms,
                           speech_pad_ms=0, audio_length_samples=n_samples)
        spans = [(int(s["start"]), int(s["end"])) for s in spans]
        return pad_spans(spans, *self.pads, n_samples) if pad else spans

    def speech_spans(self, wav: torch.Tensor, pad: bool = True) -> list[tuple[int, int]]:
        """samples (N,) at 16 kHz -> speech spans [(start, end)] in samples, in order; empty: no speech."""
        return self.spans_from(self.probabilities(wav), wav.numel(), pad)


def pad_spans(spans: list[tuple[int, int]], before: int, after: int, n_samples: int) -> list[tuple[int, int]]:
    """Spans [(start, end)] in order, widened by `before` and `after` samples within [0, n_samples]; where two
    would overlap they meet in their gap, split in the ratio before : after."""
    padded = []
    for i, (start, end) in enumerate(spans):
        lo = 0 if i == 0 else spans[i - 1][1] + (start - spans[i - 1][1]) * after // max(before + after, 1)
        hi = n_samples if i == len(spans) - 1 else end + (spans[i + 1][0] - end) * after // max(before + after, 1)
        padded.append((max(lo, start - before), min(hi, end + after)))
    return padded
