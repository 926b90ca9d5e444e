"""Naming, opening and reading the datasets that post-processing combines.

Post-processing mixes datasets from different places: a prediction's probabilities (uint8 levels
``round(p * 255)`` or float32 p, one class per dataset or a channel axis first), label datasets,
masks. Three rules keep that safe, so they live here once:

* **One way to name a dataset.** ``DATASET`` inside the command's container, or
  ``path/to/other.zarr/DATASET`` anywhere, with ``@C`` appended to pick channel ``C`` of a
  channel-first dataset.
* **Thresholds are probabilities** in [0, 1] whatever the dtype; uint8 levels are compared with
  the smallest level ``>= t * 255`` (`incasem.metrics.level_for_threshold`), so a uint8 and a
  float32 copy of one prediction give the same binary result.
* **Grids are checked before any work.** Datasets combined voxel by voxel must share the voxel
  size and cover the region; a mismatch is one `IncasemError` naming both datasets.

Blocks read through `BinarySource`, a frozen dataclass of paths (picklable for daisy's worker
processes) that opens its arrays in the worker. Reads outside a dataset are filled (zeros,
``False``), which is what context at the volume's faces needs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from incasem.errors import IncasemError
from incasem.io import format_roi_nm, open_array
from incasem.io.arrays import check_complete
from incasem.metrics import level_for_threshold

_CONTAINER = re.compile(r"^(.*?\.(?:zarr|n5))(?:/+(.*))?$")
_CHANNEL = re.compile(r"^(.*)@(\d+)$")


@dataclass(frozen=True)
class DatasetRef:
    """A dataset inside a container, optionally one channel of a channel-first dataset.

    Attributes:
        container: path of the ``.zarr`` container.
        dataset: path of the array inside it.
        channel: index along the leading channel axis, or None for a 3D dataset.
    """

    container: str
    dataset: str
    channel: int | None = None

    def __str__(self) -> str:
        suffix = "" if self.channel is None else f"@{self.channel}"
        return f"{self.container}/{self.dataset}{suffix}"

    def open(self) -> Array:
        """The array (voxel size and offset in nm, z, y, x); raises `IncasemError` if missing."""
        return open_array(self.container, self.dataset)

    def zarr(self) -> zarr.Array:
        """The stored zarr array (read only), for fast slicing and its attributes."""
        return zarr.open(str(self.container), mode="r", path=self.dataset)


def parse_dataset(text: str, container: str | os.PathLike | None = None) -> DatasetRef:
    """A `DatasetRef` from ``DATASET[@C]`` (inside ``container``) or ``C.zarr/DATASET[@C]``."""
    channel = None
    match = _CHANNEL.match(text)
    if match:
        text, channel = match.group(1), int(match.group(2))
    found = _CONTAINER.match(text)
    if found and found.group(2):
        return DatasetRef(found.group(1), found.group(2).strip("/"), channel)
    if found or container is None:
        raise IncasemError(
            f"'{text}': name a dataset as CONTAINER.zarr/DATASET (or DATASET inside the "
            "command's container)"
        )
    return DatasetRef(str(container), text.strip("/"), channel)


def spatial_array(ref: DatasetRef) -> Array:
    """Open ``ref`` and check that it is a 3D volume, or a channel of a channel-first one, and
    a finished output (`incasem.io.arrays.check_complete`)."""
    array = ref.open()
    check_complete(ref.container, ref.dataset)
    stored = ref.zarr().shape
    ndim = len(stored)
    if array.voxel_size.dims != 3 or ndim not in (3, 4):
        raise IncasemError(f"{ref}: need a 3D (z, y, x) dataset, not shape {stored}")
    if ndim == 3 and ref.channel not in (None, 0):
        raise IncasemError(f"{ref}: has no channel axis; drop the @{ref.channel}")
    if ndim == 4:
        channels = stored[0]
        if ref.channel is None and channels != 1:
            raise IncasemError(
                f"{ref}: has {channels} channels; pick one with DATASET@C (C in 0..{channels - 1})"
            )
        if ref.channel is not None and not 0 <= ref.channel < channels:
            raise IncasemError(f"{ref}: channel {ref.channel} out of range (0..{channels - 1})")
    return array


def check_probability_dtype(ref: DatasetRef, array: Array) -> None:
    """Raise unless ``array`` holds probabilities: uint8 levels (p * 255) or floats."""
    dtype = np.dtype(array.dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise IncasemError(
            f"{ref}: probabilities must be uint8 (p * 255) or float, not {dtype} "
            "(pass a label dataset without --threshold)"
        )


def check_threshold(threshold: float, what: str = "--threshold") -> None:
    """Raise unless ``threshold`` is a probability in [0, 1]."""
    if not 0.0 <= threshold <= 1.0:
        raise IncasemError(f"{what} {threshold} must be a probability in [0, 1]")


def check_covers(
    reference: DatasetRef, roi: Roi, voxel_size: Coordinate, other: DatasetRef
) -> Array:
    """Open ``other`` and raise unless it has ``voxel_size`` and contains ``roi`` (nm).

    ``reference`` names the dataset that defines the grid, for the message.
    """
    array = spatial_array(other)
    if array.voxel_size != voxel_size:
        raise IncasemError(
            f"{other}: voxel size {list(array.voxel_size)} nm differs from {reference}'s "
            f"{list(voxel_size)} nm"
        )
    if not array.roi.contains(roi):
        raise IncasemError(
            f"{other}: covers {format_roi_nm(array.roi)}, which does not contain {reference}'s "
            f"{format_roi_nm(roi)}"
        )
    return array


def read_filled(ref: DatasetRef, roi: Roi, fill: float = 0) -> np.ndarray:
    """Voxels of ``roi`` (nm, on the dataset's grid) as (z, y, x); outside the data is ``fill``.

    Reads the zarr array directly (one slice, only the chosen channel).
    """
    array = ref.open()
    stored = ref.zarr()
    voxel_size = array.voxel_size
    shape = tuple(roi.shape / voxel_size)
    inside = roi.intersect(array.roi)
    if inside.empty:
        return np.full(shape, fill, dtype=stored.dtype)
    begin = (inside.offset - array.roi.offset) / voxel_size
    end = begin + inside.shape / voxel_size
    spatial = tuple(slice(b, e) for b, e in zip(begin, end, strict=True))
    index = spatial if stored.ndim == 3 else (ref.channel or 0, *spatial)
    data = np.asarray(stored[index])
    if inside == roi:
        return data
    out = np.full(shape, fill, dtype=data.dtype)
    at = (inside.offset - roi.offset) / voxel_size
    out[tuple(slice(a, a + s) for a, s in zip(at, data.shape, strict=True))] = data
    return out


def above_threshold(data: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``p >= threshold`` for uint8 levels (p * 255) or float probabilities."""
    if data.dtype == np.uint8:
        return data >= level_for_threshold(threshold)
    return data >= threshold


def as_probability(data: np.ndarray) -> np.ndarray:
    """float32 probabilities from uint8 levels (divided by 255) or floats."""
    if data.dtype == np.uint8:
        return data.astype(np.float32) / np.float32(255)
    return data.astype(np.float32, copy=False)


def _inside(area: Roi, roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """Boolean (z, y, x) of ``roi``: True on the voxels that lie inside ``area`` (nm)."""
    result = np.zeros(tuple(roi.shape / voxel_size), bool)
    inside = area.intersect(roi)
    if not inside.empty:
        begin = (inside.offset - roi.offset) / voxel_size
        end = begin + inside.shape / voxel_size
        result[tuple(slice(b, e) for b, e in zip(begin, end, strict=True))] = True
    return result


def is_probability_map(ref: DatasetRef) -> bool:
    """Whether a dataset says it holds probabilities (incasem predictions do, in ``value``)."""
    value = ref.zarr().attrs.get("value", "")
    return isinstance(value, str) and value.startswith("probability")


def recorded_threshold(ref: DatasetRef) -> float | None:
    """The decision threshold a prediction recorded on its probabilities (the model's
    calibrated threshold, or the one the prediction was given), or None."""
    value = ref.zarr().attrs.get("threshold")
    return float(value) if isinstance(value, int | float) else None


def default_threshold(ref: DatasetRef, required: bool) -> tuple[float | None, str]:
    """The threshold to use for ``ref`` when the user gave none, and a phrase saying why.

    A probability map written by ``predict`` carries the threshold its prediction used (see
    `incasem.predict.output`); that is the default. Without one, ``required`` (``segment``)
    falls back to 0.5; otherwise (``instances``, which also reads labels) a dataset that says
    it holds probabilities is refused, since treating every p > 0 as an object is never meant,
    and any other dataset is read as labels (None).
    """
    recorded = recorded_threshold(ref)
    if recorded is not None:
        return recorded, f"recorded on {ref} by its prediction"
    if required:
        return 0.5, f"the default; {ref} records none"
    if is_probability_map(ref):
        raise IncasemError(
            f"{ref} holds probabilities but records no threshold: pass --threshold (e.g. "
            "--threshold 0.5), or --class-id for a label dataset"
        )
    return None, "labels"


@dataclass(frozen=True)
class BinarySource:
    """A boolean volume defined by a dataset, read block by block in workers.

    Attributes:
        data: probabilities (with ``threshold``) or labels (without).
        threshold: probability in [0, 1]; voxels with p >= threshold are True. None: ``data``
            holds labels.
        class_id: with labels, True where the label equals it; None: True where nonzero.
        masks: datasets whose zero voxels force False (cell mask, metric masks).
        region: (offset, shape) in nm, z, y, x: only this part of ``data``; None: all of it.
    """

    data: DatasetRef
    threshold: float | None = None
    class_id: int | None = None
    masks: tuple[DatasetRef, ...] = ()
    region: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    def check(self) -> tuple[Roi, Coordinate]:
        """Validate every dataset (in the driver, before any work); returns the ROI (nm) that
        the source covers and its voxel size."""
        array = spatial_array(self.data)
        roi = array.roi
        if self.region is not None:
            roi = Roi(*self.region)
            if not array.roi.contains(roi):
                raise IncasemError(
                    f"{self.data}: covers {format_roi_nm(array.roi)}, which does not contain "
                    f"{format_roi_nm(roi)}"
                )
        if self.threshold is not None:
            check_probability_dtype(self.data, array)
            check_threshold(self.threshold)
        for mask in self.masks:
            check_covers(self.data, roi, array.voxel_size, mask)
        return roi, array.voxel_size

    def read(self, roi: Roi) -> np.ndarray:
        """Boolean (z, y, x) of ``roi`` (nm); False outside the data."""
        array = self.data.open()
        data = read_filled(self.data, roi)
        if self.threshold is not None:
            result = above_threshold(data, self.threshold)
        elif self.class_id is not None:
            result = data == self.class_id
        else:
            result = data != 0
        if not array.roi.contains(roi):
            result &= _inside(array.roi, roi, array.voxel_size)
        for mask in self.masks:
            result &= read_filled(mask, roi) != 0
        return result

    def describe(self) -> dict[str, object]:
        """Provenance for output attributes."""
        return {
            "data": str(self.data),
            "threshold": self.threshold,
            "class_id": self.class_id,
            "masks": [str(m) for m in self.masks],
        }


def region_mask(masks: tuple[DatasetRef, ...], roi: Roi) -> np.ndarray | None:
    """Boolean (z, y, x): True where every mask is nonzero; None when there are no masks."""
    result = None
    for mask in masks:
        inside = read_filled(mask, roi) != 0
        result = inside if result is None else result & inside
    return result


def container_folder(container: str | os.PathLike) -> Path:
    """The folder a container lies in (for scratch space next to the data)."""
    return Path(container).expanduser().absolute().parent
