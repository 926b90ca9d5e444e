"""Grey-value histograms of 8-bit raw: what a model was trained on, and how far new data is.

A network learns the intensity distribution of its training raw. Given raw with another one
(plain raw to a model trained on CLAHE-equalised raw, another detector's contrast) it still
predicts, and the result is silently worse. The model card keeps the training raw's histogram;
prediction compares the input's with it and warns when they are far apart.

Histograms are estimated from a few cubes spread over a ROI, so that the check costs a few
chunk reads on a volume of any size.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy.stats import wasserstein_distance

from incasem.io.arrays import read_checked

#: Grey levels of 8-bit raw.
LEVELS = 256

#: Earth mover's distance, in grey levels, above which prediction warns that its raw does not
#: look like the training raw. CLAHE on FIB-SEM raw moves the distribution by 20-40 levels; two
#: regions of one volume differ by well under 10.
WARN_DISTANCE = 15.0


def sample_histogram(
    array: Array, roi: Roi | None = None, cubes_per_axis: int = 2, edge_voxels: int = 64
) -> np.ndarray:
    """Grey-value counts (256 levels) of uint8 ``array`` in ``cubes_per_axis``³ cubes of
    ``edge_voxels`` (clipped to the ROI) spread evenly over ``roi`` (nm, z, y, x; default the
    array's).

    Raises `IncasemError` (from `read_checked`) naming the dataset and chunk of a damaged read.
    """
    roi = array.roi if roi is None else roi
    voxel_size = Coordinate(array.voxel_size)
    shape = roi.shape / voxel_size
    edge = Coordinate(min(edge_voxels, s) for s in shape)
    starts_per_axis = [
        sorted({round(i * (s - e) / max(cubes_per_axis - 1, 1)) for i in range(cubes_per_axis)})
        for s, e in zip(shape, edge, strict=True)
    ]
    counts = np.zeros(LEVELS, np.int64)
    for start in itertools.product(*starts_per_axis):
        cube = Roi(roi.offset + Coordinate(start) * voxel_size, edge * voxel_size)
        counts += np.bincount(read_checked(array, cube).ravel(), minlength=LEVELS)[:LEVELS]
    return counts


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's (Wasserstein-1) distance between two grey-value histograms, in grey levels:
    how far on average a voxel's intensity has to move to turn one distribution into the other."""
    levels = np.arange(LEVELS)
    if not np.asarray(a).sum() or not np.asarray(b).sum():
        return math.nan
    return float(wasserstein_distance(levels, levels, np.asarray(a), np.asarray(b)))


def percentiles(counts: np.ndarray, q: tuple[float, ...] = (1, 50, 99)) -> list[int]:
    """Grey levels at the percentiles ``q`` of a histogram, for messages."""
    cumulative = np.cumsum(counts) / max(int(np.sum(counts)), 1)
    return [int(np.searchsorted(cumulative, p / 100)) for p in q]
