"""asr-train-lm: train the character LSTM language model (asr/models/lm.py) on transcripts or a text file
(Hydra app over conf/lm.yaml; the training itself is asr/training/lm.py). The best epoch by dev perplexity is
kept in ``out_dir`` for ``load_lm``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from .. import CONF_DIR
from ..training.lm import train_lm


@hydra.main(config_path=CONF_DIR, config_name="lm", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        result = train_lm(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-train-lm: {err}")
    print(f"asr-train-lm: best dev perplexity {result['best_dev_ppl']:.3f} at epoch {result['best_epoch']} "
          f"({result['epochs']} epochs, {result['seconds']:.0f} s), LM in {cfg.out_dir}")


if __name__ == "__main__":
    main()
