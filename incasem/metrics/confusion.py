"""Confusion counts per class, accumulated block by block.

A whole cell does not fit in memory, and the original assembled the entire ROI to compute its
scores. Counts (true positives, false positives, false negatives) are additive, so each block
contributes its counts and the scores are computed once at the end, from the sums: the result is
identical to evaluating the whole volume at once, whatever the block layout.

Classes are one-vs-rest: for class ``c`` a voxel is positive in the truth if its class id is
``c`` and predicted positive if the prediction says ``c``. Only voxels inside the evaluation
region (mask, metric masks, annotated) count. Arrays are (z, y, x) voxels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _ratio(numerator: float, denominator: float) -> float:
    # Nothing to find and nothing found is a perfect score (the usual convention for
    # segmentation), so that an entry without a class does not turn its scores into NaN.
    return 1.0 if denominator == 0 else float(numerator) / float(denominator)


def scores(tp: float, fp: float, fn: float) -> dict[str, float]:
    """F1 (= Dice), precision, recall and IoU (= Jaccard) from voxel counts of one class.

    An empty denominator gives 1.0: a class absent from both truth and prediction is a perfect
    score, not NaN.
    """
    return {
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "iou": _ratio(tp, tp + fp + fn),
    }


@dataclass
class ConfusionCounts:
    """Voxel counts per class (index = class id, 0 is background).

    Attributes:
        tp: voxels of class c predicted as c, shape (num_classes,).
        fp: voxels of another class predicted as c.
        fn: voxels of class c predicted as another class.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> ConfusionCounts:
        """All counts zero for ``num_classes`` classes (background included)."""
        return cls(*(np.zeros(num_classes, np.int64) for _ in range(3)))

    @classmethod
    def from_arrays(
        cls,
        prediction: np.ndarray,
        truth: np.ndarray,
        region: np.ndarray | None,
        num_classes: int,
    ) -> ConfusionCounts:
        """Counts of one block.

        Args:
            prediction: predicted class id per voxel, (z, y, x).
            truth: true class id per voxel, same shape.
            region: boolean (z, y, x), True where voxels count; None counts every voxel.
            num_classes: number of classes, background included; ids must be below it.
        """
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} differ")
        pred = prediction.astype(np.int64, copy=False)
        true = truth.astype(np.int64, copy=False)
        if region is not None:
            pred, true = pred[region], true[region]
        else:
            pred, true = pred.ravel(), true.ravel()
        if pred.size and (
            max(int(pred.max()), int(true.max())) >= num_classes or min(pred.min(), true.min()) < 0
        ):
            raise ValueError(f"class ids must lie in [0, {num_classes})")
        confusion = np.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
        tp = np.diag(confusion).copy()
        return cls(tp=tp, fp=confusion.sum(axis=0) - tp, fn=confusion.sum(axis=1) - tp)

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.tp)

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_array(self) -> np.ndarray:
        """(num_classes, 3) int64 array of tp, fp, fn, for storage."""
        return np.stack([self.tp, self.fp, self.fn], axis=1).astype(np.int64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> ConfusionCounts:
        """Inverse of `as_array`."""
        array = np.asarray(array, dtype=np.int64)
        return cls(array[:, 0].copy(), array[:, 1].copy(), array[:, 2].copy())

    def class_scores(self, class_id: int) -> dict[str, float]:
        """F1, precision, recall and IoU of one class (see `scores`)."""
        return scores(int(self.tp[class_id]), int(self.fp[class_id]), int(self.fn[class_id]))


def class_names_for(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """Class names, background first; ``class_<c>`` where none are given."""
    if class_names is None:
        return ["background"] + [f"class_{c}" for c in range(1, num_classes)]
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes: {names}")
    return names


def foreground_mean(per_class: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The multi-class rule: each score averaged over the foreground classes (an unweighted,
    "macro" mean), so that every class counts, whatever its voxel share; with one foreground
    class, its own scores."""
    keys = next(iter(per_class.values())).keys() if per_class else ()
    return {key: float(np.mean([s[key] for s in per_class.values()])) for key in keys}


def flat_scores(
    counts: ConfusionCounts, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """Scores as one flat dict, for logs and experiment trackers.

    ``<class name>/f1``, ``/precision``, ``/recall``, ``/iou`` hold every foreground class; the
    keys ``f1``, ``precision``, ``recall``, ``iou`` their mean over the foreground classes
    (`foreground_mean`; with two classes, class 1's). Background is not reported.
    """
    names = class_names_for(counts.num_classes, class_names)
    per_class = {names[c]: counts.class_scores(c) for c in range(1, counts.num_classes)}
    result = {f"{name}/{key}": v for name, s in per_class.items() for key, v in s.items()}
    return {**foreground_mean(per_class), **result}


def format_scores(scores_by_key: Mapping[str, float]) -> str:
    """``f1 0.912, precision 0.880, ...`` for one line of a log."""
    return ", ".join(f"{key} {value:.4f}" for key, value in scores_by_key.items())
