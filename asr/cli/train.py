"""asr-train: train a LAS model from prepared manifests (Hydra app over conf/train.yaml).

One process: `asr-train ...`. Several GPUs or nodes: `torchrun --nproc_per_node=N -m asr.cli.train ...` (or
torchrun's `--no-python asr-train ...`); each process reads RANK/WORLD_SIZE/LOCAL_RANK from torchrun."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from .. import CONF_DIR


@hydra.main(config_path=CONF_DIR, config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    from ..training.trainer import Trainer

    try:
        trainer = Trainer(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-train: {err}")
    try:
        state = trainer.run()
    finally:
        trainer.dist.close()
    if trainer.main:
        print(f"asr-train: best dev CER {state['best_cer']:.2f}% at epoch {state['best_epoch']}, "
              f"{state['train_seconds']:.0f} s of training, model in {cfg.exp_dir}")


if __name__ == "__main__":
    main()
