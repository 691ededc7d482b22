"""SentencePiece tokenizer: the same interface and special ids as CharTokenizer, and a loader that picks the class."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from asr.data.tokenizer import (
    BLANK,
    SOS_EOS,
    UNK,
    CharTokenizer,
    SentencePieceTokenizer,
    build_tokenizer,
    load_tokenizer,
)

TEXT = files("asr") / "resources" / "librispeech-text" / "dev-clean.trans.txt"
SENTENCES = [line.split(" ", 1)[1].strip() for line in TEXT.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def spm(request) -> SentencePieceTokenizer:
    return build_tokenizer(request.param, SENTENCES[:1500], vocab_size=200)


def test_special_ids_match_char_tokenizer(spm):
    char = CharTokenizer.build(SENTENCES)
    assert spm.symbols[:3] == char.symbols[:3] == [BLANK, SOS_EOS, UNK]
    assert (spm.blank, spm.sos_eos, spm.unk) == (char.blank, char.sos_eos, char.unk) == (0, 1, 2)
    assert len(spm) == len(spm.symbols) == 200


def test_round_trip_and_no_special_ids(spm):
    held_out = SENTENCES[1500:]  # text the model was not trained on
    for text in held_out:
        ids = spm.encode(text)
        assert min(ids) >= 2 and max(ids) < len(spm)  # never the blank or <sos/eos>
        assert spm.decode(ids) == text
    # subwords: fewer tokens than characters
    assert sum(len(spm.encode(t)) for t in held_out) < 0.8 * sum(len(t) for t in held_out)


def test_unknown_characters_and_specials_in_decode(spm):
    ids = spm.encode("HELLO \u00e9 WORLD")
    assert spm.unk in ids
    assert spm.decode([spm.sos_eos, *spm.encode("THE END"), spm.blank, spm.sos_eos]) == "THE END"


def test_save_load_round_trip(spm, tmp_path):
    path = tmp_path / "tokenizer.json"
    spm.save(path)
    assert json.loads(path.read_text())["type"] == "sentencepiece"
    loaded = load_tokenizer(path)
    assert isinstance(loaded, SentencePieceTokenizer)
    assert loaded.symbols == spm.symbols and loaded.model_type == spm.model_type
    assert all(loaded.encode(t) == spm.encode(t) for t in SENTENCES[:200])


def test_loader_picks_char_tokenizer(tmp_path):
    char = CharTokenizer.build(SENTENCES)
    char.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(loaded, CharTokenizer) and loaded.symbols == char.symbols


def test_bad_tokenizer_files_are_one_line_errors(spm, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"^{path}: not a tokenizer file"):
        load_tokenizer(path)
    path.write_text(json.dumps({"type": "wordpiece", "symbols": []}))
    with pytest.raises(ValueError, match=r"unknown tokenizer type 'wordpiece'"):
        load_tokenizer(path)
    spm.save(path)
    data = json.loads(path.read_text())
    data["model"] = data["model"][:40]  # truncated model
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"^{path}: not a SentencePiece tokenizer file") as err:
        load_tokenizer(path)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # synthesizes the tiny corpus
def test_prepare_builds_sentencepiece(tiny_corpus, tmp_path):
    from asr.cli.prepare import main as prepare

    out = tmp_path / "manifests"
    prepare(["--corpus", str(tiny_corpus / "LibriSpeech"), "--subsets", "train-synth", "dev-seen",
             "--train", "train-synth", "dev-seen", "--combine", "train", "--steps", "manifests", "tokenizer",
             "--tokenizer", "bpe", "--vocab-size", "60", "--out", str(out)])
    tokenizer = load_tokenizer(out / "tokenizer.json")
    assert isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.model_type == "bpe"
    assert not (out / "norm.json").exists()  # the stats step was not asked for
    lines = (out / "train.jsonl").read_text().splitlines()
    assert lines == (out / "train-synth.jsonl").read_text().splitlines() + \
        (out / "dev-seen.jsonl").read_text().splitlines()
    for line in lines:
        text = json.loads(line)["text"]
        assert tokenizer.decode(tokenizer.encode(text)) == text
