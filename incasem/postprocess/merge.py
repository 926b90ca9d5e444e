"""One label per voxel from several single-organelle probability maps.

Independent networks (one per organelle, as in ASEM) can each claim a voxel. Merging gives every
voxel at most one class: among the classes whose probability reaches their own threshold, the
highest probability wins (ties go to the class given first), or, with a priority order, the
first class of that order. Voxels claimed by two or more classes are *contested*; their counts
per pair of classes are reported so that a user sees where the networks disagree.

Inputs may come from different runs on different voxel grids of the same volume. The output lies
on the finest grid (the smallest voxel size along each axis) over the intersection of the
inputs' ROIs; coarser inputs are resampled by nearest neighbour, i.e. each output voxel takes
the value of the coarse voxel that contains it. That needs every voxel size to be a whole
multiple of the finest one along each axis (otherwise a fine voxel would straddle two coarse
ones); anything else is refused with one line. Nearest neighbour keeps the stored values (no
interpolated probabilities that no network produced), and thresholds compare the stored uint8
levels or floats exactly as `incasem.postprocess.sources.above_threshold` does.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, default_chunks, format_roi_nm, open_array
from incasem.io.staging import staged_dataset
from incasem.postprocess.partials import load_parts, save_part, scratch_folder
from incasem.postprocess.sources import (
    DatasetRef,
    above_threshold,
    as_probability,
    check_covers,
    check_probability_dtype,
    check_threshold,
    read_filled,
    region_mask,
    spatial_array,
)


@dataclass(frozen=True)
class MergeInput:
    """One organelle's prediction.

    Attributes:
        name: class name, e.g. ``mito``; its label in the output is its position + 1.
        data: probability dataset (uint8 p * 255 or float).
        threshold: probability in [0, 1] the class needs to claim a voxel (p >= threshold).
    """

    name: str
    data: DatasetRef
    threshold: float


def read_on_grid(ref: DatasetRef, roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """``roi`` (nm) of ``ref`` resampled by nearest neighbour onto the finer grid ``voxel_size``.

    The dataset's voxel size must be a whole multiple of ``voxel_size`` along each axis; each
    output voxel gets the value of the dataset voxel containing it (0 outside the dataset).
    """
    source = ref.open().voxel_size
    if source == voxel_size:
        return read_filled(ref, roi)
    factor = source / voxel_size
    coarse = roi.snap_to_grid(source, mode="grow")
    data = read_filled(ref, coarse)
    for axis, f in enumerate(factor):
        data = np.repeat(data, f, axis=axis)
    start = (roi.offset - coarse.offset) / voxel_size
    shape = roi.shape / voxel_size
    return data[tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))]


@dataclass(frozen=True)
class _MergeBlock:
    inputs: tuple[MergeInput, ...]
    order: tuple[int, ...] | None
    masks: tuple[DatasetRef, ...]
    voxel_size: tuple[int, ...]
    container: str
    dataset: str
    parts: str

    def __call__(self, block: Any) -> None:
        roi = block.write_roi
        voxel_size = Coordinate(self.voxel_size)
        raw = [read_on_grid(i.data, roi, voxel_size) for i in self.inputs]
        claims = np.stack(
            [above_threshold(r, i.threshold) for r, i in zip(raw, self.inputs, strict=True)]
        )
        region = region_mask(self.masks, roi)
        if region is not None:
            claims &= region
        claimed = claims.any(axis=0)
        if self.order is None:
            score = np.where(claims, np.stack([as_probability(r) for r in raw]), -1.0)
            winner = np.argmax(score, axis=0)
        else:
            order = np.asarray(self.order)
            winner = order[np.argmax(claims[order], axis=0)]
        labels = np.where(claimed, winner + 1, 0).astype(np.uint8)
        if claimed.any():
            open_array(self.container, self.dataset, "r+")[roi] = labels
        count = len(self.inputs)
        contested = np.zeros((count, count), np.int64)
        for a, b in itertools.combinations(range(count), 2):
            contested[a, b] = np.count_nonzero(claims[a] & claims[b])
        save_part(
            self.parts,
            roi,
            contested=contested,
            multiple=np.int64(np.count_nonzero(claims.sum(axis=0) >= 2)),
            assigned=np.bincount(labels.ravel(), minlength=count + 1).astype(np.int64),
        )


def _output_grid(inputs: Sequence[MergeInput]) -> tuple[Roi, Coordinate]:
    arrays = [spatial_array(i.data) for i in inputs]
    for merge_input, array in zip(inputs, arrays, strict=True):
        check_probability_dtype(merge_input.data, array)
        check_threshold(merge_input.threshold, f"threshold of {merge_input.name}")
    finest = Coordinate(min(sizes) for sizes in zip(*(a.voxel_size for a in arrays), strict=True))
    roi = arrays[0].roi
    for merge_input, array in zip(inputs, arrays, strict=True):
        if not array.voxel_size.is_multiple_of(finest):
            raise IncasemError(
                f"{merge_input.data}: voxel size {list(array.voxel_size)} nm is not a whole "
                f"multiple of the finest input voxel size {list(finest)} nm; nearest-neighbour "
                "resampling needs nested grids (resample it with 'incasem pyramid' first)"
            )
        roi = roi.intersect(array.roi)
    if roi.empty:
        listing = "; ".join(
            f"{i.data}: {format_roi_nm(a.roi)}" for i, a in zip(inputs, arrays, strict=True)
        )
        raise IncasemError(f"the inputs do not overlap ({listing})")
    return roi, finest


def merge(
    inputs: Sequence[MergeInput],
    out_container: str | os.PathLike,
    out_dataset: str,
    *,
    priority: Sequence[str] | None = None,
    masks: Sequence[DatasetRef] = (),
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Merge single-class probability maps into one uint8 label dataset; returns the report.

    Args:
        inputs: one `MergeInput` per class (label = position + 1, 0 = no class).
        out_container: zarr container of the output (created if missing).
        out_dataset: the label dataset, on the finest input grid (nm, z, y, x) over the
            intersection of the inputs' ROIs.
        priority: class names, most important first; a voxel claimed by several classes goes to
            the first of them in this order. None: the highest probability wins (ties: the class
            given first). Must name every class once.
        masks: datasets (on the output grid, containing its ROI) outside which no class is
            assigned.
        block_edge: block edge in voxels.
        num_workers: worker processes (0: every block in this process).
        overwrite: replace an existing output (only once the new one is complete).
        progress: show a progress bar.

    The report holds the classes, thresholds, rule, output grid, voxels assigned per class,
    ``contested_voxels`` (claimed by two or more classes) and ``contested_pairs``
    (``"a/b"`` → voxels claimed by both a and b).
    """
    names = [i.name for i in inputs]
    order = _class_order(names, priority)
    roi, voxel_size = _output_grid(inputs)
    for mask in masks:
        check_covers(inputs[0].data, roi, voxel_size, mask)
    shape = roi.shape / voxel_size
    chunks = default_chunks(shape)
    rule = "priority " + ",".join(priority) if priority else "highest probability"
    description = {
        "classes": names,
        "inputs": {i.name: str(i.data) for i in inputs},
        "thresholds": {i.name: i.threshold for i in inputs},
        "rule": rule,
        "masks": [str(m) for m in masks],
        "voxel_size_nm": list(voxel_size),
        "roi_nm": {"offset": list(roi.offset), "shape": list(roi.shape)},
    }
    attrs = {
        "class_names": ["background", *names],
        "value": "class id (0 = no class above its threshold)",
        "incasem_merge": description,
    }
    finest = next(i.data for i in inputs if spatial_array(i.data).voxel_size == voxel_size)
    attrs |= carried_voxel_size_attrs(finest.container, finest.dataset)
    with (
        scratch_folder(prefix="incasem-merge-") as scratch,
        staged_dataset(
            out_container,
            out_dataset,
            shape,
            voxel_size,
            roi.offset,
            np.uint8,
            chunks,
            overwrite=overwrite,
            attrs=attrs,
        ) as staged,
    ):
        run_in_blocks(
            _MergeBlock(
                tuple(inputs),
                order,
                tuple(masks),
                tuple(voxel_size),
                str(out_container),
                staged.staging_name,
                str(scratch),
            ),
            roi,
            None,
            voxel_size,
            output=staged.array,
            block_edge=block_edge,
            num_workers=num_workers,
            name="merge",
            progress=progress,
        )
        parts = load_parts(scratch)
    return {
        **description,
        "output": f"{Path(out_container)}/{out_dataset}",
        **_counts(parts, names),
    }


def _class_order(names: list[str], priority: Sequence[str] | None) -> tuple[int, ...] | None:
    """Indices of the classes in ``priority`` order (None: highest probability decides);
    raises `IncasemError` for too few or too many inputs, repeated names or a priority that
    does not name every class once."""
    if len(names) < 2:
        raise IncasemError("merge needs at least two inputs (NAME=DATASET)")
    if len(names) > 255:
        raise IncasemError(f"{len(names)} inputs; at most 255 classes fit the uint8 output")
    if len(set(names)) != len(names):
        raise IncasemError(f"class names must differ: {names}")
    if priority is None:
        return None
    if sorted(priority) != sorted(names):
        raise IncasemError(
            f"--priority {','.join(priority)} must name every class once: {','.join(names)}"
        )
    return tuple(names.index(n) for n in priority)


def _counts(parts: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Voxels assigned per class, unassigned, contested, and contested per pair of classes,
    summed over the blocks' parts."""
    contested = sum(p["contested"] for p in parts)
    assigned = sum(p["assigned"] for p in parts)
    return {
        "assigned_voxels": {n: int(assigned[k + 1]) for k, n in enumerate(names)},
        "unassigned_voxels": int(assigned[0]),
        "contested_voxels": int(sum(int(p["multiple"]) for p in parts)),
        "contested_pairs": {
            f"{names[a]}/{names[b]}": int(contested[a, b])
            for a, b in itertools.combinations(range(len(names)), 2)
        },
    }
