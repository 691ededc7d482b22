"""Token and word times from the listener frames each token attended, and subtitles (SRT, WebVTT) and NIST CTM
lines from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..frontend import FRAMES_PER_SECOND

FRAME_SECONDS = 1 / FRAMES_PER_SECOND  # the front end's hop
MIN_CUE_SECONDS = 0.01  # a cue that ends where it starts is shown by no player


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float


@dataclass
class Cue:
    """One subtitle: its words joined by spaces, shown from `start` to `end` (seconds)."""

    start: float
    end: float
    text: str


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


def cues(words: list[Word], max_words: int = 10, max_seconds: float = 5.0) -> list[Cue]:
    """Words -> subtitle cues of at most `max_words` words and `max_seconds` each, in order. Each cue starts no
    earlier than the previous one ends and lasts at least MIN_CUE_SECONDS: players reject or hide overlapping
    and empty cues, and the attended frames of a weak model can go backwards."""
    groups: list[list[Word]] = []
    for w in words:
        if not groups or len(groups[-1]) >= max_words or w.end - groups[-1][0].start > max_seconds:
            groups.append([])
        groups[-1].append(w)
    result, previous_end = [], 0.0
    for group in groups:
        start = round(max(min(w.start for w in group), previous_end), 3)
        end = round(max(max(w.end for w in group), start + MIN_CUE_SECONDS), 3)
        result.append(Cue(start, end, " ".join(w.word for w in group)))
        previous_end = end
    return result


def _clock(seconds: float, separator: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


def srt_time(seconds: float) -> str:
    """HH:MM:SS,mmm"""
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    """HH:MM:SS.mmm"""
    return _clock(seconds, ".")


def to_srt(words: list[Word], max_words: int = 10, max_seconds: float = 5.0) -> str:
    """A SubRip file: numbered cues separated by blank lines (no words: an empty file, which has no cues)."""
    return "".join(f"{i}\n{srt_time(c.start)} --> {srt_time(c.end)}\n{c.text}\n\n"
                   for i, c in enumerate(cues(words, max_words, max_seconds), 1))


def to_vtt(words: list[Word], max_words: int = 10, max_seconds: float = 5.0) -> str:
    """A WebVTT file: the WEBVTT header, then cues separated by blank lines. The cue text escapes &, < and >,
    which WebVTT reads as markup."""
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return "WEBVTT\n\n" + "".join(f"{vtt_time(c.start)} --> {vtt_time(c.end)}\n{escape(c.text)}\n\n"
                                  for c in cues(words, max_words, max_seconds))


def to_ctm(utterance: str, words: list[Word], channel: str = "1") -> str:
    """NIST CTM lines for scoring tools (sclite): `<utterance> <channel> <start> <duration> <word>`, one per
    word, times in seconds with two decimals. `utterance` must not contain whitespace (it is a column)."""
    return "".join(f"{utterance} {channel} {w.start:.2f} {max(w.end - w.start, FRAME_SECONDS):.2f} {w.word}\n"
                   for w in words)
