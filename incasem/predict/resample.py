"""Prediction at the data's voxel size with a model trained at a coarser one.

A model trained at 10 nm predicts 5 nm data (any whole factor per axis) in three blockwise
passes, each seam-free, so the user needs no ``pyramid``, no second prediction command and no
upsampling code of their own:

1. **Input.** The raw is averaged to the model's voxel size by `incasem pyramid`'s own block
   function (`incasem.prepare.pyramid.DownsampleBlock`, method ``mean``) into
   ``<entry>/model_voxel_size/raw``, over what the prediction reads: the ROI grown to whole model
   voxels, plus the network's context. Model voxels lie on the world grid of the model's voxel
   size, as ``pyramid``'s levels do, so the network sees what it would see on a ``pyramid``
   level. The copy is deleted when the entry is complete.
2. **Prediction** at the model's voxel size into ``<entry>/model_voxel_size/prob_maps`` and
   ``segmentation`` (kept: they are the network's own output), by the usual workers.
3. **Upsampling.** The stored probabilities are interpolated linearly to the data's voxel size
   into the entry's usual datasets, and the segmentation is decided from them, masked and scored
   against the labels at the data's voxel size (`incasem.predict.store`, as the workers do).

The interpolation: a fine voxel's value is the trilinear interpolation of the coarse voxels'
centres at the fine voxel's centre; beyond the outermost coarse centres the edge value holds.
That is ``scipy.ndimage.zoom(p, factors, order=1, grid_mode=True, mode="nearest")`` of the
coarse prediction. A fine voxel's value depends only on its world position and the coarse
prediction, never on the block it falls in, so any block size gives the same output.

With ``output_voxel_size="model"`` pass 3 is left out and pass 2 writes the entry's usual
datasets, at the model's voxel size (without the entry's mask and metrics, which are at the
data's). Sizes are in voxels and positions in nm, axis order z, y, x.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import create_array, default_chunks, open_array
from incasem.io.arrays import read_checked
from incasem.io.data_config import DataEntry
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import EntryOutputs, safe_name
from incasem.predict.store import BlockStore
from incasem.prepare.pyramid import DownsampleBlock

#: Sub-group of an entry with the model-voxel-size input and prediction.
MODEL_GROUP = "model_voxel_size"


@dataclass(frozen=True)
class Resampling:
    """How one entry's voxel size relates to the model's.

    Attributes:
        data_voxel_size: the data's voxel size, nm (z, y, x).
        model_voxel_size: the model's voxel size, nm; a whole multiple of the data's per axis.
        roi: the ROI predicted at the model's voxel size, nm: the entry's ROI grown to whole
            model voxels, within the data's whole model voxels (as ``pyramid``'s level).
        output: ``"data"`` or ``"model"``: the voxel size the outputs are written at.
    """

    data_voxel_size: Coordinate
    model_voxel_size: Coordinate
    roi: Roi
    output: str = "data"

    @property
    def factors(self) -> Coordinate:
        """Model voxel size / data voxel size per axis (z, y, x)."""
        return self.model_voxel_size / self.data_voxel_size

    @property
    def upsamples(self) -> bool:
        """Whether the outputs are written at the data's voxel size (pass 3 runs)."""
        return self.output == "data"

    def describe(self) -> dict[str, list[int]]:
        """Both voxel sizes, the factors and the outputs' voxel size (nm), for provenance."""
        output = self.data_voxel_size if self.upsamples else self.model_voxel_size
        return {
            "data_nm": list(self.data_voxel_size),
            "model_nm": list(self.model_voxel_size),
            "factors": list(self.factors),
            "output_nm": list(output),
        }

    def output_roi(self, roi: Roi) -> Roi:
        """The outputs' ROI (nm) for the entry's ROI ``roi``: itself at the data's voxel size,
        else ``self.roi``."""
        return roi if self.upsamples else self.roi

    def output_layout(self, layout: BlockLayout) -> BlockLayout:
        """``layout`` with the outputs' voxel size and chunk shape (`EntryOutputs.create`):
        at the data's voxel size, chunks of one model block's write size in nm."""
        if not self.upsamples:
            return layout
        return replace(
            layout,
            voxel_size=self.data_voxel_size,
            write_shape=layout.write_shape * self.factors,
        )


def resampling_for(
    entry: DataEntry,
    data_root: str | os.PathLike | None,
    model_voxel_size: Any,
    checkpoint: Path,
    output: str,
) -> Resampling | None:
    """None when ``entry`` is at the model's voxel size, else how to resample it.

    Raises `IncasemError` (one line, both voxel sizes) unless the model's voxel size is a whole
    multiple of the data's on every axis, or when the ROI holds no whole model voxel.
    """
    data, model = Coordinate(entry.voxel_size), Coordinate(model_voxel_size)
    if data == model:
        return None
    if any(m % d for m, d in zip(model, data, strict=True)):
        raise IncasemError(
            f"{entry.name}: the data's voxel size {list(data)} nm is not the model's "
            f"{list(model)} nm ({checkpoint}) divided by whole numbers (z y x); resample the "
            "data to the model's voxel size or a whole fraction of it"
        )
    level = open_array(entry.path(data_root), entry.raw).roi.snap_to_grid(model, mode="shrink")
    roi = entry.roi.snap_to_grid(model, mode="grow").intersect(level)
    if roi.empty:
        raise IncasemError(
            f"{entry.name}: its ROI {entry.roi_voxels} holds no whole voxel of the model's "
            f"{list(model)} nm"
        )
    return Resampling(data, model, roi, output)


def model_outputs(outputs: EntryOutputs, resampling: Resampling, num_classes: int) -> EntryOutputs:
    """Where the prediction at the model's voxel size goes: ``outputs`` themselves, or its
    ``model_voxel_size`` sub-group when the outputs are upsampled."""
    if not resampling.upsamples:
        return outputs
    return EntryOutputs.for_entry(outputs.container, outputs.group, MODEL_GROUP, num_classes)


def model_raw(outputs: EntryOutputs) -> str:
    """The dataset of the raw averaged to the model's voxel size."""
    return f"{outputs.group}/{MODEL_GROUP}/raw"


def downsample_input(
    entry: DataEntry,
    data_root: str | os.PathLike | None,
    resampling: Resampling,
    context: Coordinate,
    outputs: EntryOutputs,
    num_workers: int,
    worker_command: str | None,
    progress: bool,
) -> DataEntry:
    """Average the raw the prediction reads to the model's voxel size (pass 1).

    Args:
        entry: the entry at the data's voxel size.
        data_root: folder its relative ``file`` is joined to.
        resampling: its `Resampling`.
        context: network context per side, voxels at the model's voxel size.
        outputs: the entry's outputs; the raw goes to `model_raw` of them (replaced if there).
        num_workers, worker_command, progress: as for `incasem.blockwise.run_in_blocks`.

    Returns the entry to predict at the model's voxel size: the averaged raw over
    ``resampling.roi``, without labels and masks.
    """
    voxel_size, roi = resampling.model_voxel_size, resampling.roi
    raw = open_array(entry.path(data_root), entry.raw)
    level = raw.roi.snap_to_grid(voxel_size, mode="shrink")
    region = roi.grow(context * voxel_size, context * voxel_size).intersect(level)
    shape = region.shape / voxel_size
    chunks = Coordinate(default_chunks(shape))  # one block per chunk
    dataset = model_raw(outputs)
    array = create_array(
        outputs.container,
        dataset,
        shape,
        voxel_size,
        region.begin,
        dtype=raw.dtype,
        chunks=chunks,
        overwrite=True,
        attrs={
            "incasem_downsampled": {
                "source": f"{entry.path(data_root)}/{entry.raw}",
                "factors": list(resampling.factors),
                "method": "mean",
            }
        },
    )
    run_in_blocks(
        DownsampleBlock(
            str(entry.path(data_root)),
            entry.raw,
            str(outputs.container),
            dataset,
            tuple(resampling.factors),
            "mean",
        ),
        region,
        chunks,
        voxel_size,
        output=array,
        num_workers=num_workers,
        name=f"downsample-{safe_name(entry.name)}",
        progress=progress,
        worker_command=worker_command,
    )
    return DataEntry(
        name=entry.name,
        source=f"{entry.raw} averaged to {list(voxel_size)} nm",
        file=str(outputs.container),
        offset=list(roi.begin / voxel_size),
        shape=list(roi.shape / voxel_size),
        voxel_size=list(voxel_size),
        raw=dataset,
    )


def delete_input(outputs: EntryOutputs) -> None:
    """Remove the averaged raw of pass 1 (once the entry is complete), and its group when
    nothing else is in it (outputs at the model's voxel size)."""
    group = zarr.open_group(str(outputs.container), mode="a", path=outputs.group)
    if f"{MODEL_GROUP}/raw" in group:
        del group[f"{MODEL_GROUP}/raw"]
    if MODEL_GROUP in group and not len(group[MODEL_GROUP]):
        del group[MODEL_GROUP]


def axis_interpolation(
    begin: int, count: int, voxel_size: int, coarse_begin: int, coarse_voxel_size: int,
    coarse_count: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Linear interpolation along one axis from coarse voxels to ``count`` fine voxels.

    Positions in nm (``begin``, ``coarse_begin``: first voxel's corner). Returns, per fine
    voxel, the coarse voxel below and above its centre (indices into the coarse axis of
    ``coarse_count`` voxels, held at the edge beyond the outermost centres) and the weight of
    the one above (float32).
    """
    centres = begin + (np.arange(count) + 0.5) * voxel_size
    position = (centres - coarse_begin) / coarse_voxel_size - 0.5
    below = np.floor(position)
    weight = (position - below).astype(np.float32)
    below = below.astype(np.int64)
    return (
        np.clip(below, 0, coarse_count - 1),
        np.clip(below + 1, 0, coarse_count - 1),
        weight,
    )


def upsample_linear(coarse: list[Array], roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """Probabilities (float32, classes, z, y, x) of ``roi`` (nm) at ``voxel_size`` (nm),
    interpolated linearly from one coarse probability dataset per class (uint8 p * 255 or
    float32), reading only the coarse voxels the ROI needs."""
    first = coarse[0]
    axes = [
        axis_interpolation(b, n, v, cb, cv, cn)
        for b, n, v, cb, cv, cn in zip(
            roi.begin, roi.shape / voxel_size, voxel_size, first.roi.begin, first.voxel_size,
            first.roi.shape / first.voxel_size, strict=True,
        )
    ]  # fmt: skip
    low = Coordinate(int(below.min()) for below, _, _ in axes)
    high = Coordinate(int(above.max()) + 1 for _, above, _ in axes)
    box = Roi(first.roi.begin + low * first.voxel_size, (high - low) * first.voxel_size)
    values = np.stack([read_checked(array, box) for array in coarse]).astype(np.float32)
    if first.dtype == np.uint8:
        values *= np.float32(1 / 255)
    for axis, ((below, above, weight), start) in enumerate(zip(axes, low, strict=True)):
        shape = [1] * values.ndim
        shape[axis + 1] = len(weight)
        weight = weight.reshape(shape)
        values = (1 - weight) * np.take(values, below - start, axis=axis + 1) + weight * np.take(
            values, above - start, axis=axis + 1
        )
    return values


@dataclass(frozen=True)
class UpsampleBlock:
    """Interpolates a block of the model-voxel-size probabilities to the data's voxel size and
    stores it with its segmentation and metric counts (a blockwise block function, pass 3).

    Args:
        entry (dict): the entry at the data's voxel size (`DataEntry` fields).
        data_root (str or None): folder its relative ``file`` is joined to.
        container (str): the output container.
        coarse (tuple of str): probability datasets at the model's voxel size, class 0 first.
        probabilities (tuple of str): probability datasets at the data's voxel size.
        segmentation (str): the class-id dataset at the data's voxel size.
        probability_dtype (str): ``"uint8"`` or ``"float32"``.
        threshold (float): foreground threshold on p(class 1) for two classes.
        metrics_dir (str or None): folder for per-block metric counts; None: no metrics.
    """

    entry: dict[str, Any]
    data_root: str | None
    container: str
    coarse: tuple[str, ...]
    probabilities: tuple[str, ...]
    segmentation: str
    probability_dtype: str
    threshold: float
    metrics_dir: str | None

    def __call__(self, block: Any) -> None:
        entry = DataEntry(**self.entry)
        roi = block.write_roi.intersect(entry.roi)
        coarse = [open_array(self.container, d) for d in self.coarse]
        store = BlockStore(
            entry,
            self.data_root,
            self.container,
            self.probabilities,
            self.segmentation,
            self.probability_dtype,
            self.threshold,
            self.metrics_dir,
        )
        store.write(
            roi, upsample_linear(coarse, roi, Coordinate(entry.voxel_size)), block.block_id[1]
        )


def upsample_outputs(
    block: UpsampleBlock,
    chunks: Coordinate,
    num_workers: int,
    worker_command: str | None,
    progress: bool,
) -> int:
    """Run pass 3 over the entry's ROI in blocks of the outputs' ``chunks`` (voxels); returns
    the number of blocks."""
    entry = DataEntry(**block.entry)
    voxel_size = Coordinate(entry.voxel_size)
    run_in_blocks(
        block,
        entry.roi,
        chunks,
        voxel_size,
        output=open_array(block.container, block.segmentation),
        num_workers=num_workers,
        name=f"upsample-{safe_name(entry.name)}",
        progress=progress,
        worker_command=worker_command,
    )
    return math.prod(-(-s // c) for s, c in zip(entry.shape, chunks, strict=True))
