"""Relabel a label dataset: binarize it, or map ids to new ids, into a new dataset.

Annotations arrive as instance ids (VAST, ilastik) or as multi-class volumes (COSEM: mitochondria
are classes 3 and 4, ER 16 and 17), but incasem trains one binary target per organelle (a label
dataset whose nonzero voxels are the class). ``binarize`` turns every nonzero id into one value;
``mapping`` sends chosen ids to new values and everything else to ``others`` (0 by default, i.e.
extract these classes) or leaves it as it is (``others=None``). The output dtype is the smallest
that holds every value written unless one is given, and values that do not fit a given dtype are
refused rather than wrapped. Axis order z, y, x.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, open_array
from incasem.io.staging import staged_dataset
from incasem.prepare.convert import convert_dtype


def relabel_array(
    data: np.ndarray,
    mapping: Mapping[int, int] | None = None,
    binarize: int | None = None,
    others: int | None = 0,
) -> np.ndarray:
    """New ids for ``data``: ``binarize`` for every nonzero voxel, or ``mapping[id]`` for mapped
    ids and ``others`` (``None``: unchanged) for the rest."""
    if binarize is not None:
        return np.where(data != 0, binarize, 0)
    keys = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[k] for k in sorted(mapping)], dtype=np.int64)
    index = np.clip(np.searchsorted(keys, data), 0, len(keys) - 1)
    found = keys[index] == data
    return np.where(found, values[index], data if others is None else others)


@dataclass(frozen=True)
class _RelabelBlock:
    container: str
    dataset: str
    out_dataset: str
    mapping: tuple[tuple[int, int], ...] | None
    binarize: int | None
    others: int | None
    dtype: str

    def __call__(self, block: Any) -> None:
        source = open_array(self.container, self.dataset)
        out = open_array(self.container, self.out_dataset, "r+")
        new = relabel_array(
            source[block.write_roi],
            dict(self.mapping) if self.mapping is not None else None,
            self.binarize,
            self.others,
        )
        out[block.write_roi] = convert_dtype(new, self.dtype)


def _output_dtype(
    source_dtype: np.dtype,
    mapping: Mapping[int, int] | None,
    binarize: int | None,
    others: int | None,
) -> np.dtype:
    if others is None and binarize is None:
        written = [*mapping.values(), 0]
        return np.result_type(source_dtype, *(np.min_scalar_type(v) for v in written))
    written = [binarize] if binarize is not None else [*mapping.values(), others]
    return np.result_type(*(np.min_scalar_type(v) for v in [*written, 0]))


def relabel(
    container: str | os.PathLike,
    dataset: str,
    out_dataset: str,
    mapping: Mapping[int, int] | None = None,
    binarize: int | None = None,
    others: int | None = 0,
    dtype: Any = None,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Write a relabelled copy of a label dataset; returns its path.

    Args:
        container: the ``.zarr`` container; the output is written into it.
        dataset: the label dataset (integer ids).
        out_dataset: the new dataset, e.g. ``volumes/labels/mito``.
        mapping: old id -> new id (exclusive with ``binarize``).
        binarize: value written for every nonzero voxel (exclusive with ``mapping``).
        others: value for ids not in ``mapping``; ``None`` keeps them. Ignored with ``binarize``.
        dtype: output dtype; default the smallest holding every value written.
        num_workers: worker processes (0: in this process).
        overwrite: replace an existing output (only after the new one is complete).
        progress: show a progress bar.

    Output ROI, voxel size and chunks are the input's.
    """
    if (mapping is None) == (binarize is None):
        raise IncasemError("choose exactly one of --binarize and --map")
    if mapping is not None and not mapping:
        raise IncasemError("--map needs at least one OLD:NEW pair")
    source = open_array(container, dataset)
    if not np.issubdtype(np.dtype(source.dtype), np.integer) and source.dtype != np.bool_:
        raise IncasemError(f"{container}/{dataset}: relabel needs integer ids, not {source.dtype}")
    if source.voxel_size.dims != 3 or len(source.shape) != 3:
        raise IncasemError(f"{container}/{dataset}: need a 3D dataset, not shape {source.shape}")
    out_dtype = (
        np.dtype(dtype)
        if dtype is not None
        else _output_dtype(np.dtype(source.dtype), mapping, binarize, others)
    )
    with staged_dataset(
        container,
        out_dataset,
        source.roi.shape / source.voxel_size,
        source.voxel_size,
        offset=source.roi.offset,
        dtype=out_dtype,
        chunks=source.chunk_shape,
        overwrite=overwrite,
        attrs={
            "incasem_relabel": {
                "source": dataset,
                "mapping": {str(k): v for k, v in (mapping or {}).items()},
                "binarize": binarize,
                "others": others,
            }
        }
        | carried_voxel_size_attrs(container, dataset),
    ) as staged:
        run_in_blocks(
            _RelabelBlock(
                str(container),
                dataset,
                staged.staging_name,
                tuple(sorted(mapping.items())) if mapping is not None else None,
                binarize,
                others,
                out_dtype.str,
            ),
            staged.array.roi,
            None,
            source.voxel_size,
            output=staged.array,
            num_workers=num_workers,
            name="relabel",
            progress=progress,
        )
    return f"{container}/{out_dataset}"
