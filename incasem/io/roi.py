"""Regions of interest in voxels and in nm, converted explicitly.

Data configs speak voxels (what a user counts in a viewer), gunpowder and daisy speak nm (world
units, so that datasets of different voxel sizes line up). Every conversion goes through these
helpers so that no caller multiplies by the wrong voxel size. Axis order is z, y, x throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError


def roi_from_voxels(
    offset_voxels: Sequence[int], shape_voxels: Sequence[int], voxel_size: Sequence[int]
) -> Roi:
    """The world ROI (nm) of a box given by its offset and shape in voxels (z, y, x)."""
    voxel_size = Coordinate(voxel_size)
    return Roi(Coordinate(offset_voxels) * voxel_size, Coordinate(shape_voxels) * voxel_size)


def roi_to_voxels(roi: Roi, voxel_size: Sequence[int]) -> tuple[Coordinate, Coordinate]:
    """Offset and shape in voxels (z, y, x) of a world ROI (nm) on the grid of ``voxel_size``.

    Raises `IncasemError` if the ROI does not lie on that voxel grid.
    """
    voxel_size = Coordinate(voxel_size)
    if not roi.offset.is_multiple_of(voxel_size) or not roi.shape.is_multiple_of(voxel_size):
        raise IncasemError(
            f"ROI {format_roi_nm(roi)} is not aligned to the voxel size {list(voxel_size)} nm"
        )
    return roi.offset / voxel_size, roi.shape / voxel_size


def format_roi_voxels(offset_voxels: Sequence[int], shape_voxels: Sequence[int]) -> str:
    """``[z0:z1, y0:y1, x0:x1]`` for a box in voxels, as users read it in messages."""
    return (
        "["
        + ", ".join(f"{o}:{o + s}" for o, s in zip(offset_voxels, shape_voxels, strict=True))
        + "]"
    )


def format_roi_nm(roi: Roi) -> str:
    """``[z0:z1, y0:y1, x0:x1] nm`` for a world ROI."""
    return format_roi_voxels(roi.offset, roi.shape) + " nm"


def roi_inside(roi_voxels: Sequence[int], voxel_size: Sequence[int], bounds: Roi, what: str) -> Roi:
    """The world ROI (nm) of ``roi_voxels`` (offset z, y, x then shape z, y, x, in voxels of
    ``voxel_size``), checked to be a non-empty box inside ``bounds`` (nm).

    Raises `IncasemError` naming ``what`` (e.g. ``--roi``) and both boxes in voxels otherwise.
    """
    if len(roi_voxels) != 6 or any(int(s) <= 0 for s in roi_voxels[3:]):
        raise IncasemError(
            f"{what} {list(roi_voxels)}: need offset z y x and a positive shape z y x (voxels)"
        )
    roi = roi_from_voxels(roi_voxels[:3], roi_voxels[3:], voxel_size)
    if not bounds.contains(roi):
        offset, shape = roi_to_voxels(bounds, voxel_size)
        raise IncasemError(
            f"{what} {format_roi_voxels(roi_voxels[:3], roi_voxels[3:])} (voxels) ends outside "
            f"{format_roi_voxels(offset, shape)} (voxels)"
        )
    return roi
