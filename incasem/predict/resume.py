"""Resuming a prediction safely: done markers keyed by everything that shapes the output.

A resumed run may skip a block only if the block would come out the same. Daisy's done markers
alone do not know that: they would happily skip blocks written by another checkpoint. So every
entry's markers live in a folder named by a hash of its provenance (checkpoint digest, the entry
and its datasets, block layout, normalisation, output type, threshold, incasem version): the same
prediction finds its markers and skips exactly the blocks they record, and any change finds no
markers and recomputes everything.

Blocks also leave their metric counts (confusion counts and probability histograms) beside the
markers, written before the block is marked done, so the scores of a resumed run cover the
skipped blocks too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from incasem.atomic import write_atomic
from incasem.metrics import ConfusionCounts, ThresholdHistograms


def provenance_hash(record: dict[str, Any]) -> str:
    """sha256 (hex) of a JSON-serialisable record, independent of key order."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tracking_path(work_dir: Path, digest: str) -> Path:
    """Daisy's done-marker store for one provenance."""
    return work_dir / f"blocks-{digest[:16]}"


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
