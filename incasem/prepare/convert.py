"""Copy any readable volume (image stack, HDF5, N5, OME-Zarr) into a new zarr dataset, blockwise.

All importers share this one writer so that they share its guarantees:

* **Bounded memory.** Blocks are chunk-aligned boxes whose size is capped in bytes
  (``max_block_mb``), not whole volumes or whole slabs of full slices, so a stack of hundreds of
  GB converts with a few hundred MB per worker. Blocks span the full width (x) when the cap
  allows, because image files are stored row by row and a narrower block would decode the same
  rows again for every block.
* **No half-written outputs.** The dataset is staged (`incasem.io.staging`) and only gets its
  name once every block succeeded.
* **Explicit dtype rules.** Conversions never wrap around silently: ``uint16`` -> ``uint8`` is the
  intensity rescaling the original used for OpenOrganelle raw data (divide by 256); widening is
  exact; any other narrowing is checked block by block and refused with the block's ROI if a value
  does not fit.

Sizes are in voxels and positions in nm, axis order z, y, x.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from funlib.geometry import Coordinate

from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import default_chunks, open_array
from incasem.io.staging import staged_dataset
from incasem.prepare.hdf5 import Hdf5Volume
from incasem.prepare.n5_ome_zarr import ZarrVolume
from incasem.prepare.stacks import SliceStack

#: Default cap on the voxels (in MB of the larger of input and output dtype) one block holds.
DEFAULT_BLOCK_MB = 256


class VolumeSource(Protocol):
    """Anything `import_volume` can copy: a description of a 3D volume on disk (paths and
    numbers). Worker processes rebuild `SliceStack`, `Hdf5Volume` and `ZarrVolume` from JSON;
    another source is copied with ``num_workers=0``."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume shape in voxels (z, y, x)."""

    @property
    def dtype(self) -> np.dtype:
        """dtype of what `read` returns."""

    @property
    def name(self) -> str:
        """Where it comes from, for messages and provenance."""

    def read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Voxels ``[z, y, x]`` as a (z, y, x) array."""


def convert_dtype(data: np.ndarray, dtype: Any) -> np.ndarray:
    """Convert voxel values to ``dtype`` without silent wrap-around.

    ``uint16`` -> ``uint8`` divides by 256 (keeps the upper 8 bits: intensity rescaling of 16-bit
    EM images). Conversions that preserve every value (same dtype, widening, integer to float)
    are plain casts. Any other conversion is checked and raises `IncasemError` if a value would
    change (e.g. a label id above 255 into ``uint8``, a fraction into an integer type).
    """
    dtype = np.dtype(dtype)
    if data.dtype == dtype:
        return data
    if data.dtype == np.uint16 and dtype == np.uint8:
        return (data >> 8).astype(np.uint8)
    if np.can_cast(data.dtype, dtype, casting="safe"):
        return data.astype(dtype)
    converted = data.astype(dtype)
    if not np.array_equal(converted.astype(data.dtype), data):
        low, high = data.min(), data.max()
        raise IncasemError(
            f"values {low}..{high} ({data.dtype}) do not fit {dtype}; choose a wider --dtype"
        )
    return converted


def invert_values(data: np.ndarray) -> np.ndarray:
    """``max - value`` for unsigned integer data (e.g. 255 - v for uint8), as the original did
    for microscopes that record dark membranes as bright."""
    if not np.issubdtype(data.dtype, np.unsignedinteger):
        raise IncasemError(f"--invert needs unsigned integer data, not {data.dtype}")
    return np.iinfo(data.dtype).max - data


def copy_block_shape(
    shape: Sequence[int], chunks: Sequence[int], itemsize: int, max_block_mb: float
) -> Coordinate:
    """Write block (voxels, z, y, x) for copying: chunk-aligned, at most ``max_block_mb``.

    Starts from one chunk, widens x up to the whole width, then grows y, staying under the cap
    (never below one chunk).
    """
    budget = max_block_mb * 2**20 / itemsize
    cz, cy, cx = (int(c) for c in chunks)
    full_x = math.ceil(shape[2] / cx) * cx
    bx = full_x if cz * cy * full_x <= budget else max(cx, int(budget // (cz * cy)) // cx * cx)
    full_y = math.ceil(shape[1] / cy) * cy
    by = max(cy, min(full_y, int(budget // (cz * bx)) // cy * cy))
    return Coordinate((cz, by, bx))


@dataclass(frozen=True)
class _CopyBlock:
    source: SliceStack | Hdf5Volume | ZarrVolume  # the sources a worker rebuilds from JSON
    container: str
    dataset: str
    dtype: str
    invert: bool

    def __call__(self, block: Any) -> None:
        out = open_array(self.container, self.dataset, "r+")
        begin = (block.write_roi.offset - out.roi.offset) / out.voxel_size
        end = begin + block.write_roi.shape / out.voxel_size
        box = [slice(b, e) for b, e in zip(begin, end, strict=True)]
        data = convert_dtype(self.source.read(*box), self.dtype)
        if self.invert:
            data = invert_values(data)
        out[block.write_roi] = data


def import_volume(
    source: VolumeSource,
    container: str | os.PathLike,
    dataset: str,
    voxel_size: Sequence[int],
    offset: Sequence[int] | None = None,
    dtype: Any = None,
    chunks: Sequence[int] | None = None,
    invert: bool = False,
    num_workers: int = 1,
    overwrite: bool = False,
    max_block_mb: float = DEFAULT_BLOCK_MB,
    progress: bool = True,
    exact_voxel_size: Sequence[float] | None = None,
) -> str:
    """Write ``source`` into a new zarr dataset, blockwise; returns ``container/dataset``.

    Args:
        source: the volume to copy (`incasem.prepare.stacks.SliceStack`,
            `incasem.prepare.hdf5.Hdf5Volume`, `incasem.prepare.n5_ome_zarr.ZarrVolume`).
        container: output ``.zarr`` container (created if missing).
        dataset: output dataset path, e.g. ``volumes/raw``.
        voxel_size: nm, z, y, x.
        offset: world position of the first voxel in nm, z, y, x (default 0); a multiple of
            ``voxel_size``.
        dtype: output dtype (default: the source's); see `convert_dtype` for the rules.
        chunks: chunk shape in voxels (default `incasem.io.default_chunks`).
        invert: store ``max - value`` (unsigned integer output only).
        num_workers: worker processes (0: in this process).
        overwrite: replace an existing dataset (only after the new one is complete).
        max_block_mb: cap on one block's size in MB; memory per worker is about this plus one
            decoded slice.
        progress: show a progress bar.
        exact_voxel_size: the voxel size (nm, z y x) as measured, when ``voxel_size`` is its
            rounding to whole nm; kept in the attribute ``voxel_size_exact_nm``.
    """
    shape = tuple(int(s) for s in source.shape)
    out_dtype = np.dtype(dtype if dtype is not None else source.dtype)
    if invert and not np.issubdtype(out_dtype, np.unsignedinteger):
        raise IncasemError(f"--invert needs an unsigned integer output dtype, not {out_dtype}")
    chunks = tuple(int(c) for c in chunks) if chunks is not None else default_chunks(shape)
    if len(chunks) != 3 or any(c <= 0 for c in chunks):
        raise IncasemError(f"--chunks {list(chunks)}: need three positive sizes (z, y, x)")
    itemsize = max(out_dtype.itemsize, np.dtype(source.dtype).itemsize)
    block_shape = copy_block_shape(shape, chunks, itemsize, max_block_mb)
    with staged_dataset(
        container,
        dataset,
        shape,
        voxel_size,
        offset=offset,
        dtype=out_dtype,
        chunks=chunks,
        overwrite=overwrite,
        attrs={"incasem_source": source.name}
        | ({"voxel_size_exact_nm": list(exact_voxel_size)} if exact_voxel_size else {}),
    ) as staged:
        run_in_blocks(
            _CopyBlock(source, str(staged.container), staged.staging_name, out_dtype.str, invert),
            staged.array.roi,
            block_shape,
            staged.array.voxel_size,
            output=staged.array,
            num_workers=num_workers,
            name=f"convert-{dataset.strip('/').replace('/', '-')}",
            progress=progress,
        )
    return f"{container}/{dataset}"
