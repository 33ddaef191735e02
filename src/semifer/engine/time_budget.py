"""A wall-clock budget for a run whose schedule should end on time on a machine of any speed.

Why: issue-style limits ("pretrain for at most 90 minutes on 2 cores") are in minutes, while a schedule is in
steps, and a shared CPU's speed varies by 2x between hours. With a budget the learning-rate decay follows
the clock or the steps, whichever is further on, and the run stops when either is spent: the lr reaches the
end of its schedule at the budget, however many steps fit (budgeted training, Li et al., ICLR 2020).
"""

from __future__ import annotations

import math
import time


class TimeBudget:
    """Minutes allowed (None: no budget) and seconds spent, carried across a resume by `spent`."""

    def __init__(self, minutes: float | None, spent: float = 0.0):
        if minutes is not None and not minutes > 0:
            raise ValueError(f"a time budget must be a positive number of minutes, got {minutes!r}")
        self.seconds = None if minutes is None else 60.0 * minutes
        self.spent_before = spent
        self.started: float | None = None
        self.held: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    @property
    def spent(self) -> float:
        """Seconds spent, this process's since `start` included (the `hold` reading, when one is held)."""
        if self.held is not None:
            return self.held
        running = 0.0 if self.started is None else time.perf_counter() - self.started
        return self.spent_before + running

    def hold(self, spent: float) -> None:
        """Read `spent` seconds until the next `hold`: the ranks of a distributed run share one clock."""
        self.held = spent

    def fraction(self) -> float:
        """Share of the budget spent, in [0, 1] (0 without a budget)."""
        return 0.0 if self.seconds is None else min(1.0, self.spent / self.seconds)

    def expired(self) -> bool:
        return self.seconds is not None and self.spent >= self.seconds

    def schedule_step(self, step: int, total: int, warmup: int) -> int:
        """The step a schedule of `total` steps (the first `warmup` of them a warm-up, which stays step-based)
        should read: after the warm-up, the decay is as far on as the steps or the clock, whichever is further."""
        if self.seconds is None or step < warmup:
            return step
        by_clock = warmup + math.ceil(self.fraction() * (total - warmup))
        return min(total, max(step, by_clock))
