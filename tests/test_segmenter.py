import numpy as np
import torch

from asr.decoding.timestamps import to_srt, word_times
from asr.segmenter import SegmenterOptions, split_on_silence


def tone(seconds, freq=300.0):
    t = torch.arange(int(seconds * 16000)) / 16000
    return 0.3 * torch.sin(2 * np.pi * freq * t)


def test_splits_at_every_pause_and_at_short_ones_when_too_long():
    parts = [tone(3.0), torch.zeros(8000), tone(2.0), torch.zeros(1600), tone(4.0)]
    wav = torch.cat(parts)
    assert len(split_on_silence(wav, SegmenterOptions(max_seconds=30, min_pause=0.25))) == 2  # the 0.5 s pause
    spans = split_on_silence(wav, SegmenterOptions(max_seconds=4.5, min_pause=0.25))
    assert len(spans) == 3
    assert spans == sorted(spans) and all(b > a for a, b in spans)
    # each piece holds one tone and at most the margin (0.05 s) of the pauses around it, a frame's slack
    assert 3.5 * 16000 - 1200 <= spans[1][0] <= 3.5 * 16000 and 5.6 * 16000 - 1200 <= spans[2][0] <= 5.6 * 16000
    assert 3.0 * 16000 <= spans[0][1] <= 3.0 * 16000 + 960 + 400
    # no sample of speech is lost
    covered = torch.zeros(len(wav), dtype=torch.bool)
    for a, b in spans:
        covered[a:b] = True
    assert covered[wav.abs() > 0.01].all()


def test_pieces_are_trimmed_to_their_speech_and_the_margin():
    wav = torch.cat([torch.zeros(16000), tone(2.0), torch.zeros(16000), tone(1.0), torch.zeros(8000)])
    spans = split_on_silence(wav, SegmenterOptions(margin=0.1))
    assert len(spans) == 2
    (a0, b0), (a1, b1) = spans
    assert 16000 - 1600 - 400 <= a0 <= 16000 - 1600 and 3 * 16000 + 1600 <= b0 <= 3 * 16000 + 1600 + 560
    assert 4 * 16000 - 1600 - 400 <= a1 <= 4 * 16000 - 1600 and 5 * 16000 + 1600 <= b1 <= 5 * 16000 + 1600 + 560
    wide = split_on_silence(wav, SegmenterOptions(margin=10.0))  # a margin never reaches past the cuts
    assert len(wide) == 2 and all(w[0] <= n[0] and n[1] <= w[1] for w, n in zip(wide, spans))
    assert wide[0][1] <= wide[1][0] + 400 and wide[0][0] > 0 and wide[1][1] < len(wav)


def test_no_pause_no_cut_and_silence_gives_nothing():
    assert len(split_on_silence(tone(10.0), SegmenterOptions(max_seconds=3))) == 1
    assert split_on_silence(torch.zeros(16000)) == []
    assert split_on_silence(torch.full((16000,), 1e-6)) == []


def test_word_times_from_characters_and_pieces():
    symbols = ["<blank>", "<sos/eos>", "<unk>", " ", "A", "B", "C"]
    words = word_times(symbols, [4, 5, 3, 6, 4], [1, 2, 3, 5, 6], reduction=4, offset=1.0)
    assert [w.word for w in words] == ["AB", "CA"]
    assert words[0].start == 1.04 and words[1].start == 1.2 and words[1].end == 1.28
    pieces = ["<blank>", "<sos/eos>", "<unk>", "▁HE", "LLO", "▁WORLD"]
    assert [w.word for w in word_times(pieces, [3, 4, 5], [0, 1, 2], reduction=4)] == ["HELLO", "WORLD"]
    srt = to_srt(words, max_words=1)
    assert srt.startswith("1\n00:00:01,040 --> 00:00:01,120\nAB\n\n2\n")
