"""Learning-rate schedules over a training budget given in iterations, minutes or both.

A short CPU training run learns faster with a large learning rate that is lowered towards the
end (cosine decay) than with a small constant one, and a warm-up keeps the first large steps of
an untrained network from diverging. A budget in minutes (``training.max_minutes``) does not say
how many iterations there will be, so the schedule follows whichever budget is closer to its
end: the fraction done is the larger of iterations done / ``training.iterations`` and minutes
trained / ``training.max_minutes``.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def budget_fraction(
    iteration: int, iterations: int, training_s: float, max_minutes: float | None
) -> float:
    """How much of the training budget is spent, in [0, 1].

    Args:
        iteration: iterations done.
        iterations: ``training.iterations``.
        training_s: seconds trained so far (validation excluded).
        max_minutes: ``training.max_minutes``, or None for no time budget.
    """
    done = iteration / max(iterations, 1)
    if max_minutes is not None:
        done = max(done, training_s / (60.0 * max_minutes))
    return min(max(done, 0.0), 1.0)


def learning_rate(
    base: float,
    schedule: str,
    fraction: float,
    iteration: int,
    warmup_iterations: int = 0,
    final_fraction: float = 0.01,
) -> float:
    """The learning rate for the next step.

    Args:
        base: ``training.optimizer.lr``, the peak rate.
        schedule: ``"constant"`` (``base`` throughout) or ``"cosine"`` (half a cosine from
            ``base`` down to ``final_fraction * base`` over the budget).
        fraction: budget spent, see `budget_fraction`.
        iteration: the step about to be taken (1 for the first).
        warmup_iterations: the first steps rise linearly from ``base / warmup_iterations``.
        final_fraction: with ``"cosine"``, the rate at the end of the budget relative to
            ``base``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    rate = base
    if schedule == "cosine":
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
        rate = base * (final_fraction + (1.0 - final_fraction) * cosine)
    if warmup_iterations > 0 and iteration <= warmup_iterations:
        rate *= iteration / warmup_iterations
    return rate
