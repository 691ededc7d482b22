"""Training the character LSTM language model (asr/models/lm.py) on transcripts or text files: the
training text (a manifest's transcripts or a text file, dev and test sentences removed), length-bucketed
batches, and the loop that keeps the best epoch by dev perplexity (asr-train-lm runs it)."""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .budget import Budget
from .loop import Loop

LOG_FIELDS = ["epoch", "lr", "train_ppl", "dev_ppl", "epoch_seconds", "chars_per_second", "best"]


def read_sentences(path: str | Path) -> list[str]:
    """Non-empty lines of a text file, whitespace normalised; a ``.trans.txt`` file loses each line's id."""
    from ..data.librispeech import TRANSCRIPT_SUFFIX
    from ..textfile import read_lines

    drop_id = str(path).endswith(TRANSCRIPT_SUFFIX)
    sentences = []
    for line in read_lines(path):
        words = line.split()[1:] if drop_id else line.split()
        if words:
            sentences.append(" ".join(words))
    if not sentences:
        raise ValueError(f"{path}: no sentences (empty text file)")
    return sentences


def manifest_texts(manifest_dir: str | Path, name: str) -> list[str]:
    from ..data.librispeech import read_manifest

    path = Path(manifest_dir) / f"{name}.jsonl"
    texts = [" ".join(u.text.split()) for u in read_manifest(path)]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"{path}: no transcripts")
    return texts


def training_sentences(cfg: DictConfig) -> list[str]:
    """The training text: the train manifest's (or ``text``'s) sentences plus ``extra_text``, without any
    sentence of the dev/excluded manifests, deduplicated and length-limited as configured."""
    sentences = read_sentences(cfg.text) if cfg.text else manifest_texts(cfg.data.manifest_dir, cfg.data.train)
    for path in cfg.extra_text:
        sentences += read_sentences(path)
    held_out: set[str] = set()
    used = []
    for name in dict.fromkeys([cfg.data.dev, *cfg.data.exclude]):
        if (Path(cfg.data.manifest_dir) / f"{name}.jsonl").exists():
            held_out.update(manifest_texts(cfg.data.manifest_dir, name))
            used.append(name)
    kept = [s for s in sentences if s not in held_out]
    if len(kept) < len(sentences):
        tqdm.write(f"asr-train-lm: left out {len(sentences) - len(kept)} training sentences that occur in "
                   f"{', '.join(used)}")
    if cfg.dedupe:
        kept = list(dict.fromkeys(kept))
    too_long = sum(len(s) > cfg.max_chars for s in kept)
    if too_long:
        tqdm.write(f"asr-train-lm: left out {too_long} training sentences longer than {cfg.max_chars} characters")
        kept = [s for s in kept if len(s) <= cfg.max_chars]
    if not kept:
        raise ValueError("no training sentences left after removing dev/test sentences and long ones")
    return kept


def encode(sentences: list[str], tokenizer, what: str) -> list[list[int]]:
    """Sentences -> id lists; characters outside the ASR vocabulary become <unk>, with one warning."""
    ids = [tokenizer.encode(s) for s in sentences]
    unknown = sum(row.count(tokenizer.unk) for row in ids)
    if unknown:
        chars = sorted({c for s in sentences for c in s if c not in tokenizer.index})
        shown = "".join(chars[:20]) + ("..." if len(chars) > 20 else "")
        tqdm.write(f"asr-train-lm: warning: {unknown} characters of the {what} text are not in the tokenizer "
                   f"({shown!r}); they are trained as <unk>")
    return ids


def length_batches(lengths: list[int], batch_size: int, rng: random.Random | None = None) -> list[list[int]]:
    """Index batches of at most ``batch_size`` sentences of similar length. With ``rng``: ties in length are
    broken at random and the batch order is shuffled, so each epoch sees different batches."""
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])  # stable: equal lengths keep the shuffled order
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def batch_loss(model, tokens: list[list[int]]) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of ``<sos> y <eos>`` for each sentence, and the number of predicted
    tokens (characters + one <eos> each)."""
    from ..models.lm import pad_sentences

    inputs, targets = pad_sentences(tokens, model.sos_eos)
    logits = model(inputs)
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    return nll, int((targets >= 0).sum())


@torch.no_grad()
def perplexity(model, tokens: list[list[int]], batch_size: int) -> float:
    """exp(mean negative log-likelihood per predicted token, <eos> included) over all sentences."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for idx in length_batches([len(t) for t in tokens], batch_size):
        nll, n = batch_loss(model, [tokens[i] for i in idx])
        total, count = total + nll.item(), count + n
    model.train(was_training)
    return math.exp(total / count)


def train_lm(cfg: DictConfig, clock: Callable[[], float] = time.monotonic) -> dict:
    """Train as conf/lm.yaml says; returns {best_dev_ppl, best_epoch, epochs, seconds, ...}."""
    from ..data.tokenizer import CharTokenizer
    from ..models.lm import build_lm

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    t = cfg.train
    tokenizer = CharTokenizer.load(Path(cfg.data.manifest_dir) / "tokenizer.json")
    train_ids = encode(training_sentences(cfg), tokenizer, "training")
    dev_ids = encode(manifest_texts(cfg.data.manifest_dir, cfg.data.dev), tokenizer, "dev")
    model = build_lm(cfg.model, len(tokenizer))
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    n_params = sum(p.numel() for p in model.parameters())
    n_chars = sum(len(s) for s in train_ids)
    tqdm.write(f"asr-train-lm: {len(train_ids)} training sentences ({n_chars} characters), {len(dev_ids)} dev; "
               f"vocabulary {len(tokenizer)}, {n_params / 1e6:.2f} M parameters")

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / "tokenizer.json")  # the vocabulary the LM's ids mean, to check against an ASR model's
    log = out / "train_log.csv"
    with log.open("w", newline="") as f:
        csv.DictWriter(f, fieldnames=LOG_FIELDS).writeheader()

    budget = Budget.from_minutes(t.max_minutes, clock)  # every second counts, dev perplexity too
    task = LMTask(cfg, model, optimizer, train_ids, dev_ids, rng, out, log)
    outcome = Loop(budget, t.max_epochs, count_all=True).run(task)
    if outcome.reason == "budget":
        tqdm.write(f"asr-train-lm: wall-clock budget of {t.max_minutes} min reached")
    return {"best_dev_ppl": task.best_ppl, "best_epoch": task.best_epoch, "epochs": outcome.epoch + 1,
            "seconds": budget.spent, "train_sentences": len(train_ids), "parameters": n_params}


class LMTask:
    """The LM's training as a Task of the training loop: length-bucketed batches in a new order each epoch; the
    best epoch by dev perplexity is saved; the learning rate decays after an epoch that did not improve, and
    training stops when it falls below train.min_lr."""

    name = "lm epoch"

    def __init__(self, cfg: DictConfig, model, optimizer, train_ids: list[list[int]], dev_ids: list[list[int]],
                 rng: random.Random, out: Path, log: Path):
        self.cfg, self.model, self.optimizer, self.rng, self.out, self.log = cfg, model, optimizer, rng, out, log
        self.train_ids, self.dev_ids = train_ids, dev_ids
        self.lr, self.best_ppl, self.best_epoch = cfg.train.lr, math.inf, -1

    def batches(self, epoch: int) -> list[list[list[int]]]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.model.train()
        self.epoch_start, self.nll_sum, self.count = time.time(), 0.0, 0
        order = length_batches([len(s) for s in self.train_ids], self.cfg.train.batch_size, self.rng)
        self.n_batches = len(order)
        return [[self.train_ids[i] for i in idx] for idx in order]

    def steps(self, epoch: int) -> int:
        return self.n_batches

    def step(self, tokens: list[list[int]]) -> dict[str, str]:
        nll, n = batch_loss(self.model, tokens)
        self.optimizer.zero_grad(set_to_none=True)
        (nll / n).backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        if torch.isfinite(norm):  # one bad batch must not poison the weights
            self.optimizer.step()
        self.nll_sum, self.count = self.nll_sum + nll.item(), self.count + n
        return {"ppl": f"{math.exp(self.nll_sum / self.count):.2f}", "lr": f"{self.lr:.1e}"}

    def pause(self) -> bool:
        return False

    def end_epoch(self, epoch: int, finished: bool) -> bool:
        from ..models.lm import save_lm

        t = self.cfg.train
        seconds = time.time() - self.epoch_start
        dev_ppl = perplexity(self.model, self.dev_ids, 2 * t.batch_size)
        improved = dev_ppl < self.best_ppl
        if improved:
            self.best_ppl, self.best_epoch = dev_ppl, epoch
            save_lm(self.model, self.out, {"epoch": epoch, "dev_ppl": round(dev_ppl, 4),
                                           "training": OmegaConf.to_container(self.cfg, resolve=True)})
        row = {"epoch": epoch, "lr": f"{self.lr:.3g}",
               "train_ppl": round(math.exp(self.nll_sum / max(self.count, 1)), 4), "dev_ppl": round(dev_ppl, 4),
               "epoch_seconds": round(seconds, 1), "chars_per_second": round(self.count / max(seconds, 1e-9)),
               "best": int(improved)}
        with self.log.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow(row)
        tqdm.write(f"lm epoch {epoch}: train ppl {row['train_ppl']:.3f} dev ppl {dev_ppl:.3f}"
                   f"{' (best)' if improved else ''}, {row['chars_per_second']} chars/s")
        if not improved:
            self.lr *= t.lr_decay
            if self.lr < t.min_lr:
                tqdm.write(f"asr-train-lm: learning rate below {t.min_lr}, stopping")
                return True
        return False
