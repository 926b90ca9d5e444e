"""3D CLAHE (contrast limited adaptive histogram equalisation), blockwise and seam-free.

incasem's networks were trained on CLAHE-equalised raw data (kernel 128 voxels, clip limit 0.02,
uint8 output), so new data must be prepared the same way. We use scikit-image's algorithm
(`skimage.exposure.equalize_adapthist`: 2^14 gray levels, histogram clipping and redistribution,
multilinear interpolation between tile mappings) but not its public function, for two reasons:

* **It cannot be run per block without seams.** It rescales intensities by the min and max *of
  the array it is given* (before and after equalising), and its tiles start at the array's first
  voxel; each block would get its own scale and tile grid. The original ran it per 128³ block with
  a 64-voxel context filled with the block mean and had visible seams.
* **Context would be expensive.** Every voxel depends on the histograms of the tiles around it,
  up to 1.5 kernels away; exact blocks would need a full kernel of context on each side (27x the
  work for 128³ blocks).

So the computation is split where the algorithm splits: pass 1 computes each tile's gray-value
mapping (one histogram per 128³ tile, clipped with scikit-image's ``clip_histogram`` and cumulated
with its ``map_histogram``) and stores the small table of mappings; pass 2 maps every voxel by
interpolating between the mappings of its neighbouring tiles, which needs no context at all. Both
passes are blockwise. Intensities are scaled by the dtype's range (uint8: 0..255), not the data's,
and the result (0..2^14-1) is scaled to uint8 by ``round(255 * v / (2^14 - 1))``. The tile grid,
its reflect-padding at the volume's far faces and the float32 accumulation order are those of
scikit-image, so the result equals scikit-image's on an array that spans the dtype's range, up to
that final scaling, and blockwise results equal the single-block result exactly.

Sizes are in voxels, axis order z, y, x.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, open_array
from incasem.io.budget import array_bytes, check_disk
from incasem.io.staging import staged_dataset

#: The original incasem's CLAHE parameters; the published models expect data prepared with them.
DEFAULT_KERNEL_SIZE = 128
DEFAULT_CLIP_LIMIT = 0.02
DEFAULT_NBINS = 256


def _gray_levels() -> int:
    from skimage.exposure._adapthist import NR_OF_GRAY

    return int(NR_OF_GRAY)


def _to_bins(data: np.ndarray, nbins: int) -> np.ndarray:
    """Histogram bin of each voxel, using the dtype's full range (as scikit-image does for an
    image that spans it)."""
    from skimage.exposure import rescale_intensity
    from skimage.util import img_as_uint

    if data.dtype not in (np.uint8, np.uint16):
        raise IncasemError(f"CLAHE needs uint8 or uint16 raw data, not {data.dtype}")
    levels = _gray_levels()
    gray = np.round(
        rescale_intensity(img_as_uint(data), in_range="dtype", out_range=(0, levels - 1))
    ).astype(np.uint16)
    return gray // np.uint16(1 + levels // nbins)


def _tile_source_indices(size: int, kernel: int) -> np.ndarray:
    """For each tile along one axis, the voxel indices it covers (tiles, kernel).

    Tiles start at voxel 0; the last tile reaches past the volume and is filled by reflection,
    exactly as scikit-image pads the image before cutting it into tiles.
    """
    pad_start = kernel // 2
    pad_end = (kernel - size % kernel) % kernel + math.ceil(kernel / 2)
    padded = np.pad(np.arange(size), (pad_start, pad_end), mode="reflect")
    tiles = math.ceil(size / kernel)
    return padded[pad_start : pad_start + tiles * kernel].reshape(tiles, kernel)


def tile_mappings(
    bins: np.ndarray, kernel: Sequence[int], clip_limit: float, nbins: int
) -> np.ndarray:
    """Gray-level mapping of each tile from its voxels' bins.

    Args:
        bins: (tz * kz, ty * ky, tx * kx) bins of whole tiles, z, y, x.
        kernel: tile shape in voxels (z, y, x).
        clip_limit: normalised clip limit (0: no clipping).
        nbins: histogram bins.

    Returns (tz, ty, tx, nbins) mappings to 0..2^14-1 (uint16).
    """
    from skimage.exposure._adapthist import clip_histogram, map_histogram

    kz, ky, kx = kernel
    tz, ty, tx = bins.shape[0] // kz, bins.shape[1] // ky, bins.shape[2] // kx
    per_tile = (
        bins.reshape(tz, kz, ty, ky, tx, kx).transpose(0, 2, 4, 1, 3, 5).reshape(-1, kz * ky * kx)
    )
    elements = kz * ky * kx
    rows = np.arange(per_tile.shape[0])[:, None] * nbins
    hist = np.bincount((per_tile + rows).ravel(), minlength=per_tile.shape[0] * nbins)
    hist = hist.reshape(-1, nbins)
    limit = int(np.clip(clip_limit * elements, 1, None)) if clip_limit > 0 else elements
    hist = np.apply_along_axis(clip_histogram, -1, hist, clip_limit=limit)
    mapped = map_histogram(hist, 0, _gray_levels() - 1, elements)
    return mapped.astype(np.uint16).reshape(tz, ty, tx, nbins)


def _neighbours(begin: int, end: int, kernel: int, tiles: int) -> tuple[np.ndarray, ...]:
    """Per voxel in [begin, end) along one axis: lower and upper tile and their weights."""
    shifted = np.arange(begin, end) + kernel // 2
    cell = shifted // kernel
    upper_weight = (shifted % kernel) / kernel
    lower = np.clip(cell - 1, 0, tiles - 1)
    upper = np.clip(cell, 0, tiles - 1)
    return lower, upper, 1 - upper_weight, upper_weight


def apply_mappings(
    bins: np.ndarray, begin: Sequence[int], maps: Any, kernel: Sequence[int]
) -> np.ndarray:
    """Equalised uint8 values of a box of voxels, interpolated between tile mappings.

    Args:
        bins: histogram bins of the box's voxels (z, y, x).
        begin: the box's first voxel within the volume (z, y, x).
        maps: all tiles' mappings, (tiles z, tiles y, tiles x, nbins); only the tiles next to
            the box are read (so a zarr array works).
        kernel: tile shape in voxels (z, y, x).
    """
    tiles = maps.shape[:3]
    axes = [
        _neighbours(b, b + s, k, t)
        for b, s, k, t in zip(begin, bins.shape, kernel, tiles, strict=True)
    ]
    first = [int(lower.min()) for lower, *_ in axes]
    last = [int(upper.max()) + 1 for _, upper, *_ in axes]
    local = np.asarray(maps[first[0] : last[0], first[1] : last[1], first[2] : last[2]])
    result = np.zeros(bins.shape, dtype=np.float32)
    # Same corner order, weight product order (x, y, z) and float32 accumulation as scikit-image.
    for corner in itertools.product((0, 1), repeat=3):
        index, weight = [], []
        for axis, (lower, upper, lower_weight, upper_weight) in enumerate(axes):
            index.append((upper if corner[axis] else lower) - first[axis])
            weight.append(upper_weight if corner[axis] else lower_weight)
        w = (weight[2][None, None, :] * weight[1][None, :, None]) * weight[0][:, None, None]
        mapped = local[
            index[0][:, None, None], index[1][None, :, None], index[2][None, None, :], bins
        ]
        result += (mapped * w).astype(np.float32)
    levels = result.astype(np.uint16)
    return np.round(levels * (255.0 / (_gray_levels() - 1))).astype(np.uint8)


def equalize_array(
    data: np.ndarray,
    kernel_size: int | Sequence[int] = DEFAULT_KERNEL_SIZE,
    clip_limit: float = DEFAULT_CLIP_LIMIT,
    nbins: int = DEFAULT_NBINS,
) -> np.ndarray:
    """CLAHE of a whole (z, y, x) uint8/uint16 array in memory; uint8 result.

    The in-memory reference for `equalize`: both passes on one block. ``kernel_size`` is in
    voxels (one number or z, y, x).
    """
    kernel = _kernel(kernel_size)
    indices = [_tile_source_indices(s, k).ravel() for s, k in zip(data.shape, kernel, strict=True)]
    bins = _to_bins(data, nbins)
    maps = tile_mappings(bins[np.ix_(*indices)], kernel, clip_limit, nbins)
    return apply_mappings(bins, (0, 0, 0), maps, kernel)


def _kernel(kernel_size: int | Sequence[int]) -> tuple[int, int, int]:
    kernel = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(kernel) != 3 or any(int(k) < 1 for k in kernel):
        raise IncasemError(f"--kernel-size {list(kernel)}: need 1 or 3 positive sizes (voxels)")
    return tuple(int(k) for k in kernel)


@dataclass(frozen=True)
class _TileMappingBlock:
    """Pass 1: mappings of the tiles whose first voxels lie in the block."""

    container: str
    dataset: str
    maps_path: str
    kernel: tuple[int, int, int]
    clip_limit: float
    nbins: int

    def __call__(self, block: Any) -> None:
        import zarr

        raw = open_array(self.container, self.dataset)
        begin = (block.write_roi.offset - raw.roi.offset) / raw.voxel_size
        end = begin + block.write_roi.shape / raw.voxel_size
        shape = raw.roi.shape / raw.voxel_size
        first = [b // k for b, k in zip(begin, self.kernel, strict=True)]
        last = [
            min(math.ceil(e / k), math.ceil(s / k))
            for e, k, s in zip(end, self.kernel, shape, strict=True)
        ]
        indices = [
            _tile_source_indices(s, k)[start:stop].ravel()
            for s, k, start, stop in zip(shape, self.kernel, first, last, strict=True)
        ]
        low = [int(i.min()) for i in indices]
        box = Roi(
            raw.roi.offset + Coordinate(low) * raw.voxel_size,
            Coordinate(int(i.max()) + 1 - lo for i, lo in zip(indices, low, strict=True))
            * raw.voxel_size,
        )
        data = raw[box][np.ix_(*[i - lo for i, lo in zip(indices, low, strict=True)])]
        maps = tile_mappings(_to_bins(data, self.nbins), self.kernel, self.clip_limit, self.nbins)
        out = zarr.open(self.maps_path, mode="r+")
        out[first[0] : last[0], first[1] : last[1], first[2] : last[2]] = maps


@dataclass(frozen=True)
class _MapVoxelsBlock:
    """Pass 2: equalised values of the block's voxels."""

    container: str
    dataset: str
    out_dataset: str
    maps_path: str
    kernel: tuple[int, int, int]
    nbins: int

    def __call__(self, block: Any) -> None:
        import zarr

        raw = open_array(self.container, self.dataset)
        out = open_array(self.container, self.out_dataset, "r+")
        begin = (block.write_roi.offset - raw.roi.offset) / raw.voxel_size
        bins = _to_bins(raw[block.write_roi], self.nbins)
        maps = zarr.open(self.maps_path, mode="r")
        out[block.write_roi] = apply_mappings(bins, begin, maps, self.kernel)


def equalize(
    container: str | os.PathLike,
    dataset: str,
    out_dataset: str | None = None,
    kernel_size: int | Sequence[int] = DEFAULT_KERNEL_SIZE,
    clip_limit: float = DEFAULT_CLIP_LIMIT,
    nbins: int = DEFAULT_NBINS,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    block_edge: int = BLOCK_EDGE,
) -> str:
    """CLAHE-equalise a uint8/uint16 dataset into a new uint8 dataset; returns its path.

    Args:
        container: the ``.zarr`` container; the output is written into it.
        dataset: raw dataset, e.g. ``volumes/raw``.
        out_dataset: output dataset; default ``<dataset>_equalized_<clip_limit>`` (the
            original's ``volumes/raw_equalized_0.02``).
        kernel_size: tile edge in voxels, one number or (z, y, x); default 128.
        clip_limit: normalised clip limit in [0, 1] (0: plain adaptive equalisation); default
            0.02.
        nbins: histogram bins; default 256.
        num_workers: worker processes (0: in this process).
        overwrite: replace an existing output (only after the new one is complete).
        progress: show progress bars.
        block_edge: voxels per axis of a pass-2 write block (rounded up to a multiple of the
            chunks; a pass-1 block holds about twice as many voxels per axis in whole tiles);
            default `incasem.blockwise.BLOCK_EDGE`.

    The output has the input's ROI (nm), voxel size and chunks.
    """
    import zarr

    kernel = _kernel(kernel_size)
    if not 0 <= clip_limit <= 1:
        raise IncasemError(f"--clip-limit {clip_limit} must lie in [0, 1]")
    raw = open_array(container, dataset)
    if raw.voxel_size.dims != 3 or len(raw.shape) != 3:
        raise IncasemError(f"{container}/{dataset}: CLAHE needs a 3D dataset, not {raw.shape}")
    if np.dtype(raw.dtype) not in (np.uint8, np.uint16):
        raise IncasemError(
            f"{container}/{dataset}: CLAHE needs uint8 or uint16 raw data, not {raw.dtype}"
        )
    out_dataset = out_dataset or f"{dataset.rstrip('/')}_equalized_{clip_limit:g}"
    shape = raw.roi.shape / raw.voxel_size
    tiles = [math.ceil(s / k) for s, k in zip(shape, kernel, strict=True)]
    tiles_per_block = [max(1, block_edge * 2 // k) for k in kernel]
    check_disk(
        f"equalize {container}/{dataset}",
        container,
        array_bytes(shape, np.uint8) + array_bytes((*tiles, nbins), np.uint16),
    )

    with staged_dataset(
        container,
        out_dataset,
        shape,
        raw.voxel_size,
        offset=raw.roi.offset,
        dtype=np.uint8,
        chunks=raw.chunk_shape,
        overwrite=overwrite,
        attrs={
            "incasem_clahe": {
                "source": dataset,
                "kernel_size_voxels": list(kernel),
                "clip_limit": clip_limit,
                "nbins": nbins,
            }
        }
        | carried_voxel_size_attrs(container, dataset),
    ) as staged:
        scratch = Path(tempfile.mkdtemp(prefix=".incasem-clahe-", dir=staged.container.parent))
        try:
            maps_path = str(scratch / "tile_mappings.zarr")
            zarr.open(
                maps_path,
                mode="w",
                shape=(*tiles, nbins),
                chunks=(*tiles_per_block, nbins),
                dtype=np.uint16,
            )
            tile_block = Coordinate(t * k for t, k in zip(tiles_per_block, kernel, strict=True))
            run_in_blocks(
                _TileMappingBlock(str(container), dataset, maps_path, kernel, clip_limit, nbins),
                Roi(raw.roi.offset, Coordinate(tiles) * Coordinate(kernel) * raw.voxel_size),
                tile_block,
                raw.voxel_size,
                num_workers=num_workers,
                name="clahe-tiles",
                progress=progress,
            )
            run_in_blocks(
                _MapVoxelsBlock(
                    str(container), dataset, staged.staging_name, maps_path, kernel, nbins
                ),
                staged.array.roi,
                None,
                raw.voxel_size,
                output=staged.array,
                block_edge=block_edge,
                num_workers=num_workers,
                name="clahe-voxels",
                progress=progress,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return f"{container}/{out_dataset}"
