"""Ground truth of one data-config entry, read block by block for the metrics.

The label rules are the training pipeline's (`incasem.labels`), so that a score means the same
thing in training, validation and prediction; voxels count only inside ``mask`` > 0 and every
``metric_masks`` > 0, and not where any label dataset holds the entry's ``ignore_value``. An
entry without labels is all background.

ROIs are in nm, arrays (z, y, x).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.io import open_array
from incasem.io.data_config import DataEntry
from incasem.labels import merge_class_ids, not_annotated


class EntryTruth:
    """Opens an entry's label, mask and metric-mask datasets once and reads blocks of them.

    Args:
        entry: the data-config entry.
        data_root: folder that relative ``file`` paths are joined to.
    """

    def __init__(self, entry: DataEntry, data_root: str | os.PathLike | None):
        container = Path(entry.path(data_root))
        self.labels = [
            (open_array(container, ds), class_id) for ds, class_id in entry.labels.items()
        ]
        self.mask = open_array(container, entry.mask) if entry.mask else None
        self.metric_masks = [open_array(container, ds) for ds in entry.metric_masks]
        self.ignore_value = entry.ignore_value
        self.voxel_size = Coordinate(entry.voxel_size)

    def read(self, roi: Roi, metric_masks: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Class ids (uint8) and evaluation region (bool) of ``roi`` (nm), both (z, y, x);
        ``metric_masks=False`` leaves the metric masks out of the region."""
        region = self.read_mask(roi)
        labels = []
        for array, class_id in self.labels:
            data = array[roi]
            unknown = not_annotated(data, self.ignore_value)
            if unknown is not None:
                region &= ~unknown
                data = np.where(unknown, 0, data)
            labels.append((data, class_id))
        class_ids = merge_class_ids(labels, region.shape)
        for array in self.metric_masks if metric_masks else []:
            region &= array[roi] > 0
        return class_ids, region

    def read_mask(self, roi: Roi) -> np.ndarray:
        """The entry's mask > 0 on ``roi`` (nm), or all True without a mask; (z, y, x) bool."""
        if self.mask is None:
            return np.ones(tuple(roi.shape / self.voxel_size), bool)
        return np.asarray(self.mask[roi] > 0)

    def class_counts(self, roi: Roi, num_classes: int, slab_voxels: int = 32) -> np.ndarray:
        """Voxels of each class (index = class id) inside ``mask`` and not ``ignore_value`` in
        ``roi`` (nm), read in slabs of ``slab_voxels`` sections along z to bound memory.

        Metric masks do not apply: they restrict scores, not what training learns from.
        """
        counts = np.zeros(num_classes, np.int64)
        step = slab_voxels * self.voxel_size[0]
        for z in range(roi.begin[0], roi.end[0], step):
            slab = Roi((z, *roi.begin[1:]), (min(step, roi.end[0] - z), *roi.shape[1:]))
            class_ids, region = self.read(slab, metric_masks=False)
            counts += np.bincount(class_ids[region], minlength=num_classes)[:num_classes]
        return counts
