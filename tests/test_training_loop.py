"""The training loop every trainer runs (asr/training/loop.py), on a toy task and a fake clock: where it stops
and what each way of stopping leaves done."""

from __future__ import annotations

import pytest

from asr.training.budget import Budget
from asr.training.loop import Loop

from .conftest import FakeClock


class ToyTask:
    """`per_epoch` steps an epoch, each `step_s` seconds on the clock; an epoch's end costs `end_s`."""

    name = "toy"

    def __init__(self, clock: FakeClock, per_epoch: int = 4, step_s: float = 1.0, end_s: float = 0.0,
                 pause_after: int | None = None, stop_after_epoch: int | None = None):
        self.clock, self.per_epoch, self.step_s, self.end_s = clock, per_epoch, step_s, end_s
        self.pause_after, self.stop_after_epoch = pause_after, stop_after_epoch
        self.steps_done, self.ends = 0, []

    def batches(self, epoch: int):
        return range(self.per_epoch)

    def steps(self, epoch: int) -> int:
        return self.per_epoch

    def step(self, batch) -> dict[str, str]:
        self.clock.now += self.step_s
        self.steps_done += 1
        return {"batch": str(batch)}

    def pause(self) -> bool:
        return self.pause_after is not None and self.steps_done >= self.pause_after

    def end_epoch(self, epoch: int, finished: bool) -> bool:
        self.clock.now += self.end_s
        self.ends.append((epoch, finished))
        return epoch == self.stop_after_epoch


def run(task: ToyTask, seconds: float, **loop) -> tuple:
    budget, first = Budget(seconds, task.clock), loop.pop("first", 0)
    outcome = Loop(budget, loop.pop("max_epochs", 100), progress=False, **loop).run(task, first)
    return outcome, budget


def test_the_budget_stops_mid_epoch_and_the_cut_epoch_is_ended():
    task = ToyTask(FakeClock())
    outcome, budget = run(task, 10.0)
    assert (outcome.reason, outcome.epoch) == ("budget", 2)
    assert task.steps_done == 10 and budget.spent == 10.0  # not a step beyond the budget
    assert task.ends == [(0, True), (1, True), (2, True)]


def test_only_steps_count_unless_every_second_does():
    steps_only = ToyTask(FakeClock(), end_s=5.0)
    outcome, budget = run(steps_only, 10.0)
    assert steps_only.steps_done == 10 and budget.spent == 10.0  # the epoch ends' 15 s were free
    every_second = ToyTask(FakeClock(), end_s=5.0)
    outcome, budget = run(every_second, 10.0, count_all=True)
    # 4 steps + an end (9 s), then the 10th second is a step's: that epoch is ended and counted too
    assert every_second.steps_done == 5 and budget.spent == 15.0
    assert every_second.ends == [(0, True), (1, True)] and outcome.reason == "budget"


def test_pause_stops_without_ending_the_epoch_and_a_second_run_goes_on():
    task = ToyTask(FakeClock(), pause_after=6)
    outcome, budget = run(task, 100.0)
    assert (outcome.reason, outcome.epoch) == ("paused", 1)
    assert task.ends == [(0, True), (1, False)]


def test_the_task_and_max_epochs_stop_it():
    task = ToyTask(FakeClock(), stop_after_epoch=1)
    assert run(task, float("inf"))[0].reason == "task" and task.steps_done == 8
    task = ToyTask(FakeClock())
    outcome, _ = run(task, float("inf"), max_epochs=5, first=3)
    assert (outcome.reason, outcome.epoch) == ("epochs", 5) and [e for e, _ in task.ends] == [3, 4]


@pytest.mark.parametrize("at_least_one_step", [False, True])
def test_a_spent_budget_trains_nothing_unless_one_step_is_wanted(at_least_one_step):
    task = ToyTask(FakeClock())
    outcome, _ = run(task, 0.0, at_least_one_step=at_least_one_step)
    assert outcome.reason == "budget"
    assert task.steps_done == int(at_least_one_step)
    assert task.ends == ([(0, True)] if at_least_one_step else [])


def test_every_process_charges_the_agreed_seconds():
    task = ToyTask(FakeClock())
    outcome, budget = run(task, 10.0, agree=lambda seconds: 2 * seconds)  # another rank's slower clock
    assert task.steps_done == 5 and budget.spent == 10.0
