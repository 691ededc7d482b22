import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asr.cli.transcribe import build_parser
from asr.cli.transcribe import main as transcribe_main
from asr.frontend import AudioError, load_audio
from asr.scoring import score
from asr.transcriber import Transcriber

from .conftest import ROOT
from .test_outputs import check_cues, parse_srt
from .test_vad import corpus_utterance, non_speech

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
    # the same speech as a 44.1 kHz Ogg Vorbis file: decoded and brought back to 16 kHz, it is the original speech
    # (lossy coding and two resamplings aside), and the file decodes as its samples do
    ogg = tmp_path / "speech-44k.ogg"
    sf.write(ogg, torchaudio.functional.resample(torch.from_numpy(samples), rate, 44100).numpy(), 44100)
    back = load_audio(ogg)
    assert abs(back.numel() - len(samples)) <= 2
    n = min(back.numel(), len(samples))
    assert np.corrcoef(back[:n].numpy(), samples[:n])[0, 1] > 0.98
    assert transcriber.transcribe(ogg) == transcriber.transcribe(back.numpy(), sample_rate=16000)


def test_ctc_gate_silences_what_the_ctc_head_hears_nothing_in(tiny_model, monkeypatch):
    """vad.ctc_gate: a piece whose CTC best path is empty gets no text and is not searched; the others come out
    as without the gate."""
    import asr.transcriber
    from asr.vad import VadOptions

    files = sorted(str(p) for p in REAL.rglob("*.flac"))
    ungated = Transcriber.from_pretrained(tiny_model, vad=VadOptions(ctc_gate=False))
    plain = [r.text for r in ungated.transcribe_many(files)]
    assert all(plain)
    real_ctc = asr.transcriber.ctc_greedy_decode
    deaf = {files[1], files[3]}  # the CTC head hears nothing in these two
    lengths_of_deaf = set()

    def ctc(model, feats, lengths):
        tokens, frames = real_ctc(model, feats, lengths)
        return [[] if int(n) in lengths_of_deaf else t for t, n in zip(tokens, lengths)], frames

    gated = Transcriber.from_pretrained(tiny_model, vad=VadOptions(ctc_gate=True))
    lengths = {f: {len(p.heard_in) for p in gated.pieces(i, gated.samples(f))} for i, f in enumerate(files)}
    lengths_of_deaf.update(*(lengths[f] for f in deaf))  # a piece is known by its length: all lengths differ
    assert sum(len(n) for n in lengths.values()) == len(set().union(*lengths.values()))
    monkeypatch.setattr(asr.transcriber, "ctc_greedy_decode", ctc)
    searched = []
    real_search = gated.search.__class__.__call__
    monkeypatch.setattr(gated.search.__class__, "__call__",
                        lambda self, model, feats, lengths, **kw: searched.append(len(lengths)) or
                        real_search(self, model, feats, lengths, **kw))
    texts = [r.text for r in gated.transcribe_many(files)]
    assert texts == ["" if f in deaf else t for f, t in zip(files, plain)]
    assert sum(searched) == len(files) - len(deaf)


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


def test_silence_gives_an_empty_transcript_and_truncated_file_an_error(tiny_corpus, tiny_model, tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.float32), 16000)
    good = first_test_utterance(tiny_corpus)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(open(good, "rb").read()[:200])
    results = Transcriber.from_pretrained(tiny_model).transcribe_many([str(silence), str(truncated), good])
    assert results[0].error is None and results[0].text == "" and results[0].words == []
    assert results[1].error.startswith(f"{truncated}: ") and "\n" not in results[1].error
    assert results[2].error is None


def test_json_and_srt_carry_word_times(tiny_corpus, tiny_model, capsys):
    files = sorted(str(p) for p in REAL.rglob("*.flac"))[:2]
    assert transcribe_main([*files, "--model", str(tiny_model), "--format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == files
    for r in records:
        assert [w["word"] for w in r["words"]] == r["text"].split()
        starts = [w["start"] for w in r["words"]]
        assert starts == sorted(starts)
        assert all(0 <= w["start"] < w["end"] <= r["duration"] + 0.5 for w in r["words"])
    # the tiny model hears words in its own corpus: the subtitles have cues to check
    speech = first_test_utterance(tiny_corpus)
    assert transcribe_main([speech, "--model", str(tiny_model), "--format", "json"]) == 0
    words = [w["word"] for w in json.loads(capsys.readouterr().out)["words"]]
    assert words
    assert transcribe_main([speech, "--model", str(tiny_model), "--format", "srt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1\n") and "# " not in out
    check_cues(parse_srt(out), words)


def test_cli_beam_of_one_is_greedy_and_reads_paths_from_stdin(tiny_model, capsys, monkeypatch):
    import io

    files = sorted(str(p) for p in REAL.rglob("*.flac"))[:3]
    assert transcribe_main([*files, "--model", str(tiny_model)]) == 0
    greedy = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(files) + "\n"))
    assert transcribe_main(["-", "--model", str(tiny_model), "--beam", "1"]) == 0
    assert capsys.readouterr().out == greedy
    assert transcribe_main([*files, "--model", str(tiny_model), "--beam", "4", "--ctc-weight", "0.3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_segmented_long_recording_keeps_every_piece(tiny_model):
    from asr.decoding.search import Search

    pieces = [sf.read(str(p), dtype="float32")[0] for p in sorted(REAL.rglob("*.flac"))[:3]]
    gap = np.zeros(8000, np.float32)
    long = np.concatenate([pieces[0], gap, pieces[1], gap, pieces[2]])
    transcriber = Transcriber.from_pretrained(tiny_model, search=Search())
    transcriber.segmenter.max_seconds = max(len(p) for p in pieces) / 16000 + 1.0
    result = transcriber.transcribe_many([long])[0]
    starts = [p.offset for p in transcriber.pieces(0, transcriber.samples(long))]
    # a piece starts in each half-second gap between the recordings or in the leading silence of the next one,
    # trimmed to its speech (read speech has pauses of its own too)
    edges = np.cumsum([len(pieces[0]), len(gap), len(pieces[1]), len(gap)]) / 16000
    for (gap_start, gap_end), following in zip((edges[0:2], edges[2:4]), pieces[1:]):
        lead = transcriber.vad.speech_spans(torch.from_numpy(following))[0][0] / 16000
        assert any(gap_start - 0.05 <= t <= gap_end + lead for t in starts)
    assert all(w.start >= 0 for w in result.words)
    if result.words:
        assert result.words[-1].end <= len(long) / 16000 + 0.5


def test_cli_beam_with_lm_and_lexicon_and_a_lexicon_missing_from_the_lm_dir(tiny_model, tmp_path, capsys):
    from asr.data.tokenizer import load_tokenizer
    from asr.models.lexicon_lm import count_bigrams, write_bigrams, write_lexicon
    from asr.models.lm import CharLM, save_lm

    tokenizer = load_tokenizer(tiny_model / "tokenizer.json")
    lm_dir = tmp_path / "lm"
    save_lm(CharLM(len(tokenizer), embed_dim=8, hidden=16, layers=1, dropout=0.0), lm_dir)
    tokenizer.save(lm_dir / "tokenizer.json")
    files = sorted(str(p) for p in REAL.rglob("*.flac"))[:2]
    # conf/decode.yaml weighs the lexicon too, so an LM directory without lexicon.tsv is named in one line
    assert transcribe_main([*files, "--model", str(tiny_model), "--beam", "3", "--lm", str(lm_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lexicon.tsv: no such file" in err[0] and "asr-lexicon" in err[0]
    write_lexicon({"THE": 0.5, "A": 0.3, "MAN": 0.2}, lm_dir / "lexicon.tsv")
    # and its bigrams too (conf/decode.yaml's lexicon_bigram)
    assert transcribe_main([*files, "--model", str(tiny_model), "--beam", "3", "--lm", str(lm_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bigrams.tsv: no such file" in err[0] and "asr-lexicon" in err[0]
    write_bigrams(count_bigrams(["THE MAN", "A MAN"]), lm_dir / "bigrams.tsv")
    assert transcribe_main([*files, "--model", str(tiny_model), "--beam", "3", "--lm", str(lm_dir),
                            "--lexicon-weight", "0.5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def count_decoded(transcriber, monkeypatch) -> list:
    """Record the pieces the transcriber searches (lengths in feature frames)."""
    decoded, search = [], transcriber.search
    monkeypatch.setattr(transcriber, "search", lambda model, feats, lengths, **kw:
                        decoded.extend(lengths.tolist()) or search(model, feats, lengths, **kw))
    return decoded


def test_no_speech_no_text_and_no_decoding(tiny_model, monkeypatch):
    transcriber = Transcriber.from_pretrained(tiny_model)
    decoded = count_decoded(transcriber, monkeypatch)
    signals = non_speech(5.0)
    results = transcriber.transcribe_many([wav.numpy() for wav in signals.values()])
    for name, result in zip(signals, results):
        assert result.error is None and result.text == "" and result.words == [], name
    assert decoded == []


def test_speech_gets_through_the_gate_also_in_noise(tiny_corpus, tiny_model):
    transcriber = Transcriber.from_pretrained(tiny_model)
    speech = corpus_utterance(tiny_corpus)
    noise = torch.randn(len(speech), generator=torch.Generator().manual_seed(4))
    noise *= speech.norm() / noise.norm() / 10 ** (10 / 20)  # 10 dB SNR
    assert transcriber.transcribe(speech.numpy()) != ""
    assert transcriber.transcribe((speech + noise).numpy()) != ""


def test_short_input_is_decoded_whole_and_gated_on_its_speech(tiny_corpus, tiny_model):
    transcriber = Transcriber.from_pretrained(tiny_model)
    speech = corpus_utterance(tiny_corpus)
    wav = torch.cat([torch.zeros(2 * 16000), speech, torch.zeros(2 * 16000)])
    piece, = transcriber.pieces(0, wav)
    assert torch.equal(piece.feats, transcriber.features(wav)) and piece.offset == 0.0  # as asr-decode decodes it
    margin = transcriber.segmenter.edge_margin * 100  # frames
    # the gate hears the detector's speech and the margin around it, give or take its late start and end
    assert len(speech) / 160 <= len(piece.heard_in) <= len(speech) / 160 + 2 * margin + 40


def test_speech_the_detector_misses_is_rescued_by_the_ctc_rate_and_agreement(tiny_corpus, tiny_model, monkeypatch):
    """vad.ctc_rescue: an input decoded whole without speech by the detector (whispering) is decoded when the
    CTC head reads at least that many characters per second in it, and keeps its transcript when that is within
    vad.rescue_agreement (CER) of the reading; not otherwise."""
    from asr.decoding.greedy import ctc_greedy_decode
    from asr.vad import VadOptions

    speech = corpus_utterance(tiny_corpus)
    plain = Transcriber.from_pretrained(tiny_model)
    heard = plain.transcribe(speech.numpy())
    feats = plain.features(speech)
    tokens, _ = ctc_greedy_decode(plain.model, feats[None], torch.tensor([len(feats)]))
    reading = plain.tokenizer.decode(tokens[0])
    rate = len(reading.replace(" ", "")) / (len(feats) / 100)  # characters per second
    cer = score({"u": reading}, {"u": heard})["cer"]
    assert heard and rate > 0 and cer > 0  # the tiny model's two heads disagree somewhat
    for threshold, agreement, expected in ((0.0, 1000.0, ""), (rate * 0.9, 1000.0, heard), (rate * 1.1, 1000.0, ""),
                                           (rate * 0.9, cer * 1.01, heard), (rate * 0.9, cer * 0.99, "")):
        options = VadOptions(ctc_rescue=threshold, rescue_agreement=agreement)
        transcriber = Transcriber.from_pretrained(tiny_model, vad=options)
        monkeypatch.setattr(transcriber.vad, "speech_spans", lambda wav: [])  # the detector hears nothing
        assert transcriber.transcribe(speech.numpy()) == expected, (threshold, agreement)


def test_long_input_is_segmented_without_being_asked(tiny_corpus, tiny_model, monkeypatch):
    manifest = (tiny_corpus / "manifests" / "train-synth.jsonl").read_text().splitlines()
    gap, wavs = torch.zeros(int(0.3 * 16000)), []
    for line in manifest:  # utterances joined with 0.3 s pauses, as asr.bench.decode does
        wavs += [load_audio(json.loads(line)["audio"]), gap]
        if sum(len(w) for w in wavs) >= 60 * 16000:
            break
    long = torch.cat(wavs[:-1])
    joined = len(wavs) // 2
    transcriber = Transcriber.from_pretrained(tiny_model)
    max_seconds = transcriber.segmenter.max_seconds
    assert len(long) >= 60 * 16000 > max_seconds * 16000
    decoded = count_decoded(transcriber, monkeypatch)
    result = transcriber.transcribe_many([long.numpy()])[0]
    assert result.error is None
    assert len(decoded) >= joined - 1 and max(decoded) <= max_seconds * 100 + 1
    whole = Transcriber.from_pretrained(tiny_model, segment=False)
    piece, = whole.pieces(0, long)
    assert len(piece.feats) == len(whole.features(long))


def test_help_names_no_segment():
    help_text = build_parser().format_help()
    assert "--no-segment" in help_text and "max_seconds" in help_text
