"""N5, OME-Zarr and foreign zarr arrays (e.g. OpenOrganelle) as volumes with their voxel size.

Public FIB-SEM data (OpenOrganelle/COSEM) comes as N5 or OME-Zarr multiscale groups (``s0``,
``s1``, ...), and every tool records the voxel size differently: OME-NGFF
``coordinateTransformations`` in the group's ``multiscales``, COSEM's ``transform`` (C order, with
axis names and units), the N5 viewer's ``pixelResolution`` (x, y, z order), or gunpowder's
``resolution``/``offset`` (reversed in N5). We read all of them into nm, z, y, x so that the
imported dataset lands at the same world position as the original. Voxel sizes are often not whole
nm (3.24 nm); incasem's datasets need integers, so such values are refused with the numbers and
the user states the voxel size to record (``--resolution``) instead of us rounding silently.
zarr reads N5 through its N5 store, which already presents arrays in z, y, x order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from incasem.errors import IncasemError
from incasem.prepare.axes import SPATIAL, AxisSelection, SelectedVolume, select_axes

_UNIT_NM = {
    None: 1.0,
    "": 1.0,
    "nm": 1.0,
    "nanometer": 1.0,
    "um": 1000.0,
    "µm": 1000.0,
    "micrometer": 1000.0,
    "micron": 1000.0,
    "angstrom": 0.1,
    "pm": 0.001,
    "picometer": 0.001,
}


@dataclass(frozen=True)
class ZarrVolume(SelectedVolume):
    """A 3D view (z, y, x; voxels) of one zarr or N5 array.

    Attributes:
        container: path of the ``.zarr`` or ``.n5`` container.
        dataset: path of the array inside it.
        selection: which axes are z, y, x and which channel is read.
        file_dtype: the array's dtype.
    """

    container: str
    dataset: str
    selection: AxisSelection
    file_dtype: str

    @property
    def name(self) -> str:
        """``container/dataset``, for messages."""
        return f"{self.container}/{self.dataset}"

    def _read_index(self, index: tuple) -> np.ndarray:
        import zarr

        return zarr.open(self.container, mode="r", path=self.dataset)[index]


@dataclass(frozen=True)
class WorldPlacement:
    """Voxel size and offset as a file states them, possibly fractional.

    Attributes:
        voxel_size: nm, z, y, x.
        offset: nm, z, y, x (world position of the first voxel).
        source: which metadata convention they were read from.
    """

    voxel_size: tuple[float, float, float]
    offset: tuple[float, float, float]
    source: str


def _nm_factor(unit: Any, where: str) -> float:
    key = unit.lower() if isinstance(unit, str) else unit
    if key not in _UNIT_NM:
        raise IncasemError(f"{where}: unknown unit {unit!r}; pass --resolution (nm) explicitly")
    return _UNIT_NM[key]


def _spatial(values: Sequence[Any], axes: str, where: str) -> tuple[float, float, float]:
    if len(values) != len(axes):
        raise IncasemError(f"{where}: {list(values)} does not match axes {axes!r}")
    return tuple(float(values[axes.index(letter)]) for letter in SPATIAL)


def _ngff_axes(axes: Any) -> tuple[str, list[Any]]:
    """Axis letters and units of OME-NGFF ``axes`` (0.4: dicts; 0.3: plain names)."""
    names, units = [], []
    for axis in axes:
        if isinstance(axis, Mapping):
            names.append(str(axis.get("name", "?"))[0].lower())
            units.append(axis.get("unit"))
        else:
            names.append(str(axis)[0].lower())
            units.append(None)
    return "".join(names), units


def _ngff_transform(transforms: Any, ndim: int) -> tuple[list[float], list[float]]:
    scale, translation = [1.0] * ndim, [0.0] * ndim
    for t in transforms or []:
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            translation = [float(v) for v in t["translation"]]
    return scale, translation


def _placement_from_multiscale(
    multiscale: Mapping[str, Any], entry: Mapping[str, Any], ndim: int, where: str
) -> tuple[str, WorldPlacement | None]:
    """Axis letters and placement of one entry of a ``multiscales`` list (NGFF or COSEM)."""
    if "transform" in entry:  # COSEM / OpenOrganelle N5
        return _placement_from_cosem(entry["transform"], where)
    if "axes" in multiscale:
        axes, units = _ngff_axes(multiscale["axes"])
    else:
        axes, units = "zyx"[-ndim:] if ndim <= 3 else "", [None] * ndim
    if "coordinateTransformations" not in entry:
        return axes, None
    scale, translation = _ngff_transform(entry["coordinateTransformations"], len(axes))
    global_scale, global_translation = _ngff_transform(
        multiscale.get("coordinateTransformations"), len(axes)
    )
    factors = [
        _nm_factor(units[axes.index(letter)], where) if letter in axes else 1.0
        for letter in SPATIAL
    ]
    voxel = _spatial([s * g for s, g in zip(scale, global_scale, strict=True)], axes, where)
    offset = _spatial(
        [
            t * g + gt
            for t, g, gt in zip(translation, global_scale, global_translation, strict=True)
        ],
        axes,
        where,
    )
    return axes, WorldPlacement(
        tuple(v * f for v, f in zip(voxel, factors, strict=True)),
        tuple(o * f for o, f in zip(offset, factors, strict=True)),
        "OME-NGFF coordinateTransformations",
    )


def _placement_from_cosem(transform: Mapping[str, Any], where: str) -> tuple[str, WorldPlacement]:
    axes = "".join(str(a)[0].lower() for a in transform.get("axes", SPATIAL))
    units = transform.get("units") or [None] * len(axes)
    factors = [_nm_factor(units[axes.index(letter)], where) for letter in SPATIAL]
    voxel = _spatial(transform.get("scale", [1] * len(axes)), axes, where)
    offset = _spatial(transform.get("translate", [0] * len(axes)), axes, where)
    return axes, WorldPlacement(
        tuple(v * f for v, f in zip(voxel, factors, strict=True)),
        tuple(o * f for o, f in zip(offset, factors, strict=True)),
        "COSEM transform",
    )


def _placement_from_array_attrs(
    attrs: Mapping[str, Any], ndim: int, n5: bool, where: str
) -> WorldPlacement | None:
    if "transform" in attrs:
        return _placement_from_cosem(attrs["transform"], where)[1]
    if isinstance(attrs.get("pixelResolution"), Mapping):
        pixel = attrs["pixelResolution"]
        factor = _nm_factor(pixel.get("unit"), where)
        dims = [float(v) * factor for v in list(pixel.get("dimensions", []))[::-1]]
        if len(dims) == 3:
            offset = [float(v) for v in attrs.get("offset", [0, 0, 0])]
            return WorldPlacement(
                tuple(dims), tuple(offset[::-1] if n5 else offset), "pixelResolution"
            )
    for key in ("voxel_size", "resolution"):
        if key in attrs and len(attrs[key]) == ndim:
            values = [float(v) for v in attrs[key]]
            offset = [float(v) for v in attrs.get("offset", [0] * ndim)]
            if n5:
                values, offset = values[::-1], offset[::-1]
            return WorldPlacement(tuple(values[-3:]), tuple(offset[-3:]), f"'{key}' attribute")
    return None


def _choose_scale(datasets: Sequence[Mapping[str, Any]], scale: str | None, where: str) -> int:
    paths = [str(d.get("path")) for d in datasets]
    if scale is None:
        return 0
    if scale in paths:
        return paths.index(scale)
    if scale.isdigit() and int(scale) < len(paths):
        return int(scale)
    raise IncasemError(f"{where}: no scale {scale!r} (scales: {', '.join(paths)})")


def open_multiscale_volume(
    container: str | os.PathLike,
    dataset: str = "",
    scale: str | None = None,
    channel: int | None = None,
) -> tuple[ZarrVolume, WorldPlacement | None]:
    """Open an array of an N5, OME-Zarr or zarr container with the placement its metadata states.

    Args:
        container: ``.n5`` or ``.zarr`` directory.
        dataset: path of a multiscale group (e.g. ``em/fibsem-uint8``) or of one array in it
            (``em/fibsem-uint8/s0``); empty for the container's root.
        scale: for multiscale groups, the level's path (``s1``) or index (``1``); default the
            first (finest) level.
        channel: which entry of a non-spatial axis (OME ``c``/``t``) longer than one to read.

    Returns the volume (z, y, x, voxels) and its placement (nm, possibly fractional), or ``None``
    for the placement when the metadata does not state one.
    """
    import zarr

    container = Path(container)
    where = f"{container}/{dataset}".rstrip("/")
    if not container.exists():
        raise IncasemError(f"{container}: no such file or directory")
    try:
        node = zarr.open(str(container), mode="r", path=dataset)
    except (zarr.errors.PathNotFoundError, KeyError, ValueError) as e:
        raise IncasemError(f"{where}: no such array or group ({e})") from None
    n5 = container.suffix == ".n5"
    placement = None
    axes = None
    if isinstance(node, zarr.Group):
        multiscales = node.attrs.get("multiscales")
        if not multiscales:
            arrays = sorted(name for name, _ in node.arrays())
            groups = sorted(name for name, _ in node.groups())
            raise IncasemError(
                f"{where}: is a group without 'multiscales' metadata; name an array or group "
                f"inside it (arrays: {', '.join(arrays) or 'none'}; groups: "
                f"{', '.join(groups) or 'none'})"
            )
        multiscale = multiscales[0]
        entry = multiscale["datasets"][_choose_scale(multiscale["datasets"], scale, where)]
        dataset = f"{dataset.strip('/')}/{entry['path']}".strip("/")
        where = f"{container}/{dataset}"
        node = zarr.open(str(container), mode="r", path=dataset)
        axes, placement = _placement_from_multiscale(multiscale, entry, node.ndim, where)
    elif scale is not None:
        raise IncasemError(f"{where}: is an array; --scale applies to multiscale groups only")
    if placement is None:
        placement = _placement_from_array_attrs(node.attrs.asdict(), node.ndim, n5, where)
    if not axes:
        axes = _axes_from_array_attrs(node.attrs.asdict(), node.ndim, where)
    selection = select_axes(axes, node.shape, channel, where)
    return ZarrVolume(str(container), dataset, selection, np.dtype(node.dtype).str), placement


def _axes_from_array_attrs(attrs: Mapping[str, Any], ndim: int, where: str) -> str:
    names = attrs.get("axis_names") or attrs.get("_ARRAY_DIMENSIONS")
    if isinstance(attrs.get("transform"), Mapping) and "axes" in attrs["transform"]:
        names = attrs["transform"]["axes"]
    if names and len(names) == ndim:
        letters = "".join(str(n).rstrip("^")[0].lower() for n in names)
        if all(letter in letters for letter in SPATIAL):
            return letters
    if ndim == 3:
        return "zyx"
    if ndim == 4:
        return "czyx"
    raise IncasemError(f"{where}: cannot tell the axes of a {ndim}D array")
