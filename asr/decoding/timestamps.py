"""Token and word times from the listener frames each token attended, and SRT subtitles from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

FRAME_SECONDS = 0.01  # the front end's hop: 160 samples at 16 kHz


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float


def word_times(symbols: list[str], tokens: list[int], frames: list[int], reduction: int,
               offset: float = 0.0) -> list[Word]:
    """Group tokens into words: a space token (characters) or a leading '▁' (SentencePiece) starts a word.
    A token's time is its attended listener frame * reduction * 10 ms; a word ends one frame after its
    last token."""
    step = reduction * FRAME_SECONDS
    words: list[Word] = []
    text, start, end = "", 0.0, 0.0
    for token, frame in zip(tokens, frames):
        piece = symbols[token]
        if token < 3:  # blank, <sos/eos>, unknown carry no letters
            continue
        time = offset + frame * step
        boundary = piece == " " or piece.startswith("▁")
        if boundary and text:
            words.append(Word(text, round(start, 2), round(end, 2)))
            text = ""
        piece = piece.lstrip("▁").strip()
        if piece:
            if not text:
                start = time
            text += piece
            end = max(time + step, start + step)
    if text:
        words.append(Word(text, round(start, 2), round(end, 2)))
    return words


def words_as_dicts(words: list[Word]) -> list[dict]:
    return [asdict(w) for w in words]


def srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def to_srt(words: list[Word], max_words: int = 10, max_seconds: float = 5.0) -> str:
    """Subtitle cues of at most `max_words` words and `max_seconds` each."""
    cues, cue = [], []
    for w in words:
        if cue and (len(cue) >= max_words or w.end - cue[0].start > max_seconds):
            cues.append(cue)
            cue = []
        cue.append(w)
    if cue:
        cues.append(cue)
    return "".join(f"{i}\n{srt_time(c[0].start)} --> {srt_time(c[-1].end)}\n{' '.join(w.word for w in c)}\n\n"
                   for i, c in enumerate(cues, 1))
