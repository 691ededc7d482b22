import numpy as np
import pytest
import torch

from asr.decoding.timestamps import to_srt, word_times
from asr.segmenter import SegmenterOptions, split_on_silence
from asr.vad import VoiceActivity

from .test_vad import corpus_utterance, non_speech

SR = 16000


def zeros(seconds):
    return torch.zeros(int(seconds * SR))


def boundary_in(spans, start, end):
    """Some piece ends and the next begins within [start, end] (samples)."""
    return any(a[1] <= end and b[0] >= start for a, b in zip(spans, spans[1:]))


def test_pieces_end_at_every_pause_and_keep_all_speech(tiny_corpus):
    utts = [corpus_utterance(tiny_corpus, i) for i in range(3)]
    wav = torch.cat([utts[0], zeros(0.6), utts[1], zeros(0.6), utts[2]])
    spans = split_on_silence(wav, SegmenterOptions(max_seconds=60))
    assert spans == sorted(spans) and all(a < b for a, b in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    edges = np.cumsum([len(utts[0]), SR * 6 // 10, len(utts[1]), SR * 6 // 10])
    assert boundary_in(spans, edges[0], edges[1]) and boundary_in(spans, edges[2], edges[3])
    covered = torch.zeros(len(wav), dtype=torch.bool)
    for a, b in spans:
        covered[a:b] = True
    for a, b in VoiceActivity().speech_spans(wav, pad=False):  # no speech is lost
        assert covered[a:b].all()


def test_piece_too_long_is_cut_in_its_longest_pause_or_where_least_speech_like(tiny_corpus):
    first, second = corpus_utterance(tiny_corpus, 0), corpus_utterance(tiny_corpus, 1)
    wav = torch.cat([first, zeros(0.4), second])
    # the 0.4 s pause is shorter than min_pause, so only the length cuts there
    assert len(split_on_silence(wav, SegmenterOptions(max_seconds=60, min_pause=1.0))) == 1
    max_seconds = 0.9 * len(wav) / SR  # shorter than both, longer than either with its pad
    spans = split_on_silence(wav, SegmenterOptions(max_seconds=max_seconds, min_pause=1.0))
    assert len(spans) == 2 and boundary_in(spans, len(first), len(first) + SR * 4 // 10)
    # one stretch of speech without a pause is cut anyway: no piece is longer than max_seconds
    spans = split_on_silence(first, SegmenterOptions(max_seconds=0.8))
    assert len(spans) >= 3 and all(b - a <= 0.8 * SR for a, b in spans)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # cut inside speech: nothing between pieces


def test_pieces_are_trimmed_to_their_speech_and_the_pads(tiny_corpus):
    first, second = corpus_utterance(tiny_corpus, 0), corpus_utterance(tiny_corpus, 1)
    wav = torch.cat([zeros(1.0), first, zeros(1.0), second, zeros(0.5)])
    vad = VoiceActivity()
    spans = split_on_silence(wav, SegmenterOptions(), vad)
    speech = vad.speech_spans(wav, pad=False)
    assert len(spans) == 2 and len(speech) == 2
    before, after = vad.pads
    assert before > after >= 0
    assert spans == [(a - before, b + after) for a, b in speech]
    assert abs(spans[0][0] - SR) < 0.2 * SR and abs(spans[1][1] - (2 * SR + len(first) + len(second))) < 0.2 * SR


def test_silence_and_noise_give_nothing():
    assert split_on_silence(torch.zeros(16000)) == []
    assert split_on_silence(torch.full((16000,), 1e-6)) == []
    for name, wav in non_speech(3.0).items():
        assert split_on_silence(wav) == [], name


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="segmenter.max_seconds"):
        SegmenterOptions(max_seconds=0)


def test_word_times_from_characters_and_pieces():
    symbols = ["<blank>", "<sos/eos>", "<unk>", " ", "A", "B", "C"]
    words = word_times(symbols, [4, 5, 3, 6, 4], [1, 2, 3, 5, 6], reduction=4, offset=1.0)
    assert [w.word for w in words] == ["AB", "CA"]
    assert words[0].start == 1.04 and words[1].start == 1.2 and words[1].end == 1.28
    pieces = ["<blank>", "<sos/eos>", "<unk>", "▁HE", "LLO", "▁WORLD"]
    assert [w.word for w in word_times(pieces, [3, 4, 5], [0, 1, 2], reduction=4)] == ["HELLO", "WORLD"]
    srt = to_srt(words, max_words=1)
    assert srt.startswith("1\n00:00:01,040 --> 00:00:01,120\nAB\n\n2\n")
