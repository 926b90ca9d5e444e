"""Per-block metric counts of a prediction, summed into the entry's scores.

Blocks of an entry with labels leave their metric counts (confusion counts and probability
histograms) in a folder named by the entry's provenance hash (`incasem.predict.resume`),
written before the block is marked done, so the scores of a resumed run cover the skipped
blocks too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from incasem.atomic import write_atomic
from incasem.metrics import ConfusionCounts, ThresholdHistograms


def metrics_path(work_dir: Path, digest: str) -> Path:
    """Folder of per-block metric counts for one provenance."""
    return work_dir / f"metrics-{digest[:16]}"


def save_block_metrics(
    folder: Path, block_id: int, counts: ConfusionCounts, histograms: ThresholdHistograms
) -> None:
    """Store one block's counts atomically (temporary file + rename)."""
    arrays = {"counts": counts.as_array(), "histograms": histograms.as_array()}
    write_atomic(folder / f"{block_id}.npz", lambda tmp: np.savez(tmp, **arrays))


def load_metrics(
    folder: Path, num_classes: int
) -> tuple[ConfusionCounts, ThresholdHistograms, int]:
    """Sum of all stored block counts in ``folder``; returns (counts, histograms, blocks)."""
    counts = ConfusionCounts.zeros(num_classes)
    histograms = ThresholdHistograms.zeros(num_classes)
    blocks = 0
    if folder.is_dir():
        for path in sorted(folder.glob("[0-9]*.npz")):
            with np.load(path) as stored:
                counts = counts + ConfusionCounts.from_array(stored["counts"])
                histograms = histograms + ThresholdHistograms.from_array(stored["histograms"])
            blocks += 1
    return counts, histograms, blocks
