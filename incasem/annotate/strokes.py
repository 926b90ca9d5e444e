"""Simulated brush strokes drawn from a ground-truth label, for tests and benchmarks.

An annotator paints a few lines inside the organelle and a few outside it on some planes. We
imitate that per plane with the 2D skeletons (medial lines) of the organelle and of the
background, each eroded first so that no stroke touches a boundary, as a careful annotator's
would not. Skeletons are one voxel wide, so strokes on a handful of planes cover far less than
1 % of a volume; planes are evenly spaced along each axis, away from the faces.
"""

from __future__ import annotations

import numpy as np

from incasem.annotate.seeds import BACKGROUND, ORGANELLE


def stroke_planes(length: int, planes: int) -> list[int]:
    """Indices (voxels) of ``planes`` evenly spaced planes along an axis of ``length`` voxels,
    none on the first or last voxel."""
    return [int((i + 1) * length / (planes + 1)) for i in range(planes)]


def simulate_strokes(labels: np.ndarray, planes_per_axis: int, erosion: int = 3) -> np.ndarray:
    """Seeds (uint8 0 unmarked, 1 organelle, 2 background) drawn from a (z, y, x) label array.

    Args:
        labels: ground truth; nonzero = organelle.
        planes_per_axis: strokes are drawn on this many evenly spaced planes along each of z, y
            and x (see `stroke_planes`).
        erosion: voxels eroded from each class (in 2D) before taking its skeleton, so that strokes
            keep this distance from the organelle's boundary.
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    organelle = labels != 0
    seeds = np.zeros(labels.shape, np.uint8)
    for axis in range(3):
        for index in stroke_planes(labels.shape[axis], planes_per_axis):
            where = [slice(None)] * 3
            where[axis] = index
            plane = organelle[tuple(where)]
            inside = ndimage.binary_erosion(plane, iterations=erosion, border_value=0)
            outside = ndimage.binary_erosion(~plane, iterations=erosion, border_value=1)
            view = seeds[tuple(where)]
            view[skeletonize(outside)] = BACKGROUND
            view[skeletonize(inside)] = ORGANELLE
    return seeds
