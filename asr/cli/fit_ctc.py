"""asr-fit-ctc: fit a new CTC head on a trained model's frozen listener (Hydra app over conf/fit_ctc.yaml).

The fitting is asr/training/ctc_fit.py. ``out_dir`` becomes a model directory with the same listener and speller
and the new head, or with the model's own head when the new one is no better on dev: ``out_dir`` is always the
model to decode with.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .. import CONF_DIR


def fit_ctc(cfg: DictConfig, clock: Callable[[], float] = time.monotonic) -> dict:
    """Fit as conf/fit_ctc.yaml says and write out_dir; returns the dev figures of the old and the new head."""
    from ..modeldir import FILES, load_model_dir
    from ..training.ctc_fit import fit_ctc_head
    from ..training.distributed import pick_device
    from ..weights import save_atomic

    torch.set_num_threads(cfg.threads)
    source, out = Path(cfg.model_dir), Path(cfg.out_dir)
    if source.resolve() == out.resolve():
        raise ValueError(f"{out}: out_dir must differ from model_dir (the source model stays as it is)")
    model, tokenizer, logmel, norm = load_model_dir(source)
    model.to(pick_device(cfg.device))
    out.mkdir(parents=True, exist_ok=True)
    head, result = fit_ctc_head(cfg, model, tokenizer, logmel, norm, out / "fit_ctc_log.csv", clock)

    model_cfg = OmegaConf.load(source / "config.yaml")
    result["replaced"] = result["dev_ctc_cer"] < result["old_dev_ctc_cer"]
    model.cpu()
    if result["replaced"]:
        model.ctc_head = head.cpu()
        model_cfg.model.ctc_upsample, model_cfg.model.ctc_layers = cfg.ctc.upsample, cfg.ctc.layers
        model_cfg.model.ctc_hidden = cfg.ctc.hidden
    else:  # out_dir is still the model decoding should use: the source, head and all
        tqdm.write(f"asr-fit-ctc: the fitted head is no better on dev ({result['dev_ctc_cer']:.2f}% against "
                   f"{result['old_dev_ctc_cer']:.2f}%): {out} keeps the model's own head")
    for name in FILES[1:3]:  # tokenizer.json, norm.json
        shutil.copy2(source / name, out / name)
    # config.yaml goes first and comes back last: a run killed in between leaves a directory that says it is
    # incomplete (no config.yaml), never new weights under an old config
    (out / "config.yaml").unlink(missing_ok=True)
    save_atomic(model.state_dict(), out / "model.pt")
    OmegaConf.save(model_cfg, out / "config.yaml.tmp")
    (out / "config.yaml.tmp").replace(out / "config.yaml")
    load_model_dir(out)  # a directory that does not load is not a result
    return result


@hydra.main(config_path=CONF_DIR, config_name="fit_ctc", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        result = fit_ctc(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"asr-fit-ctc: {err}")
    head = f"the fitted head (pass {result['pass']})" if result["replaced"] else "the model's own head"
    print(f"asr-fit-ctc: dev CTC greedy CER {result['old_dev_ctc_cer']:.2f}% (the model's head), "
          f"{result['dev_ctc_cer']:.2f}% (fitted); {result['seconds']:.0f} s; model with {head} in {cfg.out_dir}")


if __name__ == "__main__":
    main()
