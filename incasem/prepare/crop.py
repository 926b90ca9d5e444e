"""Cut a box out of one or more datasets into another container, keeping world positions.

Annotated blocks are small parts of large cells; sharing or training on them should not require
copying the whole cell. A crop keeps each voxel's world position (the new dataset's offset is the
box's offset), so data configs, predictions and other crops still line up with it. The box is
given like a data config ROI: offset and shape in voxels of the first dataset (world position /
voxel size); datasets with another voxel size are cut at the same world box, which must lie on
their voxel grid. Parts of the box outside a dataset are filled with zeros, so a crop can also pad.
Sizes are in voxels and positions in nm, axis order z, y, x.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import (
    carried_voxel_size_attrs,
    default_chunks,
    open_array,
    roi_from_voxels,
    roi_to_voxels,
)
from incasem.io.arrays import read_padded
from incasem.io.roi import format_roi_nm
from incasem.io.staging import check_new_dataset, staged_dataset


@dataclass(frozen=True)
class _CopyPadded:
    container: str
    dataset: str
    out_container: str
    out_dataset: str

    def __call__(self, block: Any) -> None:
        source = open_array(self.container, self.dataset)
        target = open_array(self.out_container, self.out_dataset, "r+")
        target[block.write_roi] = read_padded(source, block.write_roi)


def crop(
    container: str | os.PathLike,
    datasets: Sequence[str],
    out_container: str | os.PathLike,
    offset: Sequence[int],
    shape: Sequence[int],
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Copy the box ``offset``/``shape`` of each dataset into ``out_container`` (same names).

    Args:
        container: the source ``.zarr`` (or ``.n5``) container.
        datasets: datasets to crop, e.g. ``["volumes/raw", "volumes/labels/mito"]``.
        out_container: the ``.zarr`` container to write to (created if missing); must differ
            from ``container``.
        offset: box start in voxels of the first dataset (z, y, x), i.e. world position in nm
            divided by its voxel size, as in data configs.
        shape: box size in voxels of the first dataset (z, y, x).
        num_workers: worker processes (0: in this process).
        overwrite: replace existing datasets in ``out_container`` (each only when complete).
        progress: show progress bars.

    Returns the written ``out_container/dataset`` paths.
    """
    if Path(out_container).resolve() == Path(container).resolve():
        raise IncasemError(
            f"{out_container}: crops keep their dataset names, so write them to another container"
        )
    if not datasets:
        raise IncasemError("name at least one dataset to crop")
    if len(offset) != 3 or len(shape) != 3 or any(s <= 0 for s in shape):
        raise IncasemError(
            f"--offset {list(offset)} --shape {list(shape)}: need three numbers each (z, y, x), "
            "shape positive"
        )
    sources = [open_array(container, d) for d in datasets]
    box = roi_from_voxels(offset, shape, sources[0].voxel_size)
    plans = []
    for dataset, source in zip(datasets, sources, strict=True):
        if source.voxel_size.dims != 3:
            raise IncasemError(f"{container}/{dataset}: need 3 spatial axes")
        try:
            _, voxels = roi_to_voxels(box, source.voxel_size)
        except IncasemError as e:
            raise IncasemError(f"{container}/{dataset}: {e}") from None
        if box.intersect(source.roi).empty:
            raise IncasemError(
                f"{container}/{dataset}: the box {format_roi_nm(box)} lies entirely outside the "
                f"dataset ({format_roi_nm(source.roi)})"
            )
        check_new_dataset(out_container, dataset, overwrite)
        plans.append((dataset, source, voxels))

    written = []
    for dataset, source, voxels in plans:
        channels = source.shape[: -source.voxel_size.dims]
        spatial_chunks = source.chunk_shape[-3:]
        chunks = tuple(min(c, s) for c, s in zip(spatial_chunks, voxels, strict=True))
        chunks = chunks if all(c > 0 for c in chunks) else default_chunks(voxels)
        with staged_dataset(
            out_container,
            dataset,
            voxels,
            source.voxel_size,
            offset=box.offset,
            dtype=source.dtype,
            chunks=chunks,
            num_channels=channels[0] if channels else None,
            overwrite=overwrite,
            attrs={"incasem_crop": {"source": f"{container}/{dataset}"}}
            | carried_voxel_size_attrs(container, dataset),
        ) as staged:
            run_in_blocks(
                _CopyPadded(str(container), dataset, str(out_container), staged.staging_name),
                box,
                None,
                source.voxel_size,
                output=staged.array,
                num_workers=num_workers,
                name="crop",
                progress=progress,
            )
        written.append(f"{out_container}/{dataset}")
    return written
