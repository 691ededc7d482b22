"""The training loop of asr-train (LAS), asr-train-lm and asr-fit-ctc: epochs of optimizer steps under one
wall-clock `Budget`, with a progress bar. What a step, an epoch's batches and an epoch's end mean is the job's
own (a `Task`); when to stop is the loop's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tqdm import tqdm

from .budget import Budget


class Task(Protocol):
    """One training job, as the loop drives it."""

    name: str  # the progress bar's label: "epoch", "lm epoch", "ctc head pass"

    def batches(self, epoch: int) -> Iterable:
        """The batches of `epoch` still to train on (all of them, or the rest of an epoch a resumed run is in)."""

    def steps(self, epoch: int) -> int | None:
        """How many steps `batches(epoch)` gives, for the progress bar (None: unknown)."""

    def step(self, batch) -> dict[str, str]:
        """One optimizer step on `batch`; returns what the progress bar shows."""

    def pause(self) -> bool:
        """Asked after every step: True stops training here, mid-epoch, without ending the epoch."""

    def end_epoch(self, epoch: int, finished: bool) -> bool:
        """After each epoch: `finished` when it ran to its end or the budget ran out in it (dev evaluation,
        the best model, the log), not when `pause` stopped it. True stops training."""


@dataclass
class Outcome:
    reason: str  # "epochs" (all of them), "budget" (the clock), "task" (the task's end_epoch), "paused"
    epoch: int   # the epoch training stopped in or after


@dataclass
class Loop:
    """Runs a Task's epochs until `max_epochs`, the budget or the task stops it.

    count_all: every second counts against the budget (evaluation and checkpoints too); otherwise only the steps
    (fetching the batch included). agree: turns a step's measured seconds into the ones every process of a
    distributed run charges (rank 0's). at_least_one_step: train one step even on a budget that is already spent
    (a job whose result needs a trained step at all). progress: show the bar.
    """

    budget: Budget
    max_epochs: int
    count_all: bool = False
    agree: Callable[[float], float] = float
    at_least_one_step: bool = False
    progress: bool = True

    def run(self, task: Task, first_epoch: int = 0) -> Outcome:
        budget, epoch, stepped = self.budget, first_epoch, False
        while epoch < self.max_epochs:
            if budget.exhausted and (stepped or not self.at_least_one_step):
                return Outcome("budget", epoch)
            reason = None
            batches = iter(task.batches(epoch))
            bar = tqdm(total=task.steps(epoch), desc=f"{task.name} {epoch}", unit="step", dynamic_ncols=True,
                       disable=not self.progress)
            while True:
                tick = None if self.count_all else budget.clock()
                batch = next(batches, None)
                if batch is None:
                    break
                postfix = task.step(batch)
                stepped = True
                if self.count_all:
                    budget.lap()
                else:
                    budget.charge(self.agree(budget.clock() - tick))
                bar.update()
                bar.set_postfix(postfix)
                if budget.exhausted:
                    reason = "budget"
                    break
                if task.pause():
                    reason = "paused"
                    break
            bar.close()
            del batches  # a DataLoader's workers stop here, before the epoch's end evaluates
            stop = task.end_epoch(epoch, finished=reason != "paused")
            if self.count_all:
                budget.lap()
            if reason:
                return Outcome(reason, epoch)
            if stop:
                return Outcome("task", epoch)
            epoch += 1
        return Outcome("epochs", epoch)
