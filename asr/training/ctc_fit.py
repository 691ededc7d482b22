"""Fitting a new CTC head on a trained model's frozen listener (asr-fit-ctc runs it).

Training and decoding want different CTC heads. In training, a linear head with one frame per listener frame
teaches the listener the character rate, and the attention locks sooner (measured: docs/mini-recipe-notes.md).
Beam search's CTC prefix scores want the best CTC model the listener can carry: more frames per listener frame
(room for the blank between doubled letters) and BLSTM layers of its own. The listener's outputs over the training
set are computed once (or, with ``fit.cache_listener=false`` for large corpora, again for each batch of each
pass), the new head is fitted on them (with ``fit.speed_perturb``, on those of each speed-perturbed copy of the
training set, and with ``ctc.dropout``; with ``fit.max_minutes``, until the clock runs out, mid-pass if need be),
and the pass with the best dev CTC greedy CER is kept.
"""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from .budget import Budget
from .loop import Loop

LOG_FIELDS = ["pass", "passes", "lr", "train_ctc_loss", "dev_ctc_loss", "dev_ctc_cer", "seconds", "best"]


@torch.no_grad()  # not inference_mode: the outputs are inputs of the head's training
def encode_batch(model, dataset, idx: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(memory (T', D), tokens (U,)) of the utterances idx of a FeatureDataset, on the model's device."""
    from ..data.batching import collate

    device = next(model.parameters()).device
    batch = collate([dataset[i] for i in idx])
    memory, lengths = model.encode(batch["feats"].to(device), batch["feat_lengths"].to(device))
    tokens = batch["tokens"].to(device)
    return [(memory[row, : lengths[row]].clone(), tokens[row, : batch["token_lengths"][row]])
            for row in range(len(idx))]


def listener_memories(model, dataset, durations: list[float], max_frames: int, desc: str
                      ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(memory (T', D), tokens (U,)) of every item of a dataset of FeatureDataset items, in its order."""
    from ..data.batching import bucket_batches

    out: list = [None] * len(dataset)
    for idx in tqdm(bucket_batches(durations, max_frames), desc=desc, unit="batch", leave=False):
        for i, item in zip(idx, encode_batch(model, dataset, idx)):
            out[i] = item
    return out


def head_outputs(head, items: list[tuple[torch.Tensor, torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The head over (memory, tokens) pairs: CTC log-probabilities (B, k T', V), their lengths, the padded tokens
    (B, U) and their lengths, as `ctc_loss` takes them."""
    device = items[0][0].device
    memory = pad_sequence([m for m, _ in items], batch_first=True)
    log_probs, lengths = head(memory, torch.tensor([len(m) for m, _ in items], device=device))
    targets = pad_sequence([t for _, t in items], batch_first=True)
    return log_probs, lengths, targets, torch.tensor([len(t) for _, t in items], device=device)


@torch.no_grad()
def evaluate(head, items, utts, tokenizer, blank: int, max_frames: int) -> tuple[float, float]:
    """Dev CTC loss and the CER of the head's best paths (repeats merged, blanks dropped)."""
    from ..data.batching import bucket_batches
    from ..decoding.greedy import ctc_best_paths
    from ..models.ctc_head import ctc_loss
    from ..scoring import score

    was_training = head.training
    head.eval()
    total, hyps = 0.0, {}
    for idx in bucket_batches([u.duration for u in utts], max_frames):
        log_probs, lengths, targets, target_lengths = head_outputs(head, [items[i] for i in idx])
        total += ctc_loss(log_probs, lengths, targets, target_lengths, blank).item() * len(idx)
        tokens, _ = ctc_best_paths(log_probs, lengths, blank)
        hyps.update({utts[i].id: tokenizer.decode(t) for i, t in zip(idx, tokens)})
    head.train(was_training)
    return total / len(items), score({u.id: u.text for u in utts}, hyps)["cer"]


def at_final_rate(done: int, per_pass: int, passes: int, time_fraction: float) -> bool:
    """Whether the next batch belongs to the fit's last 1/passes, which runs at the final learning rate: by the
    batches done (``done`` of ``passes`` x ``per_pass``), or by the share of the time budget spent when that runs
    out first, so a fit the clock cuts short still ends at the final rate (asr-train anneals by the clock too)."""
    return passes > 1 and (done >= (passes - 1) * per_pass or time_fraction >= 1 - 1 / passes)


def fit_ctc_head(cfg: DictConfig, model, tokenizer, logmel, norm, log: Path,
                 clock: Callable[[], float] = time.monotonic) -> tuple[torch.nn.Module, dict]:
    """Fit a head as conf/fit_ctc.yaml says on `model`'s frozen listener, writing one row of `log` per pass.
    Returns the best pass's head and the dev figures of the model's own head and of it."""
    from ..data.augment import Augmenter
    from ..data.batching import FeatureDataset, bucket_batches
    from ..models.ctc_head import CTCHead
    from .trainer import load_split

    torch.manual_seed(cfg.seed)
    if cfg.fit.passes < 1:
        raise ValueError(f"fit.passes must be at least 1, got {cfg.fit.passes}")
    if model.ctc_head is None:
        raise ValueError(f"{cfg.model_dir}: the model has no CTC head (trained with ctc_weight 0), so beam search "
                         "does not read one; train it with a CTC weight")
    model.requires_grad_(False)
    device = next(model.parameters()).device
    train_utts = load_split(cfg, cfg.data.train, cfg.data.max_duration)
    dev_utts = load_split(cfg, cfg.data.dev, limit=cfg.data.dev_max_utts)
    if not train_utts or not dev_utts:
        empty = cfg.data.train if not train_utts else cfg.data.dev
        raise ValueError(f"{cfg.data.manifest_dir}/{empty}.jsonl: no utterances")
    budget = Budget.from_minutes(cfg.fit.max_minutes, clock)  # every second counts from here
    start = budget.mark
    # one item per utterance and speed factor: a pass goes over every copy
    factors = [float(f) for f in cfg.fit.speed_perturb or [1.0]]
    # the listener learned on the training augmentation, so the head learns from its outputs on the same kind of
    # audio: each copy draws its own effects (a different augmentation epoch), dev stays clean
    augment = Augmenter.from_config(cfg.get("augment"))
    copies = []
    for k, f in enumerate(factors):
        copies.append(FeatureDataset(train_utts, tokenizer, logmel, norm, cache=False, speed_perturb=[f],
                                     seed=cfg.seed, augment=augment if augment.active else None))
        copies[-1].set_epoch(k + 1)
    if augment.active:
        tqdm.write(f"asr-fit-ctc: training copies augmented: {augment.describe()}")
    train_set = torch.utils.data.ConcatDataset(copies)
    train_durations = [u.duration / f for f in factors for u in train_utts]
    if cfg.fit.cache_listener:  # computed once for every pass
        cached = listener_memories(model, train_set, train_durations, cfg.fit.encode_max_frames, "listener (train)")

        def train_batch(idx):
            return [cached[i] for i in idx]
    else:  # computed again in every pass: memory stays that of one batch, whatever the corpus
        def train_batch(idx):
            return encode_batch(model, train_set, idx)
    dev = listener_memories(model, FeatureDataset(dev_utts, tokenizer, logmel, norm, cache=False),
                            [u.duration for u in dev_utts], cfg.fit.encode_max_frames, "listener (dev)")
    encode_seconds = clock() - start
    evaluated = clock()
    old_loss, old_cer = evaluate(model.ctc_head, dev, dev_utts, tokenizer, model.blank, cfg.fit.encode_max_frames)
    eval_seconds = clock() - evaluated
    tqdm.write(f"asr-fit-ctc: the model's own head: dev CTC loss {old_loss:.3f}, CTC greedy CER {old_cer:.2f}%")

    head = CTCHead(model.listener.output_dim, len(tokenizer), cfg.ctc.upsample, cfg.ctc.layers,
                   cfg.ctc.hidden, cfg.ctc.dropout).to(device)
    # the budget covers the listener outputs and every evaluation: what is left, less the time of one evaluation
    # (the last), is the fitting's, every second of it counted; at least one batch is fitted, whatever is left
    budget.lap()
    budget.charge(eval_seconds)
    window = budget.rest()
    task = HeadFitTask(cfg, head, model.blank, bucket_batches(train_durations, cfg.fit.max_frames), train_batch,
                       lambda: evaluate(head, dev, dev_utts, tokenizer, model.blank, cfg.fit.encode_max_frames),
                       random.Random(cfg.seed), log, window)
    outcome = Loop(window, cfg.fit.passes, count_all=True, at_least_one_step=True).run(task)
    if outcome.reason == "budget":
        tqdm.write(f"asr-fit-ctc: the wall-clock budget of {cfg.fit.max_minutes} min ran out after "
                   f"{task.done / task.per_pass:.2f} of {cfg.fit.passes} passes (fit.max_minutes=null runs them all)")
    best = task.best
    head.load_state_dict(best.pop("state"))
    return head, {"old_dev_ctc_loss": round(old_loss, 4), "old_dev_ctc_cer": old_cer, **best,
                  "passes": round(task.done / task.per_pass, 2), "encode_seconds": round(encode_seconds, 1),
                  "seconds": round(clock() - start, 1)}


class HeadFitTask:
    """The head's fitting as a Task of the training loop: passes over the training batches in a new order each;
    after each pass its dev CTC greedy CER (the best pass is kept, ties by dev CTC loss). `window` is the fitting's
    share of the budget: the last 1/passes of it runs at the final learning rate."""

    name = "ctc head pass"

    def __init__(self, cfg: DictConfig, head, blank: int, batches: list[list[int]], train_batch: Callable,
                 dev_figures: Callable[[], tuple[float, float]], rng: random.Random, log: Path, window: Budget):
        self.cfg, self.head, self.blank, self.order, self.train_batch = cfg, head, blank, batches, train_batch
        self.dev_figures, self.rng, self.log, self.window, self.clock = dev_figures, rng, log, window, window.clock
        self.optimizer = torch.optim.Adam(head.parameters(), lr=cfg.fit.lr)
        self.per_pass, self.done, self.lr = len(batches), 0, cfg.fit.lr
        self.best = {"dev_ctc_cer": math.inf, "dev_ctc_loss": math.inf}
        with log.open("w", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writeheader()

    def batches(self, epoch: int) -> list[list[int]]:
        self.pass_start, self.total, self.taken = self.clock(), 0.0, 0
        self.rng.shuffle(self.order)
        return self.order

    def steps(self, epoch: int) -> int:
        return self.per_pass

    def step(self, idx: list[int]) -> dict[str, str]:
        from ..models.ctc_head import ctc_loss

        # the last 1/passes at a lower rate settles the head (mini, 4 passes: dev CER 11.79, a cosine decay 12.35)
        final = at_final_rate(self.done, self.per_pass, self.cfg.fit.passes, self.window.fraction)
        self.lr = self.cfg.fit.lr * (self.cfg.fit.final_lr_ratio if final else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        loss = ctc_loss(*head_outputs(self.head, self.train_batch(idx)), self.blank)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.head.parameters(), self.cfg.fit.grad_clip)
        if torch.isfinite(grad_norm):  # one bad batch must not poison the weights
            self.optimizer.step()
        self.total += loss.item()
        self.done, self.taken = self.done + 1, self.taken + 1
        return {"ctc": f"{loss.item():.3f}", "lr": f"{self.lr:.1e}"}

    def pause(self) -> bool:
        return False

    def end_epoch(self, epoch: int, finished: bool) -> bool:
        dev_loss, dev_cer = self.dev_figures()
        row = {"pass": epoch, "passes": round(self.done / self.per_pass, 2), "lr": f"{self.lr:.3g}",
               "train_ctc_loss": round(self.total / self.taken, 4), "dev_ctc_loss": round(dev_loss, 4),
               "dev_ctc_cer": dev_cer, "seconds": round(self.clock() - self.pass_start, 1),
               "best": int((dev_cer, dev_loss) < (self.best["dev_ctc_cer"], self.best["dev_ctc_loss"]))}
        if row["best"]:
            self.best = {**row, "state": {k: v.clone() for k, v in self.head.state_dict().items()}}
        with self.log.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow(row)
        tqdm.write(f"ctc head pass {epoch}: train CTC loss {row['train_ctc_loss']:.3f}, dev CTC loss {dev_loss:.3f}, "
                   f"dev CTC greedy CER {dev_cer:.2f}%{' (best)' if row['best'] else ''}")
        return False
