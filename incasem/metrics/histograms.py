"""Probability histograms per class: a whole threshold sweep from one prediction pass.

Choosing the threshold of a probability map used to mean re-reading the whole prediction once
per threshold (the original's ``05_evaluate_metric.py``). Probabilities stored as uint8 take only
256 values, so two histograms per class (of voxels that truly are the class, and of voxels that
are not) hold every count the sweep needs: for a threshold ``q`` (a uint8 level), true positives
are the positive voxels with level >= q, false positives the negative ones with level >= q, and
false negatives the positive ones below q. Histograms add up block by block like counts.

Levels are ``round(p * 255)`` of the probability ``p``, exactly what the uint8 datasets store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from incasem.metrics.confusion import class_names_for, foreground_mean, scores

LEVELS = 256


def quantise(probabilities: np.ndarray) -> np.ndarray:
    """uint8 levels ``round(p * 255)`` of probabilities in [0, 1] (any shape)."""
    return np.rint(np.clip(probabilities, 0.0, 1.0) * (LEVELS - 1)).astype(np.uint8)


def level_for_threshold(threshold: float) -> int:
    """Smallest uint8 level whose probability ``level / 255`` is >= ``threshold``."""
    return int(np.ceil(threshold * (LEVELS - 1) - 1e-9))


@dataclass
class ThresholdHistograms:
    """Counts of uint8 probability levels per class.

    Attributes:
        positive: (num_classes, 256): voxels of class c (in the evaluation region) per level
            of p(c).
        negative: (num_classes, 256): voxels of any other class per level of p(c).
    """

    positive: np.ndarray
    negative: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> ThresholdHistograms:
        """Empty histograms for ``num_classes`` classes (background included)."""
        shape = (num_classes, LEVELS)
        return cls(np.zeros(shape, np.int64), np.zeros(shape, np.int64))

    @classmethod
    def from_arrays(
        cls, levels: np.ndarray, truth: np.ndarray, region: np.ndarray | None
    ) -> ThresholdHistograms:
        """Histograms of one block.

        Args:
            levels: uint8 probability levels, (num_classes, z, y, x) (see `quantise`).
            truth: true class id per voxel, (z, y, x).
            region: boolean (z, y, x), True where voxels count; None counts every voxel.
        """
        num_classes = levels.shape[0]
        if levels.shape[1:] != truth.shape:
            raise ValueError(f"levels {levels.shape} do not match truth {truth.shape}")
        if region is None:
            region = np.ones(truth.shape, bool)
        result = cls.zeros(num_classes)
        for class_id in range(num_classes):
            is_class = truth == class_id
            level = levels[class_id]
            result.positive[class_id] = np.bincount(level[region & is_class], minlength=LEVELS)
            result.negative[class_id] = np.bincount(level[region & ~is_class], minlength=LEVELS)
        return result

    def __add__(self, other: ThresholdHistograms) -> ThresholdHistograms:
        return ThresholdHistograms(self.positive + other.positive, self.negative + other.negative)

    def as_array(self) -> np.ndarray:
        """(num_classes, 2, 256) int64 array, for storage."""
        return np.stack([self.positive, self.negative], axis=1).astype(np.int64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> ThresholdHistograms:
        """Inverse of `as_array`."""
        array = np.asarray(array, dtype=np.int64)
        return cls(array[:, 0].copy(), array[:, 1].copy())

    def counts_at(self, class_id: int, threshold: float) -> tuple[int, int, int]:
        """(tp, fp, fn) of class ``class_id`` when p >= ``threshold`` means positive."""
        level = level_for_threshold(threshold)
        positive, negative = self.positive[class_id], self.negative[class_id]
        tp = int(positive[level:].sum())
        return tp, int(negative[level:].sum()), int(positive[:level].sum())

    def sweep(self, class_id: int, thresholds: np.ndarray | None = None) -> list[dict[str, float]]:
        """Scores of one class at each threshold (default: 0.05, 0.10, ..., 0.95).

        Each item is ``{"threshold": t, "f1": ..., "precision": ..., "recall": ..., "iou": ...}``.
        """
        if thresholds is None:
            thresholds = np.round(np.arange(0.05, 0.951, 0.05), 2)
        return [
            {"threshold": float(t), **scores(*self.counts_at(class_id, float(t)))}
            for t in thresholds
        ]

    def best_threshold(self, class_id: int, metric: str = "f1") -> dict[str, float]:
        """The sweep item with the highest ``metric``, over all 255 non-zero levels."""
        thresholds = np.arange(1, LEVELS) / (LEVELS - 1)
        return max(self.sweep(class_id, thresholds), key=lambda item: item[metric])


#: The score that chooses a model's decision threshold and its best checkpoint. F1 and IoU rank
#: thresholds identically (IoU = F1 / (2 - F1)), so either gives the same choice.
CALIBRATION_METRIC = "f1"


def best_threshold_scores(
    histograms: ThresholdHistograms, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """The best threshold and the scores there, as one flat dict for logs.

    Every foreground class c gets ``<name>/best_threshold`` (the threshold on p(c), a uint8
    level / 255, with the highest F1, `CALIBRATION_METRIC`) and ``<name>/best_f1``,
    ``/best_precision``, ``/best_recall``, ``/best_iou`` there. ``best_f1``, ``best_precision``,
    ``best_recall``, ``best_iou`` are their mean over the foreground classes
    (`incasem.metrics.confusion.foreground_mean`), so a model is ranked on every class.
    ``best_threshold`` is class 1's with two classes only: it is a decision rule there (p >=
    threshold is foreground); with more classes prediction takes the argmax.
    """
    num_classes = histograms.positive.shape[0]
    names = class_names_for(num_classes, class_names)
    per_class = {
        names[c]: histograms.best_threshold(c, CALIBRATION_METRIC) for c in range(1, num_classes)
    }
    result = {
        f"{name}/best_{key}": float(v)
        for name, best in per_class.items()
        for key, v in best.items()
    }
    mean = foreground_mean(per_class)
    threshold = mean.pop("threshold", None)
    if num_classes == 2 and threshold is not None:
        mean["threshold"] = threshold
    return {**{f"best_{key}": v for key, v in mean.items()}, **result}
