"""Per-object morphometrics of an instance dataset, exact for objects that cross blocks.

Each block saves additive statistics per object id: voxel count, sums of voxel-centre positions
and of their products (first and second moments, nm, relative to the dataset's origin so that
float64 sums keep their precision), bounding-box extremes (voxels), probability sums and its part
of the surface area. The driver adds them per id; every column then follows from the sums, so a
table computed block by block equals one computed on the whole volume.

Conventions (stated in the table's column names and docs/howto/postprocessing.md):

* **Voxel size.** Lengths, areas and volumes use the dataset's exact voxel size
  (``voxel_size_exact_nm``, written by ``convert`` when it rounds a measured size to whole nm, and
  carried over by every command that derives a dataset) where one is recorded, else the grid's;
  `measure_voxel_size` says which. Positions (centroid, bounding box) are world positions on the
  grid, like every ROI.
* **Volume** = voxel count × voxel volume (nm³). **Centroid** = mean voxel centre (nm, world).
* **Principal axes** come from the covariance of the voxel centres plus ``s² / 12`` per axis (the
  variance of a position uniform inside a voxel of edge ``s``), i.e. the second moments of the
  voxelised solid. A solid ellipsoid with semi-axis ``a`` has variance ``a² / 5`` along it, so the
  reported axis length is the full length of the equivalent ellipsoid, ``2 · sqrt(5 · λ)`` for
  each eigenvalue λ (major ≥ middle ≥ minor). **Eccentricity** = ``sqrt(1 − λ_minor / λ_major)``
  (0 for a sphere, → 1 for a needle or a disc); **elongation** = major / minor axis length.
* **Surface area** (nm²) is the area of the marching-cubes isosurface (level 0.5) of the object's
  binary mask smoothed with a Gaussian of 0.7 of the finest voxel edge, the same width in nm along
  every axis (0.7 voxels on an isotropic grid; the outside of the volume counts as background).
  Counting exposed voxel faces overestimates smooth surfaces by about 50 % at any resolution (a
  staircase has the area of its steps), and marching cubes on the raw binary mask still by about 9 %
  (its 45° facets); the slight smoothing brings spheres of 5 to 20 voxels radius within about 1 % of
  4πr² on isotropic grids (about 3 % above it at 2:1 anisotropy, the sections' own staircase).
  Smoothing 0.7 *sections* instead would melt an object one or two sections deep into a sheet
  without walls (its area 40 % low at 50 × 4.6 × 4.6 nm). Smoothing and marching cubes are local
  (radius 2 voxels, then independent 2×2×2 cubes), so each block reads 3 voxels of context and
  triangulates only the cubes whose first corner it owns (its voxels, plus the layer before the
  volume's first voxel): the per-block areas add up to the whole-volume area exactly.
* **Sphericity** = ``π^(1/3) (6 V_A)^(2/3) / A`` with ``V_A`` the volume the same isosurface
  encloses (the sum over its triangles of their signed tetrahedra, additive across blocks like
  the area), so that volume and area describe one solid and the isoperimetric inequality keeps it
  ≤ 1 (1 for a sphere). Taking the voxel count's volume instead gave values above 1 for objects
  one or two sections deep, whose smoothed surface encloses less than their voxels.
* **Mean probability** = mean of p (uint8 levels / 255, or floats) over the object's voxels, when
  a probability dataset is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import PhysicalVoxelSize, physical_voxel_size
from incasem.postprocess.partials import load_parts, save_part, scratch_folder
from incasem.postprocess.sources import (
    DatasetRef,
    as_probability,
    check_covers,
    check_probability_dtype,
    read_filled,
    spatial_array,
)

#: Gaussian smoothing (voxels) of each object's mask before marching cubes, its truncation (in
#: standard deviations) and the context a block reads: the smoothing radius plus one cube.
_SMOOTHING = 0.7
_TRUNCATE = 3.0
_CONTEXT = int(_TRUNCATE * _SMOOTHING + 0.5) + 1
_SECOND = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_OPERATORS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _surface_areas(
    padded: np.ndarray, first: Sequence[bool], spacing: Sequence[float], start: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isosurface area (nm²) and enclosed signed volume (nm³) per id over the cubes a block owns.

    ``padded`` is the block's labels with `_CONTEXT` voxels of context on every side (zeros
    outside the volume); ``first`` per axis says whether the block starts at the volume's first
    voxel (it then also owns the cubes reaching into the zeros before the volume); ``spacing``
    is the physical voxel size (nm, z, y, x) and ``start`` the block's first voxel relative to
    the volume's, so that every block's triangles share one frame and their signed volumes add up.
    """
    from scipy import ndimage
    from skimage.measure import marching_cubes, mesh_surface_area

    own_low = [_CONTEXT - 1 if f else _CONTEXT for f in first]
    own_high = [n - _CONTEXT + 1 for n in padded.shape]
    coords = np.nonzero(padded)
    ids, inverse = np.unique(padded[coords], return_inverse=True)
    areas = np.zeros(len(ids))
    volumes = np.zeros(len(ids))
    lows = np.full((len(ids), 3), np.iinfo(np.int64).max)
    highs = np.full((len(ids), 3), -1)
    for axis in range(3):
        np.minimum.at(lows[:, axis], inverse, coords[axis])
        np.maximum.at(highs[:, axis], inverse, coords[axis])
    spacing = tuple(float(v) for v in spacing)
    sigma = tuple(_SMOOTHING * min(spacing) / v for v in spacing)
    for i, object_id in enumerate(ids):
        box = [
            (max(int(lo) - _CONTEXT, 0), min(int(hi) + _CONTEXT + 1, n))
            for lo, hi, n in zip(lows[i], highs[i], padded.shape, strict=True)
        ]
        mask = (padded[tuple(slice(b, e) for b, e in box)] == object_id).astype(np.float32)
        smooth = ndimage.gaussian_filter(mask, sigma, truncate=_TRUNCATE)
        cut = tuple(
            slice(max(lo, b) - b, min(hi, e) - b)
            for (b, e), lo, hi in zip(box, own_low, own_high, strict=True)
        )
        smooth = smooth[cut]
        if min(smooth.shape) < 2 or not smooth.min() < 0.5 < smooth.max():
            continue  # no isosurface passes through the cubes this block owns
        vertices, faces, _, _ = marching_cubes(smooth, level=0.5, spacing=spacing)
        areas[i] = mesh_surface_area(vertices, faces)
        corner = [s - _CONTEXT + b + c.start for s, (b, _), c in zip(start, box, cut, strict=True)]
        triangles = (vertices + np.multiply(corner, spacing))[faces]
        cross = np.cross(triangles[:, 1], triangles[:, 2])
        volumes[i] = np.einsum("ij,ij->", triangles[:, 0], cross) / 6.0
    return ids, areas, volumes


@dataclass(frozen=True)
class _MomentsBlock:
    instances: DatasetRef
    probabilities: DatasetRef | None
    volume_offset: tuple[int, ...]
    voxel_size: tuple[int, ...]
    physical_voxel_size: tuple[float, ...]
    parts: str

    def __call__(self, block: Any) -> None:
        roi = block.write_roi
        voxel_size = Coordinate(self.voxel_size)
        context = voxel_size * _CONTEXT
        padded = read_filled(self.instances, roi.grow(context, context)).astype(np.uint64)
        inner = padded[(slice(_CONTEXT, -_CONTEXT),) * 3]
        coords = np.nonzero(inner)
        ids, inverse = np.unique(inner[coords], return_inverse=True)
        start = (roi.offset - Coordinate(self.volume_offset)) / voxel_size
        voxels = [c + s for c, s in zip(coords, start, strict=True)]
        positions = [(v + 0.5) * s for v, s in zip(voxels, self.voxel_size, strict=True)]
        n = len(ids)
        bbox_low = np.zeros((n, 3), np.int64)
        bbox_high = np.zeros((n, 3), np.int64)
        for axis in range(3):
            bbox_low[:, axis] = np.iinfo(np.int64).max
            np.minimum.at(bbox_low[:, axis], inverse, voxels[axis])
            np.maximum.at(bbox_high[:, axis], inverse, voxels[axis])
        probability_sum = np.zeros(n)
        if self.probabilities is not None and n:
            p = as_probability(read_filled(self.probabilities, roi))[coords]
            probability_sum = np.bincount(inverse, weights=p, minlength=n)
        first = [b <= o for b, o in zip(roi.offset, self.volume_offset, strict=True)]
        area_ids, areas, enclosed = _surface_areas(
            padded, first, self.physical_voxel_size, tuple(int(s) for s in start)
        )
        save_part(
            self.parts,
            roi,
            ids=ids,
            count=np.bincount(inverse, minlength=n).astype(np.int64),
            first=np.stack(
                [np.bincount(inverse, weights=p, minlength=n) for p in positions], axis=1
            ).reshape(n, 3),
            second=np.stack(
                [
                    np.bincount(inverse, weights=positions[a] * positions[b], minlength=n)
                    for a, b in _SECOND
                ],
                axis=1,
            ).reshape(n, 6),
            bbox_low=bbox_low,
            bbox_high=bbox_high,
            probability_sum=probability_sum,
            area_ids=area_ids,
            areas=areas,
            enclosed=enclosed,
        )


def _combine(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    ids = np.concatenate([p["ids"] for p in parts] + [p["area_ids"] for p in parts])
    unique = np.unique(ids)
    total: dict[str, np.ndarray] = {"ids": unique}
    where = [np.searchsorted(unique, p["ids"]) for p in parts]
    for key, width, dtype in (
        ("count", 0, np.int64),
        ("first", 3, np.float64),
        ("second", 6, np.float64),
        ("probability_sum", 0, np.float64),
    ):
        shape = (len(unique), width) if width else (len(unique),)
        total[key] = np.zeros(shape, dtype)
        for part, at in zip(parts, where, strict=True):
            np.add.at(total[key], at, part[key])
    total["bbox_low"] = np.full((len(unique), 3), np.iinfo(np.int64).max)
    total["bbox_high"] = np.full((len(unique), 3), -1, np.int64)
    total["area"] = np.zeros(len(unique))
    total["enclosed"] = np.zeros(len(unique))
    for part, at in zip(parts, where, strict=True):
        np.minimum.at(total["bbox_low"], at, part["bbox_low"])
        np.maximum.at(total["bbox_high"], at, part["bbox_high"])
        area_at = np.searchsorted(unique, part["area_ids"])
        np.add.at(total["area"], area_at, part["areas"])
        np.add.at(total["enclosed"], area_at, part["enclosed"])
    return total


def _table(
    total: dict[str, np.ndarray],
    offset: Coordinate,
    voxel_size: Coordinate,
    physical: Sequence[float],
    with_probability: bool,
) -> dict[str, np.ndarray]:
    # Moments are summed in grid nm; lengths rescale each axis to the physical voxel size.
    scale = np.asarray(physical) / np.asarray(voxel_size, dtype=np.float64)
    count = total["count"].astype(np.float64)
    mean = total["first"] / count[:, None]
    second = total["second"] / count[:, None]
    covariance = np.zeros((len(count), 3, 3))
    for k, (a, b) in enumerate(_SECOND):
        value = second[:, k] - mean[:, a] * mean[:, b]
        covariance[:, a, b] = covariance[:, b, a] = value * scale[a] * scale[b]
    for axis in range(3):
        covariance[:, axis, axis] += physical[axis] ** 2 / 12.0
    eigen = np.clip(np.linalg.eigvalsh(covariance)[:, ::-1], 0.0, None)
    axes = 2.0 * np.sqrt(5.0 * eigen)
    volume = count * math.prod(physical)
    area = total["area"]
    table: dict[str, np.ndarray] = {
        "id": total["ids"].astype(np.uint64),
        "voxels": total["count"],
        "volume_nm3": volume,
    }
    for axis, name in enumerate("zyx"):
        table[f"centroid_{name}_nm"] = mean[:, axis] + offset[axis]
    for axis, name in enumerate("zyx"):
        table[f"bbox_begin_{name}_nm"] = (
            total["bbox_low"][:, axis] * voxel_size[axis] + offset[axis]
        )
    for axis, name in enumerate("zyx"):
        table[f"bbox_end_{name}_nm"] = (total["bbox_high"][:, axis] + 1) * voxel_size[
            axis
        ] + offset[axis]
    table["surface_area_nm2"] = area
    table["axis_major_nm"], table["axis_middle_nm"], table["axis_minor_nm"] = axes.T
    with np.errstate(divide="ignore", invalid="ignore"):
        table["eccentricity"] = np.sqrt(np.clip(1.0 - eigen[:, 2] / eigen[:, 0], 0.0, 1.0))
        table["elongation"] = axes[:, 0] / axes[:, 2]
        enclosed = np.abs(total["enclosed"])
        table["sphericity"] = np.pi ** (1 / 3) * (6 * enclosed) ** (2 / 3) / area
    if with_probability:
        table["mean_probability"] = total["probability_sum"] / count
    return table


def parse_filter(text: str) -> tuple[str, str, float]:
    """``(column, operator, value)`` from ``"volume_nm3>1e6"``; operators < <= > >= == !=.

    Parsed with a regular expression (never evaluated as code).
    """
    match = _FILTER.match(text)
    if not match:
        raise IncasemError(
            f"filter '{text}' is not COLUMN OP NUMBER (OP one of < <= > >= == !=), "
            "e.g. 'volume_nm3>1e6'"
        )
    column, operator, value = match.groups()
    try:
        number = float(value)
    except ValueError:
        raise IncasemError(f"filter '{text}': '{value}' is not a number") from None
    return column, operator, number


def apply_filters(table: dict[str, np.ndarray], filters: Sequence[str]) -> dict[str, np.ndarray]:
    """Rows of ``table`` (columns of equal length) that pass every filter expression."""
    keep = np.ones(len(table["id"]), bool)
    for text in filters:
        column, operator, value = parse_filter(text)
        if column not in table:
            raise IncasemError(
                f"filter '{text}': no column '{column}' (columns: {', '.join(table)})"
            )
        with np.errstate(invalid="ignore"):
            keep &= _OPERATORS[operator](table[column], value)
    return {name: values[keep] for name, values in table.items()}


def measure_voxel_size(instances: DatasetRef) -> PhysicalVoxelSize:
    """The voxel size (nm, z, y, x) `measure` computes lengths, areas and volumes with: the
    dataset's ``voxel_size_exact_nm`` where recorded, else its grid's."""
    return physical_voxel_size(instances.container, instances.dataset)


def measure(
    instances: DatasetRef,
    *,
    probabilities: DatasetRef | None = None,
    filters: Sequence[str] = (),
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The per-object table of an instance dataset (0 = background), one row per id.

    Args:
        instances: integer instance ids (e.g. from `connected_components`).
        probabilities: optional probability dataset (same voxel size, containing the ROI) for
            the ``mean_probability`` column.
        filters: expressions like ``"volume_nm3>1e6"``; rows must pass all of them.
        block_edge: block edge in voxels.
        num_workers: worker processes (0: every block in this process).
        progress: show a progress bar.

    Returns columns (numpy arrays, sorted by id): ``id``, ``voxels``, ``volume_nm3``,
    ``centroid_{z,y,x}_nm``, ``bbox_begin_{z,y,x}_nm``, ``bbox_end_{z,y,x}_nm`` (end
    exclusive), ``surface_area_nm2``, ``axis_{major,middle,minor}_nm``, ``eccentricity``,
    ``elongation``, ``sphericity`` and, with probabilities, ``mean_probability``. Positions are
    world nm (z, y, x); lengths, areas and volumes use `measure_voxel_size`; see the module
    docstring for the conventions.
    """
    array = spatial_array(instances)
    if np.dtype(array.dtype).kind not in "iu":
        raise IncasemError(f"{instances}: instance ids must be integers, not {array.dtype}")
    roi, voxel_size = array.roi, array.voxel_size
    physical = measure_voxel_size(instances)
    for text in filters:
        parse_filter(text)
    if probabilities is not None:
        check_probability_dtype(
            probabilities, check_covers(instances, roi, voxel_size, probabilities)
        )
    with scratch_folder(prefix="incasem-measure-") as scratch:
        run_in_blocks(
            _MomentsBlock(
                instances,
                probabilities,
                tuple(roi.offset),
                tuple(voxel_size),
                physical.nm,
                str(scratch),
            ),
            roi,
            None,
            voxel_size,
            block_edge=block_edge,
            num_workers=num_workers,
            name="measure",
            progress=progress,
        )
        parts = load_parts(scratch)
    table = _table(_combine(parts), roi.offset, voxel_size, physical.nm, probabilities is not None)
    return apply_filters(table, filters)


def write_table(
    table: dict[str, np.ndarray], path: str, overwrite: bool = False, parquet: bool = True
) -> list[str]:
    """Write ``table`` as CSV at ``path`` and, if pandas and pyarrow import, as Parquet beside it.

    Both files are written atomically; returns the paths written.
    """
    import csv

    from incasem.atomic import check_new_file, write_atomic

    columns = list(table)
    parquet_path = str(path).rsplit(".", 1)[0] + ".parquet"
    writer_available = parquet and _parquet_available()
    check_new_file(path, overwrite)
    if writer_available:
        check_new_file(parquet_path, overwrite)

    def write_csv(tmp: Any) -> None:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(columns)
            for row in zip(*(table[c] for c in columns), strict=True):
                out.writerow([_cell(v) for v in row])

    written = [str(write_atomic(path, write_csv, overwrite))]
    if writer_available:
        import pandas as pd

        frame = pd.DataFrame(table)
        written.append(str(write_atomic(parquet_path, frame.to_parquet, overwrite)))
    return written


def _cell(value: Any) -> str:
    if isinstance(value, np.integer):
        return str(int(value))
    return repr(float(value)) if np.isfinite(value) else ""


def _parquet_available() -> bool:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
