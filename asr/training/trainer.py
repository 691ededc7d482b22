"""The training loop: bucketed batches, joint CTC/attention loss, warmup + decay, clipping, dev CER every
epoch, atomic checkpoints and exact resume."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from ..data.batching import BucketBatchSampler, FeatureDataset, collate
from ..data.librispeech import read_manifest
from ..data.tokenizer import CharTokenizer
from ..decoding.greedy import greedy_decode
from ..frontend import GlobalNorm, LogMel, SpecAugment
from ..modeldir import write_model_config
from ..models.las import LAS, build_model
from ..scoring import score
from .checkpoint import load_checkpoint, save_atomic
from .schedule import lr_factor

LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "train_ctc", "train_att", "train_acc", "dev_cer",
              "dev_wer", "epoch_seconds", "audio_per_second", "skipped_steps"]


def load_split(cfg: DictConfig, name: str, max_duration: float | None = None, limit: int | None = None):
    utts = read_manifest(Path(cfg.data.manifest_dir) / f"{name}.jsonl")
    if max_duration:
        utts = [u for u in utts if u.duration <= max_duration]
    return utts[:limit] if limit else utts


def evaluate(model: LAS, dataset: FeatureDataset, max_frames: int, max_len_ratio: float) -> dict:
    """Greedy-decode a dataset and score it: dev CER is what picks the best epoch."""
    model.eval()
    refs, hyps = {}, {}
    sampler = BucketBatchSampler([u.duration for u in dataset.utts], max_frames)
    for idx in sampler.batches:
        batch = collate([dataset[i] for i in idx])
        tokens, _ = greedy_decode(model, batch["feats"], batch["feat_lengths"], max_len_ratio)
        for i, t in zip(idx, tokens):
            refs[dataset.utts[i].id] = dataset.utts[i].text
            hyps[dataset.utts[i].id] = dataset.tokenizer.decode(t)
    model.train()
    return score(refs, hyps)


class Trainer:
    """Owns the model, optimizer, schedule and the run's bookkeeping; `run()` trains to the end."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.train.seed)
        self.exp = Path(cfg.exp_dir)
        self.exp.mkdir(parents=True, exist_ok=True)
        manifests = Path(cfg.data.manifest_dir)
        self.tokenizer = CharTokenizer.load(manifests / "tokenizer.json")
        self.norm = GlobalNorm.load(manifests / "norm.json")
        logmel = LogMel(cfg.features.n_mels)
        train_utts = load_split(cfg, cfg.data.train, cfg.data.max_duration)
        if not train_utts:
            raise ValueError(f"{cfg.data.manifest_dir}/{cfg.data.train}.jsonl: no training utterances")
        dev_utts = load_split(cfg, cfg.data.dev, limit=cfg.data.dev_max_utts)
        self.train_set = FeatureDataset(train_utts, self.tokenizer, logmel, self.norm, cfg.data.cache_features)
        self.dev_set = FeatureDataset(dev_utts, self.tokenizer, logmel, self.norm, cache=True)
        self.sampler = BucketBatchSampler([u.duration for u in train_utts], cfg.data.max_frames,
                                          cfg.data.max_batch, seed=cfg.train.seed)
        self.model = build_model(cfg.model, len(self.tokenizer), cfg.features.n_mels)
        augment = {k: v for k, v in cfg.specaug.items() if k not in ("enabled", "start_epoch")}
        self.specaug = SpecAugment(**augment) if cfg.specaug.enabled else None
        t = cfg.train
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, betas=(0.9, 0.98), eps=1e-9,
                                          weight_decay=t.weight_decay)
        self.total_steps = t.max_epochs * len(self.sampler.batches)
        self.budget = t.max_minutes * 60 if t.max_minutes else math.inf
        self.lr = 0.0
        self.state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best_cer": math.inf, "best_epoch": -1,
                      "train_seconds": 0.0, "skipped_steps": 0}
        write_model_config(self.exp, cfg.model, cfg.features.n_mels)
        self.tokenizer.save(self.exp / "tokenizer.json")
        self.norm.save(self.exp / "norm.json")

    # --- checkpoints -------------------------------------------------------------------------------------
    def save(self) -> None:
        save_atomic({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "state": dict(self.state),
                     "rng": torch.get_rng_state()}, self.exp / "last.pt")

    def resume(self) -> bool:
        path = self.exp / "last.pt"
        if not path.exists():
            return False
        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state.update(ckpt["state"])
        torch.set_rng_state(ckpt["rng"])
        return True

    def end_epoch(self, epoch: int, stats: dict, seconds: float, audio: float) -> None:
        dev = evaluate(self.model, self.dev_set, self.cfg.data.dev_max_frames, self.cfg.decode_max_len_ratio)
        improved = dev["cer"] < self.state["best_cer"]
        if improved:
            self.state.update(best_cer=dev["cer"], best_epoch=epoch)
            save_atomic(self.model.state_dict(), self.exp / "model.pt")
        save_atomic(self.model.state_dict(), self.exp / f"epoch{epoch}.pt")
        old = self.exp / f"epoch{epoch - self.cfg.train.keep_epochs}.pt"
        if old.exists():
            old.unlink()
        n = max(stats["batches"], 1)
        row = {"epoch": epoch, "step": self.state["step"], "lr": f"{self.lr:.3g}",
               "train_loss": f"{stats['loss'] / n:.4f}", "train_ctc": f"{stats['ctc'] / n:.4f}",
               "train_att": f"{stats['att'] / n:.4f}", "train_acc": f"{stats['acc'] / n:.4f}",
               "dev_cer": dev["cer"], "dev_wer": dev["wer"], "epoch_seconds": round(seconds, 1),
               "audio_per_second": round(audio / max(seconds, 1e-9), 1),
               "skipped_steps": self.state["skipped_steps"]}
        log = self.exp / "train_log.csv"
        new = not log.exists()
        with log.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        mark = " (best)" if improved else ""
        tqdm.write(f"epoch {epoch}: loss {row['train_loss']} acc {row['train_acc']} dev CER {dev['cer']:.2f}% "
                   f"WER {dev['wer']:.2f}%{mark}, {row['audio_per_second']} audio-s/s")

    # --- the loop ----------------------------------------------------------------------------------------
    def set_lr(self) -> None:
        """Learning rate for the next step, from the step count and the share of the time budget spent."""
        t = self.cfg.train
        spent = self.state["train_seconds"] / self.budget
        self.lr = t.lr * lr_factor(self.state["step"], t.warmup_steps, self.total_steps, t.decay,
                                   t.final_lr_ratio, time_fraction=spent)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def train_step(self, batch: dict) -> dict:
        feats = batch["feats"]
        if self.specaug is not None and self.state["epoch"] >= self.cfg.specaug.start_epoch:
            feats = self.specaug(feats)
        out = self.model(feats, batch["feat_lengths"], batch["tokens"], batch["token_lengths"])
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        if torch.isfinite(norm):
            self.optimizer.step()
        else:  # one bad batch must not poison the weights
            self.state["skipped_steps"] += 1
        self.state["step"] += 1
        return {k: v.item() for k, v in out.items()}

    def run(self) -> dict:
        cfg, t = self.cfg, self.cfg.train
        if cfg.resume and self.resume():
            tqdm.write(f"resumed from {self.exp / 'last.pt'} at epoch {self.state['epoch']}, "
                       f"batch {self.state['batch_in_epoch']}")
        if cfg.data.cache_features:
            self.train_set.preload("train features")
        self.dev_set.preload("dev features")
        self.model.train()
        steps_this_run, stop = 0, self.state["train_seconds"] >= self.budget
        while self.state["epoch"] < t.max_epochs and not stop:
            epoch = self.state["epoch"]
            self.sampler.set_epoch(epoch, shortest_first=cfg.data.shortest_first_epochs > epoch,
                                   skip=self.state["batch_in_epoch"])
            stats = {"loss": 0.0, "ctc": 0.0, "att": 0.0, "acc": 0.0, "batches": 0}
            audio, start, saved = 0.0, time.time(), time.time()
            bar = tqdm(self.sampler, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True)
            for idx in bar:
                tick = time.time()
                self.set_lr()
                batch = collate([self.train_set[i] for i in idx])
                out = self.train_step(batch)
                self.state["batch_in_epoch"] += 1
                self.state["train_seconds"] += time.time() - tick
                steps_this_run += 1
                stats["batches"] += 1
                for key, name in (("loss", "loss"), ("ctc", "ctc_loss"), ("att", "att_loss"), ("acc", "accuracy")):
                    stats[key] += out.get(name, 0.0)
                audio += batch["feat_lengths"].sum().item() / 100
                bar.set_postfix(loss=f"{out['loss']:.3f}", acc=f"{out['accuracy']:.3f}",
                                lr=f"{self.lr:.2e}", audio_s_per_s=f"{audio / (time.time() - start):.0f}")
                if self.state["train_seconds"] >= self.budget:
                    tqdm.write(f"wall-clock budget of {t.max_minutes} min reached")
                    stop = True
                    break
                if t.stop_after_steps and steps_this_run >= t.stop_after_steps:
                    stop = True
                    break
                if time.time() - saved > t.checkpoint_minutes * 60:  # a killed run loses at most this much
                    self.save()
                    saved = time.time()
            bar.close()
            epoch_done = self.state["batch_in_epoch"] >= len(self.sampler.batches)
            if epoch_done or self.state["train_seconds"] >= self.budget:
                self.end_epoch(epoch, stats, time.time() - start, audio)
                self.state.update(epoch=epoch + 1, batch_in_epoch=0)
            self.save()
        if not (self.exp / "model.pt").exists():
            save_atomic(self.model.state_dict(), self.exp / "model.pt")
        return dict(self.state)
