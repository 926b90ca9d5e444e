"""HDF5 datasets (ilastik exports and similar) as lazily readable volumes.

ilastik, the usual tool for quick sparse annotations, exports HDF5 with a trailing channel axis
and records the axis order in a JSON ``axistags`` attribute; we honour that attribute, fall back to
``zyx`` / ``zyxc`` for plain files, and let the user state the order (``--axes``) otherwise. HDF5
reads only the chunks a region touches, so blocks stay small however large the file is. Each read
opens the file afresh: a volume is a path and numbers, which workers rebuild from JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from incasem.errors import IncasemError
from incasem.prepare.axes import AxisSelection, SelectedVolume, select_axes


@dataclass(frozen=True)
class Hdf5Volume(SelectedVolume):
    """A 3D view (z, y, x; voxels) of an HDF5 dataset.

    Attributes:
        path: the ``.h5`` file.
        dataset: path of the dataset inside the file.
        selection: which file axes are z, y, x and which channel is read.
        file_dtype: dtype of the dataset.
    """

    path: str
    dataset: str
    selection: AxisSelection
    file_dtype: str

    @property
    def name(self) -> str:
        """``file.h5/dataset``, for messages."""
        return f"{self.path}/{self.dataset}"

    def _read_index(self, index: tuple) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r") as f:
            return f[self.dataset][index]


def _axes_from_attrs(attrs: dict, ndim: int) -> str | None:
    tags = attrs.get("axistags")
    if tags is not None:
        try:
            keys = "".join(axis["key"] for axis in json.loads(tags)["axes"])
        except (TypeError, KeyError, ValueError):
            keys = ""
        if len(keys) == ndim:
            return keys
    return {3: "zyx", 4: "zyxc"}.get(ndim)


def open_hdf5_volume(
    path: str | os.PathLike, dataset: str, axes: str | None = None, channel: int | None = None
) -> Hdf5Volume:
    """Open ``dataset`` of an HDF5 file as a z, y, x volume (reads metadata only).

    Args:
        path: the HDF5 file.
        dataset: path of the dataset inside it (ilastik: ``exported_data``).
        axes: the dataset's axis letters (e.g. ``"zyxc"``); default from ilastik's ``axistags``
            attribute, else ``zyx`` for 3D and ``zyxc`` for 4D datasets.
        channel: which entry of a non-spatial axis longer than one to read.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise IncasemError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            node = f.get(dataset)
            if not isinstance(node, h5py.Dataset):
                found: list[str] = []
                f.visititems(
                    lambda name, item: (
                        found.append(name) if isinstance(item, h5py.Dataset) else None
                    )
                )
                raise IncasemError(
                    f"{path}: no dataset '{dataset}' (datasets in this file: "
                    f"{', '.join(found) or 'none'})"
                )
            shape, dtype, attrs = node.shape, node.dtype, dict(node.attrs)
    except OSError as e:
        raise IncasemError(f"{path}: not a readable HDF5 file ({e})") from None
    where = f"{path}/{dataset}"
    axes = axes or _axes_from_attrs(attrs, len(shape))
    if axes is None:
        raise IncasemError(
            f"{where}: cannot tell the axis order of shape {list(shape)}; pass --axes, e.g. zyxc"
        )
    selection = select_axes(axes, shape, channel, where)
    return Hdf5Volume(str(path), dataset, selection, np.dtype(dtype).str)
