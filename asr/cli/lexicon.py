"""asr-lexicon: write the word list of the beam's lexicon LM (asr/models/lexicon_lm.py) into an LM directory.

A Hydra app over conf/lm.yaml, so it reads the same training text as asr-train-lm (the train manifest or
`text`, plus `extra_text`, without any dev or test sentence) and writes `out_dir`/lexicon.tsv: the `lexicon.size`
most frequent words of wordfreq's English list mixed with the training text's words (`lexicon.text_weight`), and
`out_dir`/bigrams.tsv: the training text's word pair counts, for the lexicon LM's context (search.lexicon_bigram).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .. import CONF_DIR


def write_lexicon_file(cfg: DictConfig) -> tuple[Path, int]:
    """out_dir/lexicon.tsv and out_dir/bigrams.tsv from conf/lm.yaml; returns the lexicon's path and the number
    of words."""
    from ..models.lexicon_lm import (
        BIGRAM_FILE,
        LEXICON_FILE,
        build_lexicon,
        count_bigrams,
        write_bigrams,
        write_lexicon,
    )
    from ..training.lm import training_sentences

    lex = cfg.lexicon
    sentences = training_sentences(cfg)
    words = build_lexicon(sentences, lex.size, lex.text_weight, lex.language)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_lexicon(words, out / LEXICON_FILE)
    write_bigrams(count_bigrams(sentences), out / BIGRAM_FILE)
    return out / LEXICON_FILE, len(words)


@hydra.main(config_path=CONF_DIR, config_name="lm", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        path, n_words = write_lexicon_file(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-lexicon: {err}")
    print(f"asr-lexicon: {n_words} words -> {path}")


if __name__ == "__main__":
    main()
