"""One gunpowder source branch per data-config entry.

A branch provides, for one annotated block:

* ``raw``: the whole raw dataset (read with context from outside the annotated ROI wherever the
  dataset has data), normalised to [0, 1] and padded by reflection only beyond the dataset;
* ``labels``: class ids inside the annotated ROI, 0 in a margin around it;
* ``valid``: 1 where labels are known (inside the ROI, inside the entry's ``mask``, not equal to
  its ``ignore_value``), 0 elsewhere — in particular 0 in the margin, so context is never taught
  as background.

Array specs (voxel size and ROI) are passed to ``ZarrSource`` explicitly from `incasem.io`,
because ``ZarrSource`` understands only the ``resolution`` attribute and would read a dataset
written by funlib.persistence as having 1 nm voxels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gunpowder as gp

from incasem.gunpowder import ExcludeValue, MergeLabels, ValidMask
from incasem.io import open_array
from incasem.io.data_config import DataEntry


@dataclass(frozen=True)
class SourceKeys:
    """The arrays every source branch provides."""

    raw: gp.ArrayKey
    labels: gp.ArrayKey
    valid: gp.ArrayKey


def _zarr_source(container: str, key: gp.ArrayKey, dataset: str, interpolatable: bool):
    array = open_array(container, dataset)
    spec = gp.ArraySpec(roi=array.roi, voxel_size=array.voxel_size, interpolatable=interpolatable)
    return gp.ZarrSource(container, {key: dataset}, {key: spec})


def entry_source(
    entry: DataEntry,
    data_root: str | os.PathLike | None,
    keys: SourceKeys,
    raw_padding: gp.Coordinate,
    label_padding: gp.Coordinate,
) -> gp.Pipeline:
    """The source branch of one entry (see module docstring).

    Args:
        entry: the data-config entry (already validated against the data).
        data_root: directory relative ``file`` paths are joined to.
        keys: the shared keys for raw, labels and valid mask.
        raw_padding: nm (z, y, x) of reflection padding beyond the raw dataset; the network
            context is enough.
        label_padding: nm (z, y, x) of the margin around the ROI in which labels are provided as
            unknown, so that output windows can straddle the ROI border.
    """
    container = str(entry.path(data_root))
    prefix = entry.name.upper()
    raw = (
        _zarr_source(container, keys.raw, entry.raw, interpolatable=True)
        + gp.Normalize(keys.raw)
        + gp.Pad(keys.raw, raw_padding, mode="reflect")
    )
    providers = [raw]

    label_keys: dict[gp.ArrayKey, int] = {}
    for index, (dataset, class_id) in enumerate(entry.labels.items()):
        key = gp.ArrayKey(f"{prefix}_LABELS_{index}")
        label_keys[key] = class_id
        providers.append(
            _zarr_source(container, key, dataset, interpolatable=False)
            + gp.Crop(key, entry.roi)
            + gp.Pad(key, label_padding, value=0)
        )
    mask_keys = []
    if entry.mask is not None:
        mask_key = gp.ArrayKey(f"{prefix}_MASK")
        mask_keys.append(mask_key)
        providers.append(_zarr_source(container, mask_key, entry.mask, interpolatable=False))

    branch = tuple(providers) + gp.MergeProvider()
    branch += ValidMask(
        keys.valid, entry.roi, gp.Coordinate(entry.voxel_size), mask_keys, label_padding
    )
    if entry.ignore_value is not None:
        for key in label_keys:
            branch += ExcludeValue(key, entry.ignore_value, keys.valid)
    branch += MergeLabels(label_keys, keys.labels, reference=keys.valid)
    return branch
