"""Seeds (brush strokes) for graph-cut annotation, from a zarr dataset, 2D mask files or an array.

Seeds use one code everywhere: 0 = unmarked, 1 = organelle, 2 = background. Strokes cover well
under 1 % of the voxels, so they are kept sparse (`Seeds`: voxel coordinates relative to the ROI
plus their class) instead of as a dense volume: a sparse set is cheap to read once, to check, to
fit the intensity models on and to hand to worker processes, whatever the seeds came from.

2D mask files are named ``<axis>_<index>.<png|tif|tiff>``, e.g. ``z_0040.png`` or ``x_17.tif``:
``axis`` is ``z``, ``y`` or ``x`` and ``index`` the plane's voxel coordinate along that axis in
world units / voxel size (the same voxel grid as a data config's ``offset``; for a dataset at
offset 0 it is simply the index into the dataset). Each image is one whole plane of the raw
dataset (its shape is the raw dataset's extent in the other two axes, in z, y, x order), with
pixel values 0, 1 and 2 as above. This is what a viewer exports when one paints on full slices.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.roi import format_roi_voxels

UNMARKED = 0
ORGANELLE = 1
BACKGROUND = 2

_AXES = "zyx"
_PLANE_FILE = re.compile(r"^([zyx])_(\d+)\.(png|tif|tiff)$", re.IGNORECASE)
_SLAB = 64  # z planes read at a time from a seeds dataset


@dataclass(frozen=True)
class Seeds:
    """Sparse seeds inside an ROI.

    Attributes:
        coords: int32 array (N, 3) of voxel coordinates relative to the ROI start, z, y, x.
        values: uint8 array (N,) of classes, `ORGANELLE` or `BACKGROUND`.
        shape: ROI shape in voxels, z, y, x.
    """

    coords: np.ndarray
    values: np.ndarray
    shape: tuple[int, int, int]

    def counts(self) -> tuple[int, int]:
        """Number of organelle and of background seed voxels."""
        return int(np.count_nonzero(self.values == ORGANELLE)), int(
            np.count_nonzero(self.values == BACKGROUND)
        )

    def dense(self, offset: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """Seeds of the box ``offset``/``shape`` (voxels relative to the ROI start, z, y, x) as a
        dense uint8 array of that shape; parts outside the ROI stay unmarked."""
        offset, shape = np.asarray(offset), np.asarray(shape)
        inside = np.all((self.coords >= offset) & (self.coords < offset + shape), axis=1)
        out = np.zeros(tuple(int(s) for s in shape), np.uint8)
        local = self.coords[inside] - offset
        out[local[:, 0], local[:, 1], local[:, 2]] = self.values[inside]
        return out


def save_seeds(seeds: Seeds, path: str | os.PathLike) -> str:
    """Write ``seeds`` to ``path`` (``.npz``: arrays only, read by `load_seeds` without
    unpickling anything), for the graph cut's worker processes; returns the path."""
    np.savez(path, coords=seeds.coords, values=seeds.values, shape=np.array(seeds.shape))
    return str(path)


def load_seeds(path: str | os.PathLike) -> Seeds:
    """The seeds `save_seeds` wrote to ``path``."""
    with np.load(path, allow_pickle=False) as data:
        shape = tuple(int(s) for s in data["shape"])
        return Seeds(data["coords"], data["values"], shape)


def _from_dense(data: np.ndarray, start: Sequence[int], source: str) -> tuple[np.ndarray, ...]:
    bad = (data != UNMARKED) & (data != ORGANELLE) & (data != BACKGROUND)
    if bad.any():
        value = data[bad].flat[0]
        raise IncasemError(
            f"{source}: seed value {value} is not 0 (unmarked), 1 (organelle) or 2 (background)"
        )
    coords = np.argwhere(data != UNMARKED).astype(np.int32)
    values = data[tuple(coords.T)].astype(np.uint8)
    return coords + np.asarray(start, np.int32), values


def seeds_from_array(data: np.ndarray, source: str = "seed array") -> Seeds:
    """Seeds from a dense (z, y, x) array covering exactly the ROI (e.g. a napari Labels layer's
    ``data``); ``source`` names it in errors."""
    if data.ndim != 3:
        raise IncasemError(f"{source}: seeds must be a 3D (z, y, x) array, not shape {data.shape}")
    coords, values = _from_dense(np.asarray(data), (0, 0, 0), source)
    return Seeds(coords, values, tuple(int(s) for s in data.shape))


def seeds_from_dataset(
    container: str | os.PathLike, dataset: str, roi: Roi, voxel_size: Sequence[int]
) -> Seeds:
    """Read the seeds inside ``roi`` (world nm, z, y, x) from a uint seeds dataset.

    Raises `IncasemError` if the dataset's voxel size differs from ``voxel_size`` (nm, the raw
    data's), if it does not overlap the ROI, or if it holds values other than 0, 1, 2.
    """
    source = f"{container}/{dataset}"
    array = open_array(container, dataset)
    voxel_size = Coordinate(voxel_size)
    if array.voxel_size != voxel_size:
        raise IncasemError(
            f"{source}: voxel size {list(array.voxel_size)} nm differs from the raw data's "
            f"{list(voxel_size)} nm"
        )
    if len(array.shape) != 3:
        raise IncasemError(f"{source}: seeds must be a 3D dataset, not shape {array.shape}")
    shape = tuple(int(s) for s in roi.shape / voxel_size)
    inside = roi.intersect(array.roi)
    if inside.empty:
        raise IncasemError(
            f"{source}: the seeds dataset does not overlap the ROI "
            f"{format_roi_voxels(roi.offset / voxel_size, shape)} (voxels)"
        )
    coords, values = [], []
    z_step = _SLAB * voxel_size[0]
    for z in range(inside.begin[0], inside.end[0], z_step):
        slab = Roi(
            Coordinate(z, *inside.begin[1:]),
            Coordinate(min(z_step, inside.end[0] - z), *inside.shape[1:]),
        )
        start = (slab.offset - roi.offset) / voxel_size
        c, v = _from_dense(np.asarray(array[slab]), start, source)
        coords.append(c)
        values.append(v)
    return Seeds(np.concatenate(coords), np.concatenate(values), shape)


def plane_file_name(axis: str, index: int, suffix: str = "png") -> str:
    """The file name of a 2D seed mask: ``<axis>_<index:04d>.<suffix>`` (index in voxels)."""
    return f"{axis}_{index:04d}.{suffix}"


def seeds_from_planes(
    folder: str | os.PathLike,
    roi: Roi,
    voxel_size: Sequence[int],
    dataset_roi: Roi,
) -> Seeds:
    """Read 2D seed masks ``<axis>_<index>.<png|tif|tiff>`` from ``folder`` (see module doc).

    Args:
        folder: the folder of mask files; other files are ignored.
        roi: the annotation ROI, world nm, z, y, x.
        voxel_size: nm, z, y, x.
        dataset_roi: the raw dataset's ROI (nm): each image covers its full plane.

    Raises `IncasemError` naming the file for a plane outside the ROI, an image of the wrong
    shape or values other than 0, 1, 2, and if the folder has no mask files.
    """
    import imageio.v3 as iio

    folder = Path(folder)
    voxel_size = Coordinate(voxel_size)
    roi_start = roi.offset / voxel_size
    roi_shape = roi.shape / voxel_size
    data_start = dataset_roi.offset / voxel_size
    data_shape = dataset_roi.shape / voxel_size
    files = sorted(p for p in folder.iterdir() if _PLANE_FILE.match(p.name))
    if not files:
        raise IncasemError(
            f"{folder}: no seed masks named <axis>_<index>.png/.tif (e.g. z_0040.png)"
        )
    coords, values = [], []
    for path in files:
        match = _PLANE_FILE.match(path.name)
        axis = _AXES.index(match.group(1).lower())
        index = int(match.group(2))
        if not roi_start[axis] <= index < roi_start[axis] + roi_shape[axis]:
            raise IncasemError(
                f"{path}: plane {match.group(1)} = {index} lies outside the ROI "
                f"{format_roi_voxels(roi_start, roi_shape)} (voxels)"
            )
        image = np.asarray(iio.imread(path))
        others = [a for a in range(3) if a != axis]
        expected = tuple(data_shape[a] for a in others)
        if image.shape != expected:
            raise IncasemError(
                f"{path}: image shape {list(image.shape)} differs from the raw dataset's "
                f"{match.group(1)} plane {list(expected)} (pixels)"
            )
        lo = [roi_start[a] - data_start[a] for a in others]
        crop = image[lo[0] : lo[0] + roi_shape[others[0]], lo[1] : lo[1] + roi_shape[others[1]]]
        planar, v = _from_dense(crop, (0, 0), str(path))
        c = np.zeros((len(v), 3), np.int32)
        c[:, axis] = index - roi_start[axis]
        c[:, others[0]], c[:, others[1]] = planar[:, 0], planar[:, 1]
        coords.append(c)
        values.append(v)
    return Seeds(np.concatenate(coords), np.concatenate(values), tuple(int(s) for s in roi_shape))


def check_seeds(seeds: Seeds, source: str, roi_text: str) -> None:
    """Raise a one-line `IncasemError` unless ``seeds`` hold both organelle and background voxels
    inside the ROI; ``source`` and ``roi_text`` name the seeds and the ROI in the message."""
    organelle, background = seeds.counts()
    if organelle == 0 and background == 0:
        raise IncasemError(f"{source}: no seeds (values 1 or 2) inside the ROI {roi_text}")
    if organelle == 0 or background == 0:
        missing = "organelle (1)" if organelle == 0 else "background (2)"
        raise IncasemError(
            f"{source}: seeds inside the ROI {roi_text} have only one class; "
            f"mark some {missing} voxels too"
        )
