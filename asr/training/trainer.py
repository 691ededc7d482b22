"""The training loop: bucketed batches, joint CTC/attention loss, warmup + decay, clipping, dev CER every
epoch, atomic checkpoints and exact resume (mid-epoch too). Scales out with torchrun + DistributedDataParallel,
mixed precision (bf16/fp16 autocast) and gradient accumulation."""

from __future__ import annotations

import contextlib
import csv
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data.augment import Augmenter
from ..data.batching import BucketBatchSampler, FeatureDataset, collate
from ..data.librispeech import read_manifest
from ..data.tokenizer import load_tokenizer
from ..decoding.dataset import decode_and_score
from ..decoding.greedy import greedy_decode
from ..frontend import FRAMES_PER_SECOND, GlobalNorm, LogMel, SpecAugment
from ..models.config import write_model_config
from ..models.las import LAS, build_model
from ..weights import load_checkpoint, save_atomic
from . import distributed
from .allocator import keep_freed_memory
from .budget import Budget
from .checkpoint import rng_state, set_rng_state
from .loop import Loop
from .schedule import lr_factor

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "train_ctc", "train_att", "train_acc", "dev_cer",
              "dev_wer", "epoch_seconds", "audio_per_second", "skipped_steps"]


def load_split(cfg: DictConfig, name: str, max_duration: float | None = None, limit: int | None = None):
    utts = read_manifest(Path(cfg.data.manifest_dir) / f"{name}.jsonl")
    if max_duration:
        utts = [u for u in utts if u.duration <= max_duration]
    return utts[:limit] if limit else utts


def groups(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter): the micro-batches of one optimizer step."""
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


class Trainer:
    """Owns the model, optimizer, schedule and the run's bookkeeping; `run()` trains to the end. It is the
    Task of asr/training/loop.py: the batches of an epoch, a step, what ends an epoch."""

    def __init__(self, cfg: DictConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg, t = cfg, cfg.train
        self.dist = distributed.setup(cfg.device)
        self.device, self.main = self.dist.device, self.dist.main
        torch.set_num_threads(cfg.threads)
        if cfg.get("keep_freed_memory", False):
            keep_freed_memory()
        torch.manual_seed(t.seed)
        random.seed(t.seed)
        np.random.seed(t.seed)
        if t.precision not in AUTOCAST_DTYPES:
            raise ValueError(f"train.precision={t.precision!r}: use fp32, bf16 or fp16")
        if t.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("train.precision=fp16 needs a CUDA device (bf16 autocast runs on the CPU too)")
        if t.accum_steps < 1:
            raise ValueError(f"train.accum_steps={t.accum_steps}: must be at least 1")
        self.exp = Path(cfg.exp_dir)
        self.exp.mkdir(parents=True, exist_ok=True)
        manifests = Path(cfg.data.manifest_dir)
        self.tokenizer = load_tokenizer(manifests / "tokenizer.json")
        self.norm = GlobalNorm.load(manifests / "norm.json")
        logmel = LogMel.from_config(cfg.features)
        self.norm.check(logmel, str(manifests / "norm.json"))
        train_utts = load_split(cfg, cfg.data.train, cfg.data.max_duration)
        if not train_utts:
            raise ValueError(f"{cfg.data.manifest_dir}/{cfg.data.train}.jsonl: no training utterances")
        dev_utts = load_split(cfg, cfg.data.dev, limit=cfg.data.dev_max_utts)
        # multi-condition audio (conf/augment/) for the training set only: dev CER stays a clean measure
        augment = Augmenter.from_config(cfg.get("augment"))
        self.train_set = FeatureDataset(train_utts, self.tokenizer, logmel, self.norm, cfg.data.cache_features,
                                        speed_perturb=cfg.data.speed_perturb, seed=t.seed,
                                        augment=augment if augment.active else None,
                                        augment_start_epoch=cfg.get("augment", {}).get("start_epoch", 0))
        self.dev_set = FeatureDataset(dev_utts, self.tokenizer, logmel, self.norm, cache=True)
        if self.main and augment.active:
            tqdm.write(f"training augmentation: {augment.describe()}")
        # a slowed-down utterance is longer: bucket by the longest it can become, so batches keep to max_frames
        slowest = min(cfg.data.speed_perturb or [1.0])
        self.sampler = BucketBatchSampler([u.duration / slowest for u in train_utts], cfg.data.max_frames,
                                          cfg.data.max_batch, seed=t.seed, rank=self.dist.rank,
                                          world_size=self.dist.world_size, group=t.accum_steps)
        self.model = build_model(cfg.model, len(self.tokenizer), cfg.features.n_mels).to(self.device)
        # DDP broadcasts rank 0's initial weights and averages gradients in buckets during backward
        self.ddp = DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=t.find_unused_parameters) if self.dist.enabled else None
        if self.dist.rank:  # other ranks draw other SpecAugment masks and dropout; rank 0 keeps the 1-GPU stream
            torch.manual_seed(t.seed + 7919 * self.dist.rank)
            random.seed(t.seed + 7919 * self.dist.rank)
            np.random.seed(t.seed + 7919 * self.dist.rank)
        augment = {k: v for k, v in cfg.specaug.items() if k not in ("enabled", "start_epoch")}
        self.specaug = SpecAugment(**augment) if cfg.specaug.enabled else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, betas=tuple(t.betas), eps=t.eps,
                                          weight_decay=t.weight_decay)
        # fp16 needs loss scaling against underflowing gradients; bf16 has fp32's exponent range and does not
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.autocast_dtype = AUTOCAST_DTYPES[t.precision]
        self.steps_per_epoch = math.ceil(self.sampler.batches_per_rank / t.accum_steps)
        self.total_steps = t.max_epochs * self.steps_per_epoch
        self.budget = Budget.from_minutes(t.max_minutes, clock)  # counts training steps; dev decoding is free
        self.lr = 0.0
        self.state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best_cer": math.inf, "best_epoch": -1,
                      "train_seconds": 0.0, "skipped_steps": 0, "world_size": self.dist.world_size,
                      "accum_steps": t.accum_steps}
        if self.main:
            write_model_config(self.exp, cfg.model, logmel.settings)
            self.tokenizer.save(self.exp / "tokenizer.json")
            self.norm.save(self.exp / "norm.json")

    # --- checkpoints -------------------------------------------------------------------------------------
    def save(self) -> None:
        """last.pt: everything an interrupted run needs to go on exactly, at an optimizer-step boundary. The
        sampler position is state["batch_in_epoch"]; the epoch's order follows from (seed, epoch). Every rank
        takes part (its RNG state is gathered); rank 0 writes."""
        rngs = self.dist.gather(rng_state(self.device))
        self.state["train_seconds"] = self.saved_at = self.budget.spent
        if self.main:
            save_atomic({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "scaler": self.scaler.state_dict(), "state": dict(self.state), "rng": rngs},
                        self.exp / "last.pt")

    def resume(self) -> bool:
        """Load exp_dir/last.pt on every rank (a multi-node run keeps exp_dir on a shared file system)."""
        path = self.exp / "last.pt"
        if not path.exists():
            return False
        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        saved = ckpt["state"]
        self.state.update(saved)
        self.budget.spent = self.state["train_seconds"]
        rngs = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]
        set_rng_state(rngs[self.dist.rank % len(rngs)], self.device)
        old_world, old_accum = saved.get("world_size", 1), saved.get("accum_steps", 1)
        if (old_world, old_accum) != (self.dist.world_size, self.cfg.train.accum_steps):
            # another batch split: go on from about the same place in the epoch, no longer bit-exact
            done = saved["batch_in_epoch"] * old_world // self.dist.world_size
            self.state.update(batch_in_epoch=min(done, self.sampler.batches_per_rank),
                              world_size=self.dist.world_size, accum_steps=self.cfg.train.accum_steps)
            if self.main:
                tqdm.write(f"{path}: saved with {old_world} ranks x {old_accum} accumulation steps, resumed with "
                           f"{self.dist.world_size} x {self.cfg.train.accum_steps}: not an exact continuation")
        return True

    def evaluate(self, epoch: int, seconds: float) -> None:
        """Dev CER of the epoch's model: keeps the best, the epoch's weights and a row of train_log.csv."""
        ratio, dist, stats, audio = self.cfg.decode_max_len_ratio, self.dist, self.stats, self.audio

        def greedy(model: LAS, feats: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
            return greedy_decode(model, feats, lengths, ratio)[0]

        # dev CER picks the best epoch; distributed, every rank decodes a share and all score the whole set
        dev = decode_and_score(self.model, self.dev_set, greedy, self.cfg.data.dev_max_frames,
                               shard=(dist.rank, dist.world_size), gather=dist.gather if dist.enabled else None)
        keys = ["loss", "ctc", "att", "acc", "batches"]
        totals = self.dist.sum([stats[k] for k in keys] + [audio])
        stats, audio = dict(zip(keys, totals[:-1])), totals[-1]
        improved = dev["cer"] < self.state["best_cer"]
        if improved:
            self.state.update(best_cer=dev["cer"], best_epoch=epoch)
        if not self.main:
            return
        if improved:
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
        self.lr = t.lr * lr_factor(self.state["step"], t.warmup_steps, self.total_steps, t.decay,
                                   t.final_lr_ratio, time_fraction=self.budget.fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def guide(self) -> dict:
        """The model's supervised-attention arguments for this step: each loss's weight and band width while its
        schedule keeps it on (train.guided_attention, train.ctc_alignment)."""
        out = {}
        for block, prefix, width in (("guided_attention", "guide", "sigma"), ("ctc_alignment", "align", "width")):
            g = self.cfg.train.get(block) or {}
            weight, until = g.get("weight", 0.0), g.get("until_step")
            if weight > 0 and (until is None or self.state["step"] < until):
                out.update({f"{prefix}_weight": float(weight), f"{prefix}_{width}": float(g[width])})
        return out

    def train_step(self, micro_batches: list[dict]) -> dict:
        """One optimizer step over the micro-batches of this rank: gradients of loss / count accumulate, and
        DDP all-reduces only after the last one (no_sync before). Returns the mean of each output."""
        self.optimizer.zero_grad(set_to_none=True)
        net, n = self.ddp or self.model, len(micro_batches)
        totals: dict[str, torch.Tensor] = {}
        for k, batch in enumerate(micro_batches):
            feats = batch["feats"].to(self.device, non_blocking=True)
            if self.specaug is not None and self.state["epoch"] >= self.cfg.specaug.start_epoch:
                feats = self.specaug(feats)
            sync = self.ddp.no_sync() if self.ddp is not None and k < n - 1 else contextlib.nullcontext()
            with sync:
                with self.autocast():  # the model keeps CTC in fp32 inside
                    out = net(feats, batch["feat_lengths"].to(self.device), batch["tokens"].to(self.device),
                              batch["token_lengths"].to(self.device), **self.guide())
                self.scaler.scale(out["loss"] / n if n > 1 else out["loss"]).backward()
            for key, value in out.items():
                totals[key] = totals[key] + value.detach() if key in totals else value.detach()
        self.scaler.unscale_(self.optimizer)  # clip true gradients (a no-op without fp16)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips the step itself on inf/NaN, then lowers the scale
            self.scaler.update()
        elif torch.isfinite(norm):
            self.optimizer.step()
        if not torch.isfinite(norm):  # one bad batch must not poison the weights
            self.state["skipped_steps"] += 1
        self.state["step"] += 1
        return {k: v.float().item() / n for k, v in totals.items()}

    def loader(self, epoch: int) -> torch.utils.data.DataLoader:
        """This rank's batches of `epoch` from its current position. Workers extract features in parallel; the
        loader's own generator keeps it from drawing on the global RNG (which exact resume restores)."""
        d = self.cfg.data
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, shortest_first=d.shortest_first_epochs > epoch,
                               skip=self.state["batch_in_epoch"])
        return torch.utils.data.DataLoader(
            self.train_set, batch_sampler=self.sampler, collate_fn=collate, num_workers=d.num_workers,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(self.cfg.train.seed),
            prefetch_factor=d.prefetch_factor if d.num_workers else None)

    # --- the Task the training loop drives (asr/training/loop.py) ---------------------------------------
    name = "epoch"

    def batches(self, epoch: int) -> Iterator[list[dict]]:
        self.stats = {"loss": 0.0, "ctc": 0.0, "att": 0.0, "acc": 0.0, "batches": 0}
        self.audio, self.epoch_start = 0.0, time.time()
        return groups(self.loader(epoch), self.cfg.train.accum_steps)

    def steps(self, epoch: int) -> int:
        return math.ceil(len(self.sampler) / self.cfg.train.accum_steps)

    def step(self, micro_batches: list[dict]) -> dict[str, str]:
        self.set_lr()
        out = self.train_step(micro_batches)
        self.state["batch_in_epoch"] += len(micro_batches)
        self.stats["batches"] += 1
        for key, name in (("loss", "loss"), ("ctc", "ctc_loss"), ("att", "att_loss"), ("acc", "accuracy")):
            self.stats[key] += out.get(name, 0.0)
        self.audio += sum(b["feat_lengths"].sum().item() for b in micro_batches) / FRAMES_PER_SECOND
        return {"loss": f"{out['loss']:.3f}", "acc": f"{out['accuracy']:.3f}", "lr": f"{self.lr:.2e}",
                "audio_s_per_s": f"{self.audio / (time.time() - self.epoch_start):.0f}"}

    def pause(self) -> bool:
        t = self.cfg.train
        self.steps_this_run += 1
        if t.stop_after_steps and self.steps_this_run >= t.stop_after_steps:
            return True
        # the budget's seconds are rank 0's on every rank (Loop.agree), so the ranks agree without asking
        if self.budget.spent - self.saved_at > t.checkpoint_minutes * 60:
            self.save()  # a killed run loses at most this much training
        return False

    def end_epoch(self, epoch: int, finished: bool) -> bool:
        if finished or self.state["batch_in_epoch"] >= self.sampler.batches_per_rank:
            self.evaluate(epoch, time.time() - self.epoch_start)
            self.state.update(epoch=epoch + 1, batch_in_epoch=0)
        self.save()
        return False

    def run(self) -> dict:
        cfg, t = self.cfg, self.cfg.train
        if cfg.resume and self.resume() and self.main:
            tqdm.write(f"resumed from {self.exp / 'last.pt'} at epoch {self.state['epoch']}, "
                       f"batch {self.state['batch_in_epoch']}")
        if cfg.data.cache_features:
            self.train_set.preload("train features")
        self.dev_set.preload("dev features")
        self.model.train()
        self.steps_this_run, self.saved_at = 0, self.budget.spent
        # dev decoding is free: the budget counts training steps; rank 0's clock decides for all, so the
        # learning rate, the budget's end and checkpointing agree
        loop = Loop(self.budget, t.max_epochs, agree=lambda seconds: self.dist.from_main([seconds])[0],
                    progress=self.main)
        outcome = loop.run(self, first_epoch=self.state["epoch"])
        if outcome.reason == "budget" and self.main:
            tqdm.write(f"wall-clock budget of {t.max_minutes} min reached in epoch {outcome.epoch} of "
                       f"{t.max_epochs}: a slower machine trains fewer epochs, a weaker model "
                       f"(train.max_minutes=null trains all {t.max_epochs})")
        if self.main and not (self.exp / "model.pt").exists():
            save_atomic(self.model.state_dict(), self.exp / "model.pt")
        self.dist.barrier()  # no rank leaves before rank 0 has written everything
        return dict(self.state)
