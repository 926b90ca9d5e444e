"""Pick the z, y, x axes out of a foreign array whose axes may be ordered or extended differently.

ilastik writes HDF5 exports as ``zyxc`` (with an ``axistags`` attribute saying so), OME-Zarr
declares ``tczyx``-style axes in its metadata, and a plain 3D array is ``zyx``. Instead of one
special case per tool, each importer states the file's axis letters and this module turns them
into an index (a slice for each spatial axis, a fixed position for channel and time axes) and the
transpose that yields z, y, x. Non-spatial axes longer than one need an explicit ``--channel``,
because guessing which channel holds the image would silently import the wrong data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from incasem.errors import IncasemError

SPATIAL = ("z", "y", "x")


@dataclass(frozen=True)
class AxisSelection:
    """How to read z, y, x from an array with axes ``axes`` (one letter per axis).

    Attributes:
        axes: the file's axis letters, e.g. ``"zyxc"``.
        fixed: position taken on each non-spatial axis, by axis index.
        spatial_shape: shape in voxels (z, y, x).
    """

    axes: str
    fixed: tuple[tuple[int, int], ...]
    spatial_shape: tuple[int, int, int]

    def index(self, z: slice, y: slice, x: slice) -> tuple[slice | int, ...]:
        """The index into the file's array that reads voxels ``[z, y, x]``."""
        by_letter = {"z": z, "y": y, "x": x}
        fixed = dict(self.fixed)
        return tuple(
            fixed[i] if i in fixed else by_letter[letter] for i, letter in enumerate(self.axes)
        )

    def to_zyx(self, data: np.ndarray) -> np.ndarray:
        """Reorder what `index` read (spatial axes in file order) to z, y, x."""
        order = [letter for letter in self.axes if letter in SPATIAL]
        return np.transpose(data, [order.index(letter) for letter in SPATIAL])


def select_axes(axes: str, shape: Sequence[int], channel: int | None, where: str) -> AxisSelection:
    """Check ``axes`` against ``shape`` and choose the channel; raise `IncasemError` if unusable.

    Args:
        axes: one letter per array axis; ``z``, ``y``, ``x`` must each appear once, any other
            letter (``c``, ``t``) is a non-spatial axis.
        shape: the array's shape.
        channel: position to read on non-spatial axes longer than one.
        where: names the array in messages.
    """
    axes = axes.lower()
    if len(axes) != len(shape):
        raise IncasemError(
            f"{where}: axes {axes!r} name {len(axes)} axes but the array has shape {list(shape)}"
        )
    if sorted(a for a in axes if a in SPATIAL) != sorted(SPATIAL) or len(set(axes)) != len(axes):
        raise IncasemError(f"{where}: axes {axes!r} must contain z, y and x once each")
    fixed = []
    for i, (letter, size) in enumerate(zip(axes, shape, strict=True)):
        if letter in SPATIAL:
            continue
        if size == 1:
            fixed.append((i, 0))
        elif channel is None:
            raise IncasemError(
                f"{where}: axis {letter!r} has {size} entries; pass --channel N to choose one"
            )
        elif not 0 <= channel < size:
            raise IncasemError(f"{where}: --channel {channel} is not in 0..{size - 1}")
        else:
            fixed.append((i, channel))
    spatial_shape = tuple(int(shape[axes.index(letter)]) for letter in SPATIAL)
    return AxisSelection(axes, tuple(fixed), spatial_shape)


class SelectedVolume:
    """A 3D view (z, y, x; voxels) of a file's array through an `AxisSelection`.

    The shared half of the zarr/N5 and HDF5 volumes: subclasses are frozen dataclasses with the
    fields ``selection`` and ``file_dtype``, say where the array is (`name`) and read an index
    of the file's own axes (`_read_index`).
    """

    selection: AxisSelection
    file_dtype: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume shape in voxels (z, y, x)."""
        return self.selection.spatial_shape

    @property
    def dtype(self) -> np.dtype:
        """dtype of the arrays `read` returns."""
        return np.dtype(self.file_dtype)

    @property
    def name(self) -> str:
        """``file/dataset``, for messages."""
        raise NotImplementedError

    def _read_index(self, index: tuple) -> np.ndarray:
        """The file array at ``index`` (in the file's axis order)."""
        raise NotImplementedError

    def read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Voxels ``[z, y, x]`` as a (z, y, x) array."""
        return self.selection.to_zyx(np.asarray(self._read_index(self.selection.index(z, y, x))))
