"""The label rules shared by training, validation and prediction, in one place.

Data configs name one label dataset per organelle with its class id. A voxel that is non-zero in
a dataset gets that dataset's class id (where datasets overlap, the one listed later wins);
everything else (0, and negative values of signed labels) is background (0). A dataset voxel
equal to the entry's ``ignore_value`` (e.g. -1 in int64 labels, 255 in uint8 ones) means "not
annotated": it is neither organelle nor background, and it counts in no loss and no metric.
The training pipeline (`incasem.gunpowder.MergeLabels`, `incasem.gunpowder.ExcludeValue`) and
the metrics (`incasem.predict.truth.EntryTruth`) both call these functions, so that a score
means the same thing everywhere. Arrays are (z, y, x).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def not_annotated(labels: np.ndarray, ignore_value: int | None) -> np.ndarray | None:
    """Where ``labels`` holds ``ignore_value`` (bool, same shape); None without an ignore value."""
    if ignore_value is None:
        return None
    return labels == ignore_value


def merge_class_ids(labels: Iterable[tuple[np.ndarray, int]], shape: Sequence[int]) -> np.ndarray:
    """Class ids (uint8, ``shape``) from (label array, class id) pairs: voxels > 0 of each array
    get its class id, later pairs winning where arrays overlap; the rest is 0 (background)."""
    merged = np.zeros(tuple(shape), np.uint8)
    for data, class_id in labels:
        merged[data > 0] = class_id
    return merged
