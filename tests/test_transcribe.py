import json

import numpy as np
import pytest
import soundfile as sf

from asr.cli.transcribe import main as transcribe_main
from asr.frontend import AudioError
from asr.transcriber import Transcriber

from .conftest import ROOT

REAL = ROOT / "tests" / "data" / "librispeech-real" / "LibriSpeech" / "dev-clean"


def first_test_utterance(corpus):
    line = (corpus / "manifests" / "test-seen.jsonl").read_text().splitlines()[0]
    return json.loads(line)["audio"]


def test_any_format_and_rate_gives_the_same_text(tiny_corpus, tiny_model, tmp_path):
    flac = first_test_utterance(tiny_corpus)
    samples, rate = sf.read(flac, dtype="float32")
    stereo = tmp_path / "stereo-16k.wav"
    sf.write(stereo, np.stack([samples, samples], 1), rate)
    transcriber = Transcriber.from_pretrained(tiny_model)
    text = transcriber.transcribe(flac)
    assert transcriber.transcribe(stereo) == text  # down-mixing identical channels changes nothing
    assert transcriber.transcribe(samples, sample_rate=rate) == text
    resampled = tmp_path / "tone-44k.ogg"
    sf.write(resampled, np.sin(np.arange(44100) / 20).astype(np.float32) * 0.3, 44100)
    assert isinstance(transcriber.transcribe(resampled), str)


@pytest.mark.parametrize("batch_seconds", [300.0, 20.0])  # one batch, then several
def test_batch_equals_one_by_one(tiny_model, batch_seconds):
    transcriber = Transcriber.from_pretrained(tiny_model, batch_seconds=batch_seconds)
    files = sorted(str(p) for p in REAL.rglob("*.flac"))
    assert len(files) == 5
    batch = [r.text for r in transcriber.transcribe_many(files)]
    assert batch == [transcriber.transcribe(f) for f in files]


def test_cli_reports_bad_files_and_goes_on(tiny_corpus, tiny_model, tmp_path, capsys):
    good = first_test_utterance(tiny_corpus)
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"\x00" * 1000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(160, np.float32), 16000)
    missing = tmp_path / "missing.flac"
    status = transcribe_main([str(garbage), good, str(empty), str(missing), str(short), "--model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(good + "\t")
    errors = err.splitlines()
    assert len(errors) == 4
    for path, problem in ((garbage, "cannot read audio"), (empty, "empty audio"), (missing, "no such file"),
                          (short, "too short")):
        assert any(e.startswith(f"asr-transcribe: {path}: ") and problem in e for e in errors), problem


def test_bad_model_directory_is_one_line(tmp_path, capsys):
    assert transcribe_main(["x.wav", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a model directory" in err


def test_transcribe_raises_audio_error_for_nan(tiny_model):
    with pytest.raises(AudioError, match="NaN"):
        Transcriber.from_pretrained(tiny_model).transcribe(np.full(16000, np.nan, np.float32))
