"""Write a zarr dataset as a directory of 2D TIFFs (``section_0000.tif`` ...) for ImageJ/Fiji.

Slices of a large volume are bigger than what one worker should hold, and a TIFF file is normally
written front to back in one go. We therefore first create every slice as an uncompressed TIFF of
the final size (tifffile's memory-mapped files: a header plus a contiguous, initially sparse image)
and then let blockwise workers write their rows straight into those files. Blocks never overlap,
so workers writing different rows of the same file do not conflict, and memory stays at one block
per worker. The files are written into a hidden sibling directory that is renamed to the requested
name only after every block succeeded.

Values are written unchanged (uint8, uint16, uint32, float32 ... ), so a TIFF -> zarr -> TIFF round
trip is exact. Two conversions are available on request: ``binarize`` (nonzero -> 255, uint8, for
viewing label ids as a mask) and ``float_to_uint8`` (probabilities in [0, 1] -> round(255 p),
refused if a value lies outside [0, 1]). Boolean datasets become uint8 0/255. uint8, uint16 and
float32 files carry ImageJ metadata with the voxel size in nm; other dtypes store the in-plane
pixel size as TIFF resolution tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

from incasem.atomic import atomic_folder, check_new_file
from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.prepare.convert import DEFAULT_BLOCK_MB, copy_block_shape

_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def section_name(index: int, end: int) -> str:
    """File name of world section ``index`` (z in voxels of the world grid, i.e. offset / voxel
    size) of a stack whose sections end before ``end``: ``section_0007.tif``; zero-padded to at
    least 4 digits and to the width of the largest index, so that sorting by name and by number
    agree."""
    width = max(4, len(str(max(end - 1, 0))))
    return f"section_{index:0{width}d}.tif"


def _output_dtype(dtype: np.dtype, binarize: bool, float_to_uint8: bool) -> np.dtype:
    if binarize or dtype == np.bool_:
        return np.dtype(np.uint8)
    if float_to_uint8:
        if not np.issubdtype(dtype, np.floating):
            raise IncasemError(f"--float-to-uint8 applies to float datasets, not {dtype}")
        return np.dtype(np.uint8)
    return dtype


def _to_output(data: np.ndarray, binarize: bool, float_to_uint8: bool) -> np.ndarray:
    if binarize or data.dtype == np.bool_:
        return np.where(data != 0, np.uint8(255), np.uint8(0))
    if float_to_uint8:
        if data.size and (np.isnan(data).any() or data.min() < 0 or data.max() > 1):
            raise IncasemError(
                f"values {data.min()}..{data.max()} are not probabilities in [0, 1]; "
                "write float TIFFs instead (omit --float-to-uint8)"
            )
        return np.round(data * 255).astype(np.uint8)
    return data


def _tiff_options(dtype: np.dtype, voxel_size: Coordinate) -> dict[str, Any]:
    vz, vy, vx = (int(v) for v in voxel_size)
    if dtype in _IMAGEJ_DTYPES:
        return {
            "imagej": True,
            "resolution": (1 / vx, 1 / vy),
            "metadata": {"spacing": vz, "unit": "nm"},
        }
    return {"resolution": (1e7 / vx, 1e7 / vy), "resolutionunit": "CENTIMETER"}


@dataclass(frozen=True)
class _WriteRows:
    container: str
    dataset: str
    channel: int | None
    directory: str
    first: int
    end: int
    binarize: bool
    float_to_uint8: bool

    def __call__(self, block: Any) -> None:
        import tifffile

        array = open_array(self.container, self.dataset)
        data = array[block.write_roi]
        if self.channel is not None:
            data = data[self.channel]
        data = _to_output(data, self.binarize, self.float_to_uint8)
        z0, y0, x0 = (block.write_roi.offset - array.roi.offset) / array.voxel_size
        for i, section in enumerate(data):
            path = Path(self.directory) / section_name(self.first + z0 + i, self.end)
            image = tifffile.memmap(path, mode="r+")
            image[y0 : y0 + section.shape[0], x0 : x0 + section.shape[1]] = section
            image.flush()
            del image


def export_tiff_stack(
    container: str | os.PathLike,
    dataset: str,
    output_dir: str | os.PathLike,
    channel: int | None = None,
    binarize: bool = False,
    float_to_uint8: bool = False,
    num_workers: int = 1,
    overwrite: bool = False,
    max_block_mb: float = DEFAULT_BLOCK_MB,
    progress: bool = True,
) -> int:
    """Write every z section of a dataset as ``output_dir/section_NNNN.tif``, NNNN the section's
    world z in voxels (the dataset's z offset / z voxel size + its index), so that sections of a
    crop keep the numbers of the volume they came from; returns the count.

    Args:
        container: the ``.zarr`` (or ``.n5``) container.
        dataset: the dataset, e.g. ``volumes/raw`` or ``volumes/predictions/mito``.
        output_dir: directory to create; sections are numbered by world z (voxels): a dataset at
            z offset 200 nm with 10 nm sections starts at ``section_0020.tif``.
        channel: for datasets with a leading channel axis (e.g. one probability per class),
            which channel to write.
        binarize: write ``255`` where the value is nonzero, else ``0`` (uint8).
        float_to_uint8: write float values in [0, 1] as ``round(255 * value)`` (uint8).
        num_workers: worker processes (0: in this process).
        overwrite: replace an existing ``output_dir`` (only after the new one is complete).
        max_block_mb: cap on one block's size in MB.
        progress: show a progress bar.
    """
    import tifffile

    check_new_file(output_dir, overwrite)  # before any work
    array = open_array(container, dataset)
    channels = array.shape[: -array.voxel_size.dims]
    if channels and channel is None:
        raise IncasemError(
            f"{container}/{dataset} has {channels[0]} channels; pass --channel N to choose one"
        )
    if channel is not None and not (channels and 0 <= channel < channels[0]):
        raise IncasemError(f"{container}/{dataset}: no channel {channel} (shape {array.shape})")
    shape = array.shape[-3:]
    first = array.roi.offset[0] // array.voxel_size[0]
    end = first + shape[0]
    dtype = _output_dtype(np.dtype(array.dtype), binarize, float_to_uint8)
    options = _tiff_options(dtype, array.voxel_size)

    with atomic_folder(output_dir, overwrite) as staging:
        staging.mkdir()
        for z in range(shape[0]):
            image = tifffile.memmap(
                staging / section_name(first + z, end), shape=shape[1:], dtype=dtype, **options
            )
            del image
        chunks = array.chunk_shape[-3:]
        itemsize = max(dtype.itemsize, np.dtype(array.dtype).itemsize)
        block_shape = copy_block_shape(shape, chunks, itemsize, max_block_mb)
        run_in_blocks(
            _WriteRows(
                str(container),
                dataset,
                channel,
                str(staging),
                first,
                end,
                binarize,
                float_to_uint8,
            ),
            array.roi,
            block_shape,
            array.voxel_size,
            num_workers=num_workers,
            name="zarr-to-tiff",
            progress=progress,
        )
    return int(shape[0])
