"""Progress of a running prediction: blocks done of total, and voxels per second.

daisy's own bar counts blocks only; what a user budgets GPU-hours with is voxels per second. The
rate counts the blocks computed in this run (not those skipped on resume) over the time since
the scheduler started.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class PredictionProgress:
    """A daisy progress observer (``on_start``/``on_progress``/``on_finish``) drawing one bar.

    Args:
        label: shown before the bar (the entry's name).
        voxels_per_block: mean voxels written per block (the ROI's voxels / blocks).
        enabled: draw the bar; the counters are kept either way.
    """

    def __init__(self, label: str, voxels_per_block: float, enabled: bool = True):
        self.label = label
        self.voxels_per_block = voxels_per_block
        self.enabled = enabled
        self.started = time.monotonic()
        self.bar: Any = None
        self.skipped = 0

    def _states(self, states: dict[str, Any]) -> Any:
        return next(iter(states.values()))

    def rate(self, computed_blocks: int) -> float:
        """Voxels per second over this run so far."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return computed_blocks * self.voxels_per_block / elapsed

    def on_start(self, states: dict[str, Any]) -> None:
        """daisy: the task starts (``states`` maps the task id to its counters)."""
        state = self._states(states)
        self.started = time.monotonic()
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=int(state.total_block_count),
                desc=self.label,
                unit="block",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def on_progress(self, states: dict[str, Any]) -> None:
        """daisy: block counts changed; update the bar and the voxels/s."""
        state = self._states(states)
        self.skipped = int(state.skipped_count)
        if self.bar is None:
            return
        done = int(state.completed_count)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        self.bar.set_postfix(
            {
                "vox/s": f"{self.rate(done - self.skipped):,.0f}",
                "skipped": self.skipped,
                "failed": int(state.failed_count),
            },
            refresh=False,
        )

    def on_finish(self, states: dict[str, Any]) -> None:
        """daisy: the task ended; draw the final counts and close the bar."""
        self.on_progress(states)
        if self.bar is not None:
            self.bar.close()
