"""The annotated region: its ROI inside the raw, its mask and its data-config entry.

Shared by the graph cut (`incasem.annotate.run`) and the painter (`incasem.annotate.paint`),
which both annotate a ROI of a raw dataset and hand it on as a training entry.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.blockwise import BLOCK_EDGE
from incasem.errors import IncasemError
from incasem.io.roi import format_roi_voxels, roi_from_voxels


def resolve_roi(raw_array: Any, source: str, offset: Any, shape: Any) -> Roi:
    """The ROI (nm) of ``offset``/``shape`` in voxels (z, y, x) inside ``raw_array``, or the
    whole array when both are None; `IncasemError` naming ``source`` otherwise."""
    voxel_size = raw_array.voxel_size
    if offset is None and shape is None:
        return raw_array.roi
    if offset is None or shape is None:
        raise IncasemError("give both the ROI offset and shape (voxels), or neither")
    if any(int(s) <= 0 for s in shape):
        raise IncasemError(f"ROI shape {list(shape)} voxels must be positive")
    roi = roi_from_voxels(offset, shape, voxel_size)
    if not raw_array.roi.contains(roi):
        extent = format_roi_voxels(
            raw_array.roi.offset / voxel_size, raw_array.roi.shape / voxel_size
        )
        raise IncasemError(
            f"ROI {format_roi_voxels(offset, shape)} (voxels) is not inside {source} {extent}"
        )
    return roi


def fill_roi(array: Any, roi: Roi, value: int = 1) -> None:
    """Set ``array`` to ``value`` over ``roi`` (nm), in z slabs (bounded memory)."""
    voxel_size = array.voxel_size
    shape = roi.shape / voxel_size
    for z in range(0, int(shape[0]), BLOCK_EDGE):
        depth = min(BLOCK_EDGE, int(shape[0]) - z)
        slab = Roi(
            roi.offset + Coordinate(z, 0, 0) * voxel_size,
            Coordinate(depth, *shape[1:]) * voxel_size,
        )
        array[slab] = np.full((depth, *shape[1:]), value, np.uint8)


def annotation_entry(
    container: str | os.PathLike, raw_array: Any, roi: Roi, raw: str, labels: str, mask: str
) -> dict[str, dict[str, Any]]:
    """The data-config entry (name -> fields) of labels annotated over ``roi`` (nm); the name
    is the label dataset's last part."""
    voxel_size = raw_array.voxel_size
    return {
        labels.rsplit("/", 1)[-1]: {
            "file": str(container),
            "offset": [int(v) for v in roi.offset / voxel_size],
            "shape": [int(v) for v in roi.shape / voxel_size],
            "voxel_size": [int(v) for v in voxel_size],
            "raw": raw,
            "labels": {labels: 1},
            "mask": mask,
        }
    }
