"""Which blocks of a prediction to proofread first: uncertainty where the organelle is.

An annotator's minutes are best spent where the model is unsure about the organelle it is
asked for. Per voxel, the uncertainty is the binary entropy ``H(p)`` (bits) of the foreground
probability ``p`` of the prediction; it is weighted by ``p`` itself, so that a block of
ambiguous resin or cytoplasm (``p`` about 0.2) ranks below a block where the model half-sees
an organelle (``H(p) * p`` peaks near ``p = 0.7``), and confident voxels of either class count
nothing. A block's score is the mean of ``H(p) * p`` over its voxels (voxels outside the
prediction count as confident background). The uncertainty is computed from the stored
probabilities: prediction writes nothing extra for it.

Blocks tile the probability dataset from its first voxel; sizes are voxels and offsets world nm
/ voxel size (the voxel grid of a data config's ``offset``), axis order z, y, x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.io.roi import format_roi_voxels
from incasem.postprocess.sources import (
    DatasetRef,
    above_threshold,
    as_probability,
    check_probability_dtype,
    default_threshold,
    read_filled,
    spatial_array,
)


@dataclass(frozen=True)
class RankedBlock:
    """One block of the ranking.

    Attributes:
        rank: 1 for the block to proofread first.
        offset: first voxel (z, y, x; world nm / voxel size).
        shape: voxels (z, y, x).
        score: mean of ``H(p) * p`` over the block, bits.
        foreground: fraction of the block's voxels at or above the decision threshold.
    """

    rank: int
    offset: tuple[int, int, int]
    shape: tuple[int, int, int]
    score: float
    foreground: float

    def roi_text(self) -> str:
        """``[z0:z1, y0:y1, x0:x1]`` in voxels."""
        return format_roi_voxels(self.offset, self.shape)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def uncertainty_score(p: np.ndarray) -> float:
    """Mean of ``H(p) * p`` (bits) over float probabilities ``p`` of any shape."""
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.mean(entropy * p))


def _block_rois(roi: Roi, voxel_size: Coordinate, block_shape: Coordinate) -> list[Roi]:
    step = block_shape * voxel_size
    shape = roi.shape / voxel_size
    counts = [-(-int(n) // int(b)) for n, b in zip(shape, block_shape, strict=True)]
    return [
        Roi(roi.offset + Coordinate(i, j, k) * step, step)
        for i in range(counts[0])
        for j in range(counts[1])
        for k in range(counts[2])
    ]


def rank_blocks(
    probabilities: DatasetRef,
    block_shape: Sequence[int] = (64, 64, 64),
    top: int | None = 10,
    threshold: float | None = None,
    progress: bool = True,
) -> tuple[list[RankedBlock], float]:
    """Score every block of a foreground probability map; the ``top`` best first.

    Args:
        probabilities: the foreground probabilities (uint8 levels or floats), e.g. a
            prediction's ``class_1`` dataset.
        block_shape: voxels (z, y, x).
        top: how many blocks to return (None: all).
        threshold: decision threshold for the ``foreground`` column; default the one the
            prediction recorded, else 0.5.
        progress: show a progress bar (one step per block).

    Returns:
        The ranked blocks and the threshold used.
    """
    array = spatial_array(probabilities)
    check_probability_dtype(probabilities, array)
    block_shape = Coordinate(int(b) for b in block_shape)
    if block_shape.dims != 3 or min(block_shape) < 1:
        raise IncasemError(f"--block-size {list(block_shape)}: need three sizes >= 1 (voxels)")
    if threshold is None:
        threshold, _ = default_threshold(probabilities, required=True)
    voxel_size = array.voxel_size
    rois = _block_rois(array.roi, voxel_size, block_shape)
    if progress:
        from tqdm import tqdm

        rois = tqdm(rois, desc="proofread", unit="block")
    scored = []
    for roi in rois:
        data = read_filled(probabilities, roi)
        clipped = roi.intersect(array.roi)
        scored.append(
            (
                uncertainty_score(as_probability(data)),
                float(above_threshold(data, threshold).mean()),
                tuple(int(v) for v in roi.offset / voxel_size),
                tuple(int(v) for v in clipped.shape / voxel_size),
            )
        )
    scored.sort(key=lambda s: (-s[0], s[2]))
    chosen = scored if top is None else scored[:top]
    blocks = [
        RankedBlock(i + 1, offset, shape, score, foreground)
        for i, (score, foreground, offset, shape) in enumerate(chosen)
    ]
    return blocks, float(threshold)
