"""Post-processing of a binary segmentation: hole filling and a minimum object size.

Both are whole-object operations (an object or a hole can span any number of blocks), so they
run on a whole volume in memory. Training chooses them on its validation prediction
(`choose_post_processing`, scored by F1 like the threshold) and stores them in the model card;
prediction applies them after its blockwise pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from incasem.metrics.confusion import ConfusionCounts

#: The largest volume (voxels) post-processing holds in memory (its labels take 4 bytes per
#: voxel); prediction leaves a larger segmentation as predicted and validation does not choose.
MAX_VOXELS = 2**29


#: Minimum object sizes (in voxels, converted to nm³ with the voxel size) validation tries.
CANDIDATE_MIN_VOXELS = (0, 8, 64, 512)


@dataclass(frozen=True)
class PostProcessing:
    """What is done to a binary segmentation after thresholding.

    Args:
        fill_holes (bool): fill background enclosed by foreground in 3D (default False).
        min_object_nm3 (float): remove 26-connected objects smaller than this volume in nm³;
            0 keeps every object (default 0).
    """

    fill_holes: bool = False
    min_object_nm3: float = 0.0

    @property
    def active(self) -> bool:
        """Whether it changes anything."""
        return self.fill_holes or self.min_object_nm3 > 0

    def describe(self) -> str:
        """For messages: ``fill holes, remove objects < 2,000,000 nm³``, or ``none``."""
        parts = ["fill holes"] if self.fill_holes else []
        if self.min_object_nm3 > 0:
            parts.append(f"remove objects < {self.min_object_nm3:,.0f} nm³")
        return ", ".join(parts) or "none"

    def apply(self, foreground: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
        """The cleaned (z, y, x) bool foreground; ``voxel_size`` in nm (z, y, x)."""
        result = foreground.astype(bool)
        if self.min_object_nm3 > 0:
            result = _remove_small(result, self.min_object_nm3 / float(np.prod(voxel_size)))
        if self.fill_holes:
            result = ndimage.binary_fill_holes(result)
        return result


#: Nothing after thresholding.
NO_POST_PROCESSING = PostProcessing()


def _remove_small(foreground: np.ndarray, min_voxels: float) -> np.ndarray:
    """``foreground`` without its 26-connected objects of fewer than ``min_voxels`` voxels."""
    labels, count = ndimage.label(foreground, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return foreground
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def candidates(voxel_size: Sequence[float]) -> list[PostProcessing]:
    """The grid validation tries: holes filled or not × `CANDIDATE_MIN_VOXELS` in nm³."""
    voxel = float(np.prod(voxel_size))
    return [
        PostProcessing(fill, size * voxel)
        for fill in (False, True)
        for size in CANDIDATE_MIN_VOXELS
    ]


def choose_post_processing(
    volumes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    voxel_size: Sequence[float],
) -> tuple[PostProcessing, float]:
    """The candidate with the best F1 summed over ``volumes``, and that F1.

    Args:
        volumes: per validation entry (foreground, truth, region): (z, y, x) bool arrays of the
            thresholded prediction, the true class-1 voxels and where voxels count.
        voxel_size: nm (z, y, x).

    Ties keep the earlier (simpler) candidate, so no post-processing wins unless it helps.
    """
    best, best_f1 = PostProcessing(), -1.0
    for candidate in candidates(voxel_size):
        counts = ConfusionCounts.zeros(2)
        for foreground, truth, region in volumes:
            cleaned = candidate.apply(foreground, voxel_size)
            counts += ConfusionCounts.from_arrays(cleaned, truth, region, num_classes=2)
        f1 = counts.class_scores(1)["f1"]
        if f1 > best_f1:
            best, best_f1 = candidate, f1
    return best, best_f1
