"""Streaming recognition: incremental features, listener frames and decoding equal their offline versions."""

import math
import sys
import types
from pathlib import Path

import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from asr.data.tokenizer import CharTokenizer
from asr.decoding.greedy import greedy_decode
from asr.decoding.streaming import StreamingFeatures, StreamingRecognizer, stream_file, stream_microphone
from asr.frontend import GlobalNorm, LogMel
from asr.models.las import build_model
from asr.models.streaming_listener import UnidirectionalListener

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
CHUNKS_MS = (100, 160, 250, 400)


def chirp(seconds: float = 2.1, seed: int = 0) -> torch.Tensor:
    """A rising tone with a slow amplitude swing and a little noise: features that change over time."""
    g = torch.Generator().manual_seed(seed)
    n = int(16000 * seconds)
    t = torch.arange(n) / 16000
    wav = 0.3 * torch.sin(2 * math.pi * (200 + 300 * t) * t) * (1 + torch.sin(2 * math.pi * 1.5 * t))
    return wav + 0.05 * torch.randn(n, generator=g)


def feed(stream_fn, finish_fn, wav: torch.Tensor, chunk: int) -> list:
    parts = [stream_fn(wav[s: s + chunk]) for s in range(0, wav.numel(), chunk)]
    return parts + [finish_fn()]


@pytest.mark.parametrize("chunk", [37, 160, 1600, 2560, 4000, 6400])
def test_incremental_features_equal_offline(chunk):
    wav = chirp(1.23 if chunk > 100 else 0.31)
    logmel, norm = LogMel(), GlobalNorm(torch.randn(80), torch.rand(80) + 0.5)
    offline = norm(logmel(wav))
    features = StreamingFeatures(logmel, norm)
    parts = feed(features.accept, features.finish, wav, chunk)
    online = torch.cat(parts)
    assert online.shape == offline.shape
    torch.testing.assert_close(online, offline, atol=1e-4, rtol=1e-5)
    # a frame is given out as soon as its window (centred, 512 samples) is complete, and no sooner
    features.reset()
    assert len(features.accept(wav[:3200])) == (3200 + 256 - 512) // 160 + 1


@pytest.mark.parametrize("lookahead", [0, 2])
def test_listener_incremental_equals_offline(lookahead):
    torch.manual_seed(0)
    listener = UnidirectionalListener(80, channels=4, hidden=16, layers=2, lookahead=lookahead).eval()
    feats, lengths = torch.randn(2, 123, 80), torch.tensor([123, 97])
    with torch.no_grad():
        memory, mem_lengths = listener(feats, lengths)
    for b in range(2):
        stream, parts, start = listener.stream_init(), [], 0
        for n in [1, 5, 13, 0, 7, 30, 2] * 10:  # ragged chunks, including empty ones
            out, stream = listener.stream_step(feats[b: b + 1, start: min(start + n, lengths[b])], stream)
            parts.append(out)
            start = min(start + n, lengths[b])
            if start >= lengths[b]:
                break
        out, stream = listener.stream_step(feats[b: b + 1, start: lengths[b]], stream, final=True)
        online = torch.cat(parts + [out], 1)[0]
        assert len(online) == mem_lengths[b] == stream.frames
        torch.testing.assert_close(online, memory[b, : mem_lengths[b]], atol=1e-5, rtol=1e-5)
        # frames after the first chunks wait for their look-ahead: the first output held back `lookahead` frames
        assert parts[0].shape[1] == 0


@pytest.mark.parametrize("name,overrides", [(p.stem, {}) for p in sorted((CONF / "attention").glob("*.yaml"))]
                         + [("monotonic", {"heads": 2}), ("mocha", {"heads": 2})])
def test_attention_extend_equals_init_on_all_frames(name, overrides):
    torch.manual_seed(0)
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "attention" / f"{name}.yaml"), overrides)
    attention = instantiate(cfg, query_dim=8, memory_dim=16).eval()
    memory = torch.randn(2, 11, 16)
    full = attention.init_state(memory, torch.tensor([11, 11]))
    state = attention.init_state(memory[:, :4], torch.tensor([4, 4]))
    for a, b in ((4, 4), (4, 9), (9, 11)):
        state = attention.extend(state, memory[:, a:b])
    for field in ("keys", "values", "mask"):
        torch.testing.assert_close(getattr(state, field), getattr(full, field))
    assert state.weights.shape == full.weights.shape
    assert state.weights[:, 4:].abs().sum() == 0  # nothing attended on frames that arrived later
    assert state.extra.keys() == full.extra.keys()
    for key, value in full.extra.items():
        assert state.extra[key].shape == value.shape, key
        if key in attention.memory_extras:
            torch.testing.assert_close(state.extra[key], value)
    if name in ("monotonic", "mocha"):  # the whole state is the same: streaming steps see what offline sees
        torch.testing.assert_close(state.weights, full.weights)
        for key, value in full.extra.items():
            torch.testing.assert_close(state.extra[key], value)


TOKENIZER = CharTokenizer("ABCDEFGHIJKLMNOPQRSTUVWXYZ '")


def tiny_model(attention: str, seed: int, bias: float | None, wav: torch.Tensor, logmel, norm):
    """A tiny ulstm model. With `bias`, the monotonic energy is rescaled so that it varies over the frames of
    `wav` (a random listener's frames differ little) and the speller's state moves: the decoding then selects
    frames in the middle of the stream. Without it, random init with Raffel's bias -4 selects no frame at all."""
    cfg = OmegaConf.create({
        "listener": {**OmegaConf.load(CONF / "listener" / "ulstm.yaml"), "channels": 4, "hidden": 32, "layers": 2},
        "attention": {**OmegaConf.load(CONF / "attention" / f"{attention}.yaml"), "attention_dim": 16,
                      **({"init_bias": -4.0} if bias is None else {})},
        "speller": {"embed_dim": 16, "hidden": 32}, "ctc_weight": 0.3, "label_smoothing": 0.1})
    torch.manual_seed(seed)
    model = build_model(cfg, len(TOKENIZER), 80).eval()
    if bias is not None:
        energy = model.speller.attention.energy
        with torch.no_grad():
            memory, _ = model.encode(norm(logmel(wav))[None], torch.tensor([0]) + len(logmel(wav)))
            energy.key_proj.weight.mul_(2.0 / energy.key_proj(memory).std(1).mean())
            energy.key_proj.bias.copy_(-(memory.mean(1) @ energy.key_proj.weight.T)[0])
            for p in model.speller.cells.parameters():
                p.mul_(3.0)
            energy.query_proj.weight.mul_(3.0)
            energy.bias.fill_(bias)
            energy.gain.fill_(1.0)
            model.speller.output[-1].bias[model.sos_eos] -= 100  # run to the token limit: more steps to compare
    return model


def offline(model, wav, logmel, norm) -> tuple[list[int], list[int]]:
    """Offline greedy tokens and the frame each step's weights peak on (-1: no frame selected)."""
    feats = norm(logmel(wav))
    tokens, alignments = greedy_decode(model, feats[None], torch.tensor([len(feats)]), keep_alignments=True)
    return tokens[0], [int(w.argmax()) if w.sum() > 0 else -1 for w in alignments[0]]


def moving_model(attention: str, bias: float, wav, logmel, norm):
    """The first of a few rigged random models whose offline alignment visits several frames before the last:
    one that makes the streaming decoder wait for frames in the middle of the stream."""
    for seed in range(20):
        model = tiny_model(attention, seed, bias, wav, logmel, norm)
        _, frames = offline(model, wav, logmel, norm)
        if len({f for f in frames if f >= 0}) >= 3 and max(frames) > 0:
            return model
    raise AssertionError(f"no rigged {attention} model moved its alignment: adjust tiny_model")


@pytest.mark.slow
@pytest.mark.parametrize("attention,bias", [("monotonic", 0.0), ("monotonic", -1.0), ("mocha", 0.0),
                                            ("mocha", 1.0), ("monotonic", None), ("mocha", None)])
def test_streaming_equals_offline_greedy(attention, bias):
    wav, logmel, norm = chirp(), LogMel(), GlobalNorm(torch.zeros(80), torch.ones(80))
    if bias is None:
        model = tiny_model(attention, 1, None, wav, logmel, norm)
    else:
        model = moving_model(attention, bias, wav, logmel, norm)
    expected, expected_frames = offline(model, wav, logmel, norm)
    duration = wav.numel() / 16000
    recognizer = StreamingRecognizer(model, TOKENIZER, logmel, norm)
    for ms in CHUNKS_MS:
        recognizer.reset()
        chunk = 16 * ms
        partials = []
        for start in range(0, wav.numel(), chunk):
            recognizer.accept(wav[start: start + chunk])
            partials.append(list(recognizer.tokens))
        recognizer.finish()
        assert recognizer.tokens == expected, ms
        assert all(p == recognizer.tokens[: len(p)] for p in partials)  # partial results only ever grow
        frames = [e.frame for e in recognizer.emissions]
        if attention == "monotonic":  # the one-hot weights peak on the attended frame
            assert frames == expected_frames[: len(frames)]
        arrived = [e.audio_seconds for e in recognizer.emissions]
        assert arrived == sorted(arrived)
        # a token was emitted only once its frame and the look-ahead after it had arrived: listener frame f with
        # 2 frames of look-ahead needs feature frames up to 4 (f + 2) + 6, whose windows end 16 ms after them
        # (the last frames come at the end of the stream, their look-ahead being the end)
        needed = [min((4 * (f + 2) + 6) * 0.01 + 0.016, duration) for f in frames]
        assert all(f < 0 or t >= n - 1e-9 for f, t, n in zip(frames, arrived, needed))
        if bias is None:  # nothing selected: every token comes at the end of the stream, with zero context
            assert set(frames) == {-1} and set(arrived) == {duration}
        else:  # tokens came before the end, at several points: the decoder waited for frames in between
            assert min(arrived) < duration and len(set(arrived)) >= 2


def test_stream_file_partials_and_errors(tmp_path):
    wav, logmel, norm = chirp(), LogMel(), GlobalNorm(torch.zeros(80), torch.ones(80))
    model = moving_model("mocha", 0.0, wav, logmel, norm)
    path = tmp_path / "a.wav"
    sf.write(path, wav.numpy(), 16000, subtype="FLOAT")
    recognizer = StreamingRecognizer(model, TOKENIZER, logmel, norm)
    partials: list[str] = []
    text = stream_file(recognizer, path, 200, partials.append)
    feats = norm(logmel(wav))
    expected, _ = greedy_decode(model, feats[None], torch.tensor([len(feats)]))
    assert text == TOKENIZER.decode(expected[0]) and partials[-1] == text and len(partials) > 1
    assert all(text.startswith(p) for p in partials)
    with pytest.raises(ValueError, match="cannot stream"):
        blstm = OmegaConf.create({"listener": {**OmegaConf.load(CONF / "listener" / "conv_blstm.yaml"), "hidden": 8},
                                  "attention": OmegaConf.load(CONF / "attention" / "monotonic.yaml"),
                                  "speller": {"hidden": 8}, "ctc_weight": 0.0, "label_smoothing": 0.0})
        StreamingRecognizer(build_model(blstm, len(TOKENIZER), 80), TOKENIZER, logmel, norm)


def test_stream_microphone_with_a_fake_device(monkeypatch):
    wav, logmel, norm = chirp(1.3), LogMel(), GlobalNorm(torch.zeros(80), torch.ones(80))
    model = tiny_model("monotonic", 1, None, wav, logmel, norm)
    recognizer = StreamingRecognizer(model, TOKENIZER, logmel, norm)

    class FakeInputStream:  # hands out the chirp block by block, as sounddevice.InputStream.read does
        def __init__(self, samplerate, channels, dtype, blocksize, device):
            assert (samplerate, channels, dtype) == (16000, 1, "float32")
            self.position = 0

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def read(self, frames):
            block = wav[self.position: self.position + frames].numpy()[:, None]
            self.position += frames
            return block, False

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=FakeInputStream))
    text = stream_microphone(recognizer, chunk_ms=100, seconds=1.3)
    feats = norm(logmel(wav))
    expected, _ = greedy_decode(model, feats[None], torch.tensor([len(feats)]))
    assert text == TOKENIZER.decode(expected[0])
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when it is not installed
    with pytest.raises(RuntimeError, match="pip install sounddevice"):
        stream_microphone(recognizer)
