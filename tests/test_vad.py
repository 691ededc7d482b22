import json
import math
import subprocess
import sys
import warnings

import pytest
import torch

from asr.frontend import load_audio
from asr.vad import SileroNet, VadOptions, VoiceActivity, import_silero, pad_spans

from .conftest import ROOT

REAL = ROOT / "tests" / "data" / "librispeech-real" / "LibriSpeech" / "dev-clean"
SR = 16000


def corpus_utterance(corpus, index=0, part="test-seen") -> torch.Tensor:
    """Samples (N,) of a synthesized utterance of the tiny corpus."""
    line = (corpus / "manifests" / f"{part}.jsonl").read_text().splitlines()[index]
    return load_audio(json.loads(line)["audio"])


def non_speech(seconds=5.0, seed=0) -> dict[str, torch.Tensor]:
    """Signals in which there is nothing to transcribe, (N,) each."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    white = torch.randn(n, generator=gen)
    spectrum = torch.fft.rfft(torch.randn(n, generator=gen))
    pink = torch.fft.irfft(spectrum / torch.arange(spectrum.numel()).clamp(min=1).sqrt(), n)
    chords = [(261.6, 2.0), (329.6, 3.0), (392.0, 1.5), (523.3, 4.0)]  # notes, each swelling at its own rate
    return {
        "white noise": 0.1 * white,
        "pink noise": 0.3 * pink / pink.abs().max(),
        "clipped 440 Hz tone": (3 * torch.sin(2 * math.pi * 440 * t)).clamp(-1, 1),
        "50 Hz hum": 0.3 * sum(torch.sin(2 * math.pi * 50 * k * t) / k for k in range(1, 6)),
        "chords": 0.1 * sum(torch.sin(2 * math.pi * f * t) * (1 + torch.sin(2 * math.pi * r * t)) for f, r in chords),
        "digital silence": torch.zeros(n),
    }


def silero_chunk_by_chunk(wav: torch.Tensor) -> torch.Tensor:
    """Speech probabilities (C,) from silero's own TorchScript model, one 512-sample call at a time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = import_silero().load_silero_vad()
    model.reset_states()
    wav = torch.nn.functional.pad(wav, (0, -wav.numel() % 512))
    with torch.no_grad():
        return torch.tensor([model(chunk, SR).item() for chunk in wav.split(512)])


@pytest.mark.parametrize("block", [8192, 7])  # the whole recording in one batch, or state carried across batches
def test_batched_network_equals_silero_chunk_by_chunk(monkeypatch, block):
    monkeypatch.setattr("asr.vad.BLOCK", block)
    speech = load_audio(sorted(REAL.rglob("*.flac"))[0])[: 3 * SR + 123]  # not a whole number of chunks
    wav = torch.cat([speech, 0.05 * torch.randn(SR, generator=torch.Generator().manual_seed(1))])
    ours = VoiceActivity().probabilities(wav)
    theirs = silero_chunk_by_chunk(wav)
    assert ours.shape == theirs.shape == (math.ceil(wav.numel() / 512),)
    assert (ours - theirs).abs().max() < 1e-4
    assert ours[:80].max() > 0.9 and ours[-20:].max() < 0.5  # speech, then noise


def test_each_input_starts_from_a_fresh_state():
    vad = VoiceActivity()
    speech = load_audio(sorted(REAL.rglob("*.flac"))[1])
    quiet = 0.01 * torch.randn(SR, generator=torch.Generator().manual_seed(2))
    alone = vad.probabilities(quiet)
    vad.probabilities(speech)
    assert torch.equal(vad.probabilities(quiet), alone)


def test_finds_the_speech_of_an_utterance_padded_with_silence(tiny_corpus):
    vad = VoiceActivity()
    speech = corpus_utterance(tiny_corpus)
    wav = torch.cat([torch.zeros(2 * SR), speech, torch.zeros(2 * SR)])
    spans = vad.speech_spans(wav)
    assert spans, "no speech found"
    assert abs(spans[0][0] / SR - 2.0) <= 0.2
    assert abs(spans[-1][1] / SR - (2.0 + len(speech) / SR)) <= 0.2
    # and under a noise floor instead of digital silence
    noisy = wav + 0.002 * torch.randn(len(wav), generator=torch.Generator().manual_seed(3))
    spans = vad.speech_spans(noisy)
    assert abs(spans[0][0] / SR - 2.0) <= 0.2 and abs(spans[-1][1] / SR - (2.0 + len(speech) / SR)) <= 0.2


@pytest.mark.parametrize("name", list(non_speech()))
def test_no_speech_in_noise_tones_and_hum(name):
    assert VoiceActivity().speech_spans(non_speech()[name]) == []


def test_padding_and_options():
    speech = load_audio(sorted(REAL.rglob("*.flac"))[0])
    wav = torch.cat([torch.zeros(SR), speech, torch.zeros(SR)])
    tight = VoiceActivity(VadOptions(pad_before_ms=0, pad_after_ms=0)).speech_spans(wav)
    padded = VoiceActivity(VadOptions(pad_before_ms=100, pad_after_ms=50)).speech_spans(wav)
    assert padded[0][0] == tight[0][0] - 1600 and padded[-1][1] == tight[-1][1] + 800
    # pads never reach past the recording, and neighbours meet in their gap, split 2 : 1
    assert pad_spans([(100, 200), (260, 400)], 40, 20, 410) == [(60, 220), (220, 410)]
    assert pad_spans([(100, 200), (300, 400)], 40, 20, 1000) == [(60, 220), (260, 420)]
    with pytest.raises(ValueError, match="vad.threshold"):
        VoiceActivity(VadOptions(threshold=1.5))


def test_loading_leaves_torch_threads_alone():
    code = ("import torch; torch.set_num_threads(2); from asr.vad import VoiceActivity; "
            "VoiceActivity().probabilities(torch.zeros(16000)); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "2"


def test_the_network_is_loaded_once():
    assert isinstance(VoiceActivity().net, SileroNet) and VoiceActivity().net is VoiceActivity().net
