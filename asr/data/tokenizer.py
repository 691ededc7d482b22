"""Character tokenizer: text <-> integer ids, saved as JSON beside the manifests."""

from __future__ import annotations

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
