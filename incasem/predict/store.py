"""Store one block's probabilities: classify, mask, quantise, write, and score.

The single place where a block's class probabilities become the entry's outputs. The
prediction worker calls it with the network's output; the upsampling pass of a prediction at
the data's voxel size (`incasem.predict.resample`) with interpolated probabilities, so both
decide, mask and score a voxel the same way.

ROIs are in nm, arrays (classes,) z, y, x.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.geometry import Roi

from incasem.io import open_array
from incasem.io.data_config import DataEntry
from incasem.metrics import quantise
from incasem.predict.block import classify
from incasem.predict.block_metrics import save_block_metrics
from incasem.predict.evaluate import block_scores
from incasem.predict.truth import EntryTruth


class BlockStore:
    """Writes blocks of probabilities and their segmentation into an entry's datasets.

    Args:
        entry (DataEntry): the entry whose mask and labels apply (at the outputs' voxel size).
        data_root (str or None): folder that the entry's relative ``file`` is joined to.
        container (str): the output container.
        probabilities (list of str): probability dataset per class, class 0 first.
        segmentation (str): the class-id dataset.
        probability_dtype (str): ``"uint8"`` (p * 255, rounded) or ``"float32"``.
        threshold (float): foreground threshold on p(class 1) for two classes.
        metrics_dir (str or None): folder for per-block metric counts; None: no metrics.
    """

    def __init__(
        self,
        entry: DataEntry,
        data_root: str | os.PathLike | None,
        container: str | os.PathLike,
        probabilities: Sequence[str],
        segmentation: str,
        probability_dtype: str,
        threshold: float,
        metrics_dir: str | os.PathLike | None,
    ) -> None:
        self.truth = EntryTruth(entry, data_root)
        self.probabilities = [open_array(container, d, "r+") for d in probabilities]
        self.segmentation = open_array(container, segmentation, "r+")
        self.probability_dtype = probability_dtype
        self.threshold = threshold
        self.metrics_dir = Path(metrics_dir) if metrics_dir else None

    def write(self, roi: Roi, probabilities: np.ndarray, block_id: int) -> None:
        """Classify ``probabilities`` (float32, classes, z, y, x) of ``roi`` (nm), set voxels
        outside the mask to background, store both, and save the block's metric counts."""
        prediction = classify(probabilities, self.threshold)
        if self.truth.mask is not None:
            prediction[~self.truth.read_mask(roi)] = 0
        stored = quantise(probabilities) if self.probability_dtype == "uint8" else probabilities
        for array, values in zip(self.probabilities, stored, strict=True):
            array[roi] = values
        self.segmentation[roi] = prediction
        if self.metrics_dir is not None:
            class_ids, region = self.truth.read(roi)
            counts, histograms = block_scores(probabilities, prediction, class_ids, region)
            save_block_metrics(self.metrics_dir, block_id, counts, histograms)
