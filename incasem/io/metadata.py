"""Voxel size and offset of a dataset, whichever convention wrote them.

Two conventions exist among the tools our users combine, and a silent mix-up between them costs a
factor of the voxel size in every coordinate:

* gunpowder 1.4 (``ZarrSource``/``ZarrWrite``) and the original incasem read and write the
  attribute ``resolution``;
* funlib.persistence 0.6 reads and writes ``voxel_size`` and, when it finds only ``resolution``,
  assumes a voxel size of 1 with nothing but a log message.

We therefore read either (and refuse a dataset where both disagree), and always write both, so that
gunpowder, funlib.persistence, neuroglancer and incasem all agree on what a dataset covers. N5
containers store attributes in x, y, z order (their arrays are presented to us as z, y, x by zarr's
N5 store), so their attributes are reversed on read. All values are in nm, axis order z, y, x.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from funlib.geometry import Coordinate

from incasem.errors import IncasemError

#: Attribute names we write for the voxel size; readers pick whichever they know.
VOXEL_SIZE_ATTRS = ("voxel_size", "resolution")
#: Attribute holding the voxel size as measured (nm, z, y, x) when the grid's voxel size (the
#: ``voxel_size``/``resolution`` attributes, whole nm) is its rounding. Physical quantities
#: (lengths, areas, volumes) use it; positions and ROIs stay on the grid.
EXACT_VOXEL_SIZE_ATTR = "voxel_size_exact_nm"


@dataclass(frozen=True)
class SpatialMetadata:
    """Where a dataset lies in the world.

    Attributes:
        voxel_size: size of one voxel in nm, (z, y, x).
        offset: world position of the first voxel's corner in nm, (z, y, x).
    """

    voxel_size: Coordinate
    offset: Coordinate


def _as_integer_coordinate(value: Any, key: str, where: str, dims: int) -> Coordinate:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != dims:
        raise IncasemError(
            f"{where}: attribute '{key}' is {value!r}, expected {dims} numbers (z, y, x) in nm"
        )
    ints = []
    for v in value:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or int(v) != v
        ):
            raise IncasemError(
                f"{where}: attribute '{key}' is {list(value)}, but incasem needs integer nm "
                "values (store the exact value elsewhere, e.g. 'resolution_exact_nm')"
            )
        ints.append(int(v))
    return Coordinate(ints)


def read_spatial_metadata(
    attrs: Mapping[str, Any], spatial_dims: int, where: str, n5: bool = False
) -> SpatialMetadata:
    """Read voxel size and offset (nm, z, y, x) from a dataset's attributes.

    Args:
        attrs: the dataset's attributes (``.zattrs`` or N5 ``attributes.json``).
        spatial_dims: number of spatial axes (the trailing axes of the array).
        where: ``"file.zarr/dataset"``, used to name the dataset in error messages.
        n5: whether attributes are in N5's reversed (x, y, z) order.

    A dataset without any voxel size attribute gets voxel size 1 and offset 0, as gunpowder does;
    conflicting ``voxel_size`` and ``resolution``, non-integer values, negative or zero voxel
    sizes and offsets that are not a multiple of the voxel size raise `IncasemError`.
    """

    def fetch(key: str) -> Coordinate | None:
        if key not in attrs:
            return None
        value = attrs[key]
        if n5 and isinstance(value, Sequence):
            value = list(value)[::-1]
        return _as_integer_coordinate(value, key, where, spatial_dims)

    found = {key: fetch(key) for key in VOXEL_SIZE_ATTRS}
    if "pixelResolution" in attrs and isinstance(attrs["pixelResolution"], Mapping):
        dims = list(attrs["pixelResolution"].get("dimensions", []))[::-1]
        found["pixelResolution"] = _as_integer_coordinate(
            dims, "pixelResolution", where, spatial_dims
        )
    given = {k: v for k, v in found.items() if v is not None}
    if len(set(given.values())) > 1:
        described = ", ".join(f"'{k}' = {list(v)}" for k, v in given.items())
        raise IncasemError(f"{where}: conflicting voxel sizes {described}")
    voxel_size = next(iter(given.values())) if given else Coordinate((1,) * spatial_dims)
    if any(v <= 0 for v in voxel_size):
        raise IncasemError(f"{where}: voxel size {list(voxel_size)} nm must be positive")

    offset = fetch("offset")
    if offset is None:
        offset = Coordinate((0,) * spatial_dims)
    if any(o % v != 0 for o, v in zip(offset, voxel_size, strict=True)):
        raise IncasemError(
            f"{where}: offset {list(offset)} nm is not a multiple of the voxel size "
            f"{list(voxel_size)} nm"
        )
    return SpatialMetadata(voxel_size=voxel_size, offset=offset)


def spatial_attributes(
    voxel_size: Sequence[int], offset: Sequence[int], num_channel_dims: int = 0
) -> dict[str, Any]:
    """Attributes that make a dataset readable by gunpowder, funlib.persistence and neuroglancer.

    Args:
        voxel_size: nm, (z, y, x).
        offset: nm, (z, y, x).
        num_channel_dims: leading non-spatial axes (e.g. 1 for class probabilities).
    """
    voxel_size = [int(v) for v in voxel_size]
    spatial = ["z", "y", "x"][-len(voxel_size) :]
    channels = [f"c{i}^" for i in range(num_channel_dims)]
    return {
        "voxel_size": voxel_size,
        "resolution": voxel_size,
        "offset": [int(o) for o in offset],
        "axis_names": channels + spatial,
        "units": ["nm"] * len(voxel_size),
        "types": ["channel"] * num_channel_dims + ["space"] * len(voxel_size),
        # Read by neuroglancer's zarr data source and by xarray.
        "_ARRAY_DIMENSIONS": [c.rstrip("^") for c in channels] + spatial,
        "dimension_units": [""] * num_channel_dims + [f"{v} nm" for v in voxel_size],
    }


@dataclass(frozen=True)
class PhysicalVoxelSize:
    """The voxel size that physical quantities (lengths, areas, volumes) use.

    Attributes:
        nm: nm per voxel, (z, y, x): the exact size when the dataset records one, else the grid's.
        origin: ``"exact"`` (from ``voxel_size_exact_nm``) or ``"grid"``.
    """

    nm: tuple[float, ...]
    origin: str

    def describe(self) -> dict[str, Any]:
        """``{"voxel_size_nm": [...], "voxel_size_origin": "exact" | "grid"}`` for reports."""
        return {"voxel_size_nm": list(self.nm), "voxel_size_origin": self.origin}


def read_physical_voxel_size(
    attrs: Mapping[str, Any], grid: Sequence[int], where: str, n5: bool = False
) -> PhysicalVoxelSize:
    """The exact voxel size (nm, z, y, x) recorded in ``attrs``, else the grid's ``grid``.

    Raises `IncasemError` naming ``where`` when ``voxel_size_exact_nm`` is not one positive number
    per axis, or differs from the grid's by more than half of it (it does not describe this grid).
    """
    grid = tuple(int(v) for v in grid)
    value = attrs.get(EXACT_VOXEL_SIZE_ATTR)
    if value is None:
        return PhysicalVoxelSize(tuple(float(v) for v in grid), "grid")
    if n5 and isinstance(value, Sequence) and not isinstance(value, str):
        value = list(value)[::-1]
    valid = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == len(grid)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(
            0 < v < float("inf") and abs(v - g) <= g / 2 for v, g in zip(value, grid, strict=True)
        )
    )
    if not valid:
        raise IncasemError(
            f"{where}: attribute '{EXACT_VOXEL_SIZE_ATTR}' is {value!r}, expected one positive "
            f"number (nm) per axis close to the grid's voxel size {list(grid)}"
        )
    return PhysicalVoxelSize(tuple(float(v) for v in value), "exact")


def exact_voxel_size_attrs(
    physical: PhysicalVoxelSize, factor: Sequence[int] | None = None
) -> dict[str, Any]:
    """The attribute a derived dataset carries over from its source: ``voxel_size_exact_nm``
    (times ``factor`` per axis for a downsampled one), or nothing when the source has none."""
    if physical.origin != "exact":
        return {}
    factor = factor if factor is not None else (1,) * len(physical.nm)
    return {EXACT_VOXEL_SIZE_ATTR: [v * f for v, f in zip(physical.nm, factor, strict=True)]}
