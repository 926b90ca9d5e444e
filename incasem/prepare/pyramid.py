"""Scale pyramids: downsampled copies of a dataset for viewing and for coarse models.

Each level is a new sibling dataset ``<dataset>_s1``, ``<dataset>_s2``, ... computed from the
previous level, with the voxel size multiplied by the factors and the ROI shrunk to whole coarse
voxels, so every level lies exactly where the original does in world coordinates. The original
moved the source dataset to ``<dataset>/s0``, which broke every data config that named it; here
the source is left untouched.

Gray values and labels need different reductions: the mean is right for raw data, but averaging
label ids invents ids that exist nowhere (mean of 2 and 4 is 3). Labels therefore use the most
frequent value (``mode``; ties go to the smaller id) or the maximum (``max``: keeps thin objects
alive at coarse levels). ``auto`` picks ``mode`` for integer datasets whose path mentions labels
or masks and for integer dtypes of 32 bits and more, and ``mean`` otherwise. Sizes are in voxels
and positions in nm, axis order z, y, x.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, open_array
from incasem.io.staging import check_new_dataset, staged_dataset

METHODS = ("auto", "mean", "mode", "max")


def choose_method(dataset: str, dtype: Any, method: str = "auto") -> str:
    """The reduction `downsample` uses for ``dataset`` (see the module docstring for ``auto``)."""
    if method not in METHODS:
        raise IncasemError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return "mean"
    is_label_path = any(word in dataset.lower() for word in ("label", "mask"))
    return "mode" if is_label_path or dtype.itemsize >= 4 else "mean"


def downsample(data: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """Reduce each ``factors`` (z, y, x, voxels) box of ``data`` to one voxel.

    ``data``'s shape must be a multiple of ``factors``. ``mean`` rounds to the nearest integer
    for integer dtypes; ``mode`` takes the most frequent value (smallest on ties); ``max`` the
    largest. The result has ``data``'s dtype.
    """
    fz, fy, fx = factors
    nz, ny, nx = (s // f for s, f in zip(data.shape, factors, strict=True))
    boxes = data.reshape(nz, fz, ny, fy, nx, fx).transpose(0, 2, 4, 1, 3, 5)
    boxes = boxes.reshape(nz, ny, nx, fz * fy * fx)
    if method == "max":
        return boxes.max(axis=-1)
    if method == "mode":
        from scipy import stats

        return stats.mode(boxes, axis=-1, keepdims=False).mode.astype(data.dtype)
    mean = boxes.mean(axis=-1)
    if np.issubdtype(data.dtype, np.integer):
        mean = np.round(mean)
    return mean.astype(data.dtype)


@dataclass(frozen=True)
class DownsampleBlock:
    """Writes `downsample` of a block of ``source`` into ``target`` (a blockwise block function).

    Args:
        source_container (str): container of the finer dataset.
        source (str): the finer dataset.
        container (str): container of the coarser dataset.
        target (str): the coarser dataset; its voxel size is ``source``'s times ``factors``.
        factors (tuple of int): downsampling factor per axis (z, y, x).
        method (str): ``mean``, ``mode`` or ``max`` (see `downsample`).
    """

    source_container: str
    source: str
    container: str
    target: str
    factors: tuple[int, int, int]
    method: str

    def __call__(self, block: Any) -> None:
        source = open_array(self.source_container, self.source)
        target = open_array(self.container, self.target, "r+")
        target[block.write_roi] = downsample(source[block.write_roi], self.factors, self.method)


def scale_pyramid(
    container: str | os.PathLike,
    dataset: str,
    factors: Sequence[int] = (2, 2, 2),
    levels: int = 3,
    method: str = "auto",
    out_prefix: str | None = None,
    out_container: str | os.PathLike | None = None,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Write ``levels`` downsampled copies of a 3D dataset; returns their dataset paths.

    Args:
        container: the ``.zarr`` container of ``dataset``.
        dataset: the full-resolution dataset.
        factors: downsampling factor per level, voxels (z, y, x); default 2, 2, 2.
        levels: number of levels to write (level ``i`` has voxel size ``voxel_size * factors**i``).
        method: ``auto``, ``mean``, ``mode`` or ``max`` (see the module docstring).
        out_prefix: level ``i`` is written to ``f"{out_prefix}{i}"``; default
            ``f"{dataset}_s"``.
        out_container: the ``.zarr`` container the levels are written to (created if missing);
            default ``container``. Lets a read-only or shared dataset get levels in a
            container of one's own.
        num_workers: worker processes (0: in this process).
        overwrite: replace existing levels (each only after it is complete).
        progress: show progress bars.
    """
    factors = Coordinate(int(f) for f in factors)
    if factors.dims != 3 or any(f < 1 for f in factors) or levels < 1:
        raise IncasemError(
            f"--factors {list(factors)} and --levels {levels}: need three factors >= 1 and at "
            "least one level"
        )
    source = open_array(container, dataset)
    if source.voxel_size.dims != 3 or len(source.shape) != 3:
        raise IncasemError(f"{container}/{dataset}: need a 3D dataset, not shape {source.shape}")
    method = choose_method(dataset, source.dtype, method)
    prefix = out_prefix or f"{dataset.rstrip('/')}_s"
    outputs = [f"{prefix}{level}" for level in range(1, levels + 1)]
    out_container = str(out_container or container)
    plan = []
    roi, voxel_size = source.roi, source.voxel_size
    for output in outputs:
        voxel_size = voxel_size * factors
        roi = roi.snap_to_grid(voxel_size, mode="shrink")
        if roi.empty:
            raise IncasemError(
                f"{container}/{dataset} ({list(source.roi.shape / source.voxel_size)} voxels) is "
                f"too small for {levels} levels of {list(factors)}; ask for fewer --levels"
            )
        check_new_dataset(out_container, output, overwrite)
        plan.append((output, roi, voxel_size))

    # A block reads about BLOCK_EDGE voxels of the level below along its most reduced axis.
    block_edge = max(1, BLOCK_EDGE // max(factors))
    previous, previous_container = dataset, str(container)
    for level, (output, roi, voxel_size) in enumerate(plan, start=1):
        scale = [f**level for f in factors]
        shape = roi.shape / voxel_size
        chunks = Coordinate(min(c, s) for c, s in zip(source.chunk_shape, shape, strict=True))
        with staged_dataset(
            out_container,
            output,
            shape,
            voxel_size,
            offset=roi.offset,
            dtype=source.dtype,
            chunks=chunks,
            overwrite=overwrite,
            attrs={
                "incasem_downsampled": {
                    "source": previous
                    if previous_container == out_container
                    else f"{previous_container}/{previous}",
                    "factors": list(factors),
                    "method": method,
                }
            }
            | carried_voxel_size_attrs(container, dataset, scale),
        ) as staged:
            run_in_blocks(
                DownsampleBlock(
                    previous_container,
                    previous,
                    out_container,
                    staged.staging_name,
                    tuple(factors),
                    method,
                ),
                roi,
                None,
                voxel_size,
                output=staged.array,
                block_edge=block_edge,
                num_workers=num_workers,
                name=f"pyramid-{output.rsplit('/', 1)[-1]}",
                progress=progress,
            )
        previous, previous_container = output, out_container
    return outputs
