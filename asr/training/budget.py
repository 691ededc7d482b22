"""The wall-clock budget that every training loop stops by: asr-train (LAS), asr-train-lm and asr-fit-ctc."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Budget:
    """`seconds` of wall-clock time (inf: no limit), of which `spent` are used.

    A loop either charges the time it wants counted (`charge`: asr-train counts training steps, not dev decoding)
    or counts every second by taking laps (`lap`: the time since the last lap, or since the budget was made).
    `clock` gives seconds; tests pass a fake one that moves only when told.
    """

    def __init__(self, seconds: float = math.inf, clock: Callable[[], float] = time.monotonic, spent: float = 0.0):
        self.seconds, self.clock, self.spent = float(seconds), clock, float(spent)
        self.mark = clock()

    @classmethod
    def from_minutes(cls, minutes: float | None, clock: Callable[[], float] = time.monotonic,
                     spent: float = 0.0) -> Budget:
        """A budget of `minutes` (None or 0: no limit), the unit of every `max_minutes` option."""
        return cls(minutes * 60 if minutes else math.inf, clock, spent)

    def charge(self, seconds: float) -> None:
        self.spent += seconds

    def lap(self) -> float:
        """Charge the time since the last lap (or since the budget was made) and return it."""
        now = self.clock()
        elapsed, self.mark = now - self.mark, now
        self.charge(elapsed)
        return elapsed

    @property
    def fraction(self) -> float:
        """Share of the budget spent: 0 without a limit, inf for a budget of nothing."""
        if math.isinf(self.seconds):
            return 0.0
        return self.spent / self.seconds if self.seconds > 0 else math.inf

    @property
    def exhausted(self) -> bool:
        return self.fraction >= 1

    def rest(self) -> Budget:
        """What is left, as a budget of its own that starts now on the same clock."""
        return Budget(max(self.seconds - self.spent, 0.0), self.clock)
