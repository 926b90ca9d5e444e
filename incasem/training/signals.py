"""Stopping on a signal: SIGTERM or SIGINT ends training after the current iteration, with a
checkpoint, and the run is recorded as interrupted.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint at ``iteration``.

    A KeyboardInterrupt, so that Sacred records the run as INTERRUPTED.
    """

    def __init__(self, signum: int, iteration: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} at iteration {iteration}")
        self.signum = signum
        self.iteration = iteration


class _StopSignals:
    """Turns SIGTERM and SIGINT into a request to stop after the current iteration.

    Clusters (SLURM, LSF) send SIGTERM at a job's time limit, a while before SIGKILL; stopping
    between iterations leaves the model and optimizer consistent for the checkpoint that
    follows. A second signal interrupts at once. Outside the main thread (where handlers cannot
    be installed) nothing changes.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A PreCache worker forked with these handlers: it must die as gunpowder's
            # teardown (SIGTERM) or the cluster means it to.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning(
            "%s: stopping after this iteration with a checkpoint (again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
