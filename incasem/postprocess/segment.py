"""Probability map → binary segmentation, masked, block by block.

Thresholding is voxel-local, so blocks need no context and the blockwise result is the
whole-volume result. The output is a new uint8 dataset (``value`` where p >= threshold inside
every mask, 0 elsewhere) with the ROI and voxel size of the probabilities, staged so that an
interrupted run leaves no half-written segmentation under the final name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, default_chunks, open_array
from incasem.io.staging import staged_dataset
from incasem.postprocess.cleanup import MAX_VOXELS, NO_POST_PROCESSING, PostProcessing
from incasem.postprocess.sources import BinarySource, region_mask


@dataclass(frozen=True)
class _Threshold:
    source: BinarySource
    container: str
    dataset: str
    value: int

    def __call__(self, block: Any) -> None:
        foreground = self.source.read(block.write_roi)
        if foreground.any():
            out = open_array(self.container, self.dataset, "r+")
            out[block.write_roi] = np.where(foreground, np.uint8(self.value), np.uint8(0))


def segment(
    source: BinarySource,
    out_container: str | os.PathLike,
    out_dataset: str,
    *,
    value: int = 1,
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    post_processing: PostProcessing = NO_POST_PROCESSING,
) -> str:
    """Write ``value`` where ``source`` is True (p >= threshold, inside the masks), else 0.

    ``post_processing`` (hole filling, minimum object size in nm³) then runs once on the whole
    segmentation, in memory (objects span blocks), before it takes its final name; filled holes
    stay inside the masks.

    Args:
        source: probabilities with a threshold (or labels) and masks.
        out_container: zarr container of the output (created if missing).
        out_dataset: the uint8 output dataset; same ROI and voxel size (nm, z, y, x) as the
            source's data.
        value: the foreground value, 1..255.
        block_edge: write block edge in voxels (rounded up to a multiple of the chunks).
        num_workers: worker processes (0: every block in this process).
        overwrite: replace an existing output (only once the new one is complete).
        progress: show a progress bar.
        post_processing: what to do after thresholding (default: nothing).

    Returns ``container/dataset`` of the output.
    """
    if not 1 <= value <= 255:
        raise IncasemError(f"--value {value} must lie in 1..255")
    roi, voxel_size = source.check()
    shape = roi.shape / voxel_size
    if post_processing.active and int(np.prod(shape)) > MAX_VOXELS:
        raise IncasemError(
            f"{source.data.container}/{source.data.dataset}: {int(np.prod(shape)):,} voxels are "
            f"too many to post-process in memory (at most {MAX_VOXELS:,}); crop it or drop "
            "--fill-holes and --min-object-nm3"
        )
    chunks = default_chunks(shape)
    attrs = {"incasem_segment": {**source.describe(), "value": value}}
    if post_processing.active:
        attrs["post_processing"] = post_processing.describe()
    attrs |= carried_voxel_size_attrs(source.data.container, source.data.dataset)
    with staged_dataset(
        out_container,
        out_dataset,
        shape,
        voxel_size,
        roi.offset,
        np.uint8,
        chunks,
        overwrite=overwrite,
        attrs=attrs,
    ) as staged:
        run_in_blocks(
            _Threshold(source, str(out_container), staged.staging_name, value),
            roi,
            None,
            voxel_size,
            output=staged.array,
            block_edge=block_edge,
            num_workers=num_workers,
            name="segment",
            progress=progress,
        )
        if post_processing.active:
            out = staged.array
            cleaned = post_processing.apply(out[out.roi] > 0, voxel_size)
            region = region_mask(source.masks, out.roi)
            if region is not None:  # filled holes stay inside the masks
                cleaned &= region
            out[out.roi] = np.where(cleaned, np.uint8(value), np.uint8(0))
    return f"{Path(out_container)}/{out_dataset}"
