"""Tokenizers: text <-> integer ids, saved as one JSON file beside the manifests (and in every model directory).

Two kinds share one interface (id 0 = CTC blank, 1 = <sos/eos>, 2 = unknown; `encode`, `decode`, `symbols`,
`save`, `load`, `len()`), so training, decoding and plots never ask which one they hold:

    CharTokenizer         one id per character (the default)
    SentencePieceTokenizer  SentencePiece unigram or BPE subwords; the trained model travels inside the JSON

`load_tokenizer(path)` reads the file's "type" and returns the right class.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

BLANK, SOS_EOS, UNK = "<blank>", "<sos/eos>", "<unk>"


class CharTokenizer:
    """Maps characters to ids. Id 0 is the CTC blank, 1 is start/end of sentence, 2 the unknown character.

    The speller never predicts the blank: sharing one vocabulary keeps the CTC head and the speller's output
    layer the same size, which the joint CTC/attention loss and later joint decoding rely on.
    """

    def __init__(self, chars: Iterable[str]):
        self.symbols = [BLANK, SOS_EOS, UNK, *sorted(set(chars) - {BLANK, SOS_EOS, UNK})]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @property
    def blank(self) -> int:
        return 0

    @property
    def sos_eos(self) -> int:
        return 1

    @property
    def unk(self) -> int:
        return 2

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        return cls(chars)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, self.unk) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; special symbols are dropped, so decode(encode(t)) == t for known characters."""
        return "".join(self.symbols[i] for i in ids if i > self.unk)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "symbols": self.symbols}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        try:
            data = json.loads(Path(path).read_text())
            symbols = data["symbols"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: not a tokenizer file ({err})") from None
        tok = cls(symbols[3:])
        if tok.symbols != symbols:
            raise ValueError(f"{path}: symbols are not in tokenizer order")
        return tok


class SentencePieceTokenizer:
    """SentencePiece subwords (Kudo & Richardson 2018), unigram or BPE, with the ids laid out like CharTokenizer.

    SentencePiece's own reserved pieces are placed on our special ids (pad = 0 as the CTC blank, bos = 1 as
    <sos/eos>, unk = 2), so its ids are used as they are. `vocab_size` counts these three. Pieces mark a word
    start with "▁"; `decode` turns them back into spaces.
    """

    blank, sos_eos, unk = 0, 1, 2

    def __init__(self, model_proto: bytes, model_type: str = "unigram"):
        import sentencepiece as spm

        self.model_proto, self.model_type = model_proto, model_type
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.symbols = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        if self.symbols[:3] != [BLANK, SOS_EOS, UNK]:
            raise ValueError(f"SentencePiece model does not reserve {BLANK}, {SOS_EOS}, {UNK} as ids 0, 1, 2")

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram",
              character_coverage: float = 1.0, seed_sentences: int = 1_000_000) -> SentencePieceTokenizer:
        """Train on `texts` (one sentence each). `vocab_size` is an upper bound: a small corpus may not have
        that many pieces, and the model then stops short instead of failing."""
        import io

        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"SentencePiece model_type must be unigram or bpe, not {model_type!r}")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, input_sentence_size=seed_sentences, shuffle_input_sentence=True,
            pad_id=0, pad_piece=BLANK, bos_id=1, bos_piece=SOS_EOS, unk_id=2, unk_piece=UNK, eos_id=-1,
            hard_vocab_limit=False, minloglevel=2)
        return cls(model.getvalue(), model_type)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; special ids are dropped, so decode(encode(t)) == t up to repeated or outer spaces."""
        return self.sp.decode([i for i in ids if i > self.unk])

    def save(self, path: str | Path) -> None:
        data = {"type": "sentencepiece", "model_type": self.model_type, "symbols": self.symbols,
                "model": base64.b64encode(self.model_proto).decode("ascii")}
        Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        data = _read_json(path)
        try:
            tok = cls(base64.b64decode(data["model"], validate=True), data.get("model_type", "unigram"))
        except (KeyError, ValueError, RuntimeError) as err:  # RuntimeError: SentencePiece cannot parse the model
            raise ValueError(f"{path}: not a SentencePiece tokenizer file ({' '.join(str(err).split())})") from None
        if tok.symbols != data.get("symbols"):
            raise ValueError(f"{path}: symbols do not match the SentencePiece model")
        return tok


def _read_json(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a tokenizer file ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a tokenizer file (expected a JSON object)")
    return data


TOKENIZERS = {"char": CharTokenizer, "sentencepiece": SentencePieceTokenizer}


def load_tokenizer(path: str | Path) -> CharTokenizer | SentencePieceTokenizer:
    """The tokenizer saved at `path`, of the class its "type" names (files without one are character files)."""
    kind = _read_json(path).get("type", "char")
    if kind not in TOKENIZERS:
        raise ValueError(f"{path}: unknown tokenizer type {kind!r} (known: {', '.join(TOKENIZERS)})")
    return TOKENIZERS[kind].load(path)


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 1000,
                    character_coverage: float = 1.0) -> CharTokenizer | SentencePieceTokenizer:
    """kind: char, or a SentencePiece model type (unigram, bpe)."""
    if kind == "char":
        return CharTokenizer.build(texts)
    return SentencePieceTokenizer.build(texts, vocab_size, kind, character_coverage)
