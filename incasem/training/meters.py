"""What the loop measures of its iterations: training time against its budget, the time spent
waiting for prepared batches, and each step's loss, read one step late.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from incasem.gunpowder import Prefetch

logger = logging.getLogger(__name__)


class _BatchWaiting:
    """How much of the training iterations' time went to waiting for prepared batches.

    `Prefetch` counts the seconds it waited for upstream; set against the seconds of whole
    iterations this says whether ``precache.num_workers`` processes keep the model busy. Without
    a Prefetch node nothing is measured.
    """

    def __init__(self, prefetch: Prefetch | None) -> None:
        self.prefetch = prefetch
        self.step_s = 0.0
        self._window = (0.0, 0.0)

    def add(self, seconds: float) -> None:
        self.step_s += seconds

    def window_fraction(self) -> float | None:
        """Fraction of the time since `new_window` spent waiting (None if not measured)."""
        step_s = self.step_s - self._window[0]
        if self.prefetch is None or step_s <= 0:
            return None
        return (self.prefetch.waited_s - self._window[1]) / step_s

    def new_window(self) -> None:
        if self.prefetch is not None:
            self._window = (self.step_s, self.prefetch.waited_s)

    def report(self, num_workers: int) -> None:
        if self.prefetch is None or self.step_s <= 0:
            return
        fraction = self.prefetch.waited_s / self.step_s
        logger.info("waited for prepared batches %.0f%% of the iterations' time", 100 * fraction)
        if fraction > 0.1:
            logger.warning(
                "training waited for prepared batches %.0f%% of the time: batch preparation is "
                "the bottleneck; raise training.precache.num_workers (now %d) if cores are free",
                100 * fraction,
                num_workers,
            )


class _TrainingClock:
    """Seconds spent training, validation and checkpoint writing excluded, against a budget.

    ``training.max_minutes`` and the learning-rate schedule count only these seconds, so a run
    with frequent validation trains as long as one without.
    """

    def __init__(self, max_minutes: float | None) -> None:
        self.max_minutes = max_minutes
        self._started: float | None = None
        self._paused_s = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._paused_s = 0.0

    def training_s(self) -> float:
        if self._started is None:
            return 0.0
        return time.perf_counter() - self._started - self._paused_s

    def out_of_time(self) -> bool:
        return self.max_minutes is not None and self.training_s() >= 60.0 * self.max_minutes

    @contextmanager
    def paused(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused_s += time.perf_counter() - start


class _LossReader:
    """Reads each step's loss one step late and hands it on exactly.

    `incasem.gunpowder.DeferredLossTrain` leaves the loss on the device; reading it right away
    would make the host wait for the GPU to finish the step. Read after the next step has been
    queued, it costs no wait. ``on_loss(iteration, loss, learning_rate)`` sees every step's
    loss, in order; `flush` hands on the last one (before validation and at the end).
    """

    def __init__(self, on_loss: Callable[[int, float, float], None]) -> None:
        self._on_loss = on_loss
        self._pending: tuple[int, Any, float] | None = None

    def push(self, iteration: int, loss: Any, rate: float) -> None:
        """Hand on the previous step's loss and keep this one (a 0-d tensor or a number)."""
        self.flush()
        self._pending = (iteration, loss, rate)

    def flush(self) -> None:
        """Hand on the kept loss, if any."""
        if self._pending is not None:
            iteration, loss, rate = self._pending
            self._pending = None
            self._on_loss(iteration, float(loss), rate)
