"""The Lucchi yardstick's boxes and its one scoring code (used by the forest and the U-Net).

Boxes (world nm, z, y, x; data configs under ``configs/data``):

* ``slab``: the whole held-out slab z >= 130 (35x768x1024 voxels at 5 nm, 12 mitochondria),
  ``lucchi_mito_slab.json``. Checkpoints and thresholds are picked here, and it is the score.
* ``crop``: its central 35x384x512 crop (3 mitochondria), ``lucchi_mito_validation.json``, the
  benchmark's validation until issue 30; kept as a second column for continuity.

Scoring: foreground probabilities quantised to uint8 levels (`incasem.metrics.quantise`),
`incasem.metrics.ThresholdHistograms` of every box, IoU/F1/precision/recall at a threshold (0.5
unless said) and at the best-F1 threshold of the slab; the crop is also scored at the slab's
best threshold (the threshold a user would have picked on the slab).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.io.data_config import DataEntry, check_data_config
from incasem.metrics import ThresholdHistograms, quantise, scores

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = (REPO / ".." / "shared" / "data").resolve()
TRAIN_DATA = REPO / "configs" / "data" / "lucchi_mito_train.json"
SLAB_DATA = REPO / "configs" / "data" / "lucchi_mito_slab.json"
CROP_DATA = REPO / "configs" / "data" / "lucchi_mito_validation.json"
#: The yardstick's boxes, the first one picks checkpoints and thresholds.
BOX_DATA = {"slab": SLAB_DATA, "crop": CROP_DATA}
FOREGROUND = 1


def box_entries(data_root: Path) -> dict[str, DataEntry]:
    """The data entry of each yardstick box (``slab``, ``crop``) at 5 nm."""
    return {
        name: check_data_config(path, data_root=data_root, num_classes=2).entries[0]
        for name, path in BOX_DATA.items()
    }


def scores_of(histograms: ThresholdHistograms, threshold: float = 0.5) -> dict[str, float]:
    """Foreground scores at ``threshold`` and at the best-F1 threshold, as validation logs them."""
    at = scores(*histograms.counts_at(FOREGROUND, threshold))
    best = histograms.best_threshold(FOREGROUND, "f1")
    return {
        **at,
        "threshold": threshold,
        "best_threshold": best["threshold"],
        **{f"best_{key}": best[key] for key in ("f1", "precision", "recall", "iou")},
    }


class BoxScores:
    """Histograms of foreground probabilities over each box, filled block by block.

    Args:
        boxes (dict[str, Roi]): world boxes (nm, z, y, x) by name; the first picks the threshold.
        voxel_size (Sequence[int]): nm per voxel (z, y, x) of the probabilities added.
    """

    def __init__(self, boxes: dict[str, Roi], voxel_size: Sequence[int]) -> None:
        self.boxes = boxes
        self.voxel_size = Coordinate(voxel_size)
        self.histograms = {name: ThresholdHistograms.zeros(2) for name in boxes}

    def add(
        self, roi: Roi, probability: np.ndarray, class_ids: np.ndarray, region: np.ndarray
    ) -> None:
        """Count one block: foreground ``probability`` (float, z, y, x) over world ``roi`` and the
        truth of the same voxels (`incasem.predict.truth.EntryTruth.read`)."""
        levels = quantise(np.stack([1 - probability, probability]))
        for name, box in self.boxes.items():
            part = roi.intersect(box)
            if part.empty:
                continue
            begin = (part.offset - roi.offset) / self.voxel_size
            cut = tuple(
                slice(b, b + n) for b, n in zip(begin, part.shape / self.voxel_size, strict=True)
            )
            self.histograms[name] = self.histograms[name] + ThresholdHistograms.from_arrays(
                levels[(slice(None), *cut)], class_ids[cut], region[cut]
            )

    def scores(self, threshold: float = 0.5) -> dict[str, dict[str, float]]:
        """Per box: `scores_of` at ``threshold``; the other boxes also at the first box's best
        threshold (``at_pick_*``)."""
        names = list(self.boxes)
        result = {name: scores_of(self.histograms[name], threshold) for name in names}
        pick = result[names[0]]["best_threshold"]
        for name in names[1:]:
            at = scores(*self.histograms[name].counts_at(FOREGROUND, pick))
            result[name].update(
                {"pick_threshold": pick, **{f"at_pick_{k}": v for k, v in at.items()}}
            )
        return result


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), min, max and the values of one row
    over seeds."""
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def fmt_summary(values: Sequence[float]) -> str:
    """``mean ± sd`` of a row's values (``—`` for none; the value alone for one), three
    decimals."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{float(values[0]):.3f}"
    s = summary(values)
    return f"{s['mean']:.3f} ± {s['sd']:.3f}"
