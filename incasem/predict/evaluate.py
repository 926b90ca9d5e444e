"""Score a model on one data-config entry, in process, block by block.

Training validates every N iterations. Going through daisy for that would start worker
processes and reload the model each time; instead `evaluate_entry` walks the same blocks a
prediction would (same layout, same `predict_block`, same truth rules, same counting), so the
validation score of a checkpoint is the score its prediction will report, and it never holds
more than one block in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Roi

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.data_config import DataEntry
from incasem.metrics import (
    ConfusionCounts,
    ThresholdHistograms,
    best_threshold_scores,
    flat_scores,
    quantise,
)
from incasem.predict.block import classify, predict_block
from incasem.predict.geometry import BlockLayout
from incasem.predict.truth import EntryTruth
from incasem.torch.models import shapes

if TYPE_CHECKING:
    import torch


def block_scores(
    probabilities: np.ndarray,
    prediction: np.ndarray,
    class_ids: np.ndarray,
    region: np.ndarray,
) -> tuple[ConfusionCounts, ThresholdHistograms]:
    """Counts and probability histograms of one block.

    Args:
        probabilities: (classes, z, y, x) float probabilities.
        prediction: (z, y, x) predicted class ids (see `incasem.predict.block.classify`).
        class_ids: (z, y, x) true class ids.
        region: (z, y, x) bool, where voxels count.
    """
    num_classes = probabilities.shape[0]
    counts = ConfusionCounts.from_arrays(prediction, class_ids, region, num_classes)
    histograms = ThresholdHistograms.from_arrays(quantise(probabilities), class_ids, region)
    return counts, histograms


def layout_for_model(
    model: torch.nn.Module, input_size_voxels: Sequence[int], voxel_size: Sequence[int]
) -> BlockLayout:
    """Block layout for a model (its downsample factors and head, defaults if it has none)."""
    return BlockLayout.for_network(
        input_size_voxels,
        voxel_size,
        getattr(model, "downsample_factors", shapes.DEFAULT_DOWNSAMPLE_FACTORS),
        getattr(model, "head_kernel_size", 3),
    )


def score_entry(
    model: torch.nn.Module,
    entry: DataEntry,
    data_root: str | os.PathLike | None,
    input_size_voxels: Sequence[int],
    voxel_size: Sequence[int],
    normalisation: Mapping[str, Any],
    device: str = "cpu",
    threshold: float = 0.5,
    collect: Callable[[Roi, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> tuple[ConfusionCounts, ThresholdHistograms]:
    """Predict an entry's whole ROI block by block; its counts at ``threshold`` and histograms.

    Counts and histograms are additive, so the scores of several entries (or a threshold sweep
    over all of them) follow from their sums. ``collect``, if given, is called with each
    block's write ROI (nm), probabilities (classes, z, y, x), true class ids and region
    (z, y, x). Other arguments as in `evaluate_entry`.
    """
    import torch

    if tuple(entry.voxel_size) != tuple(voxel_size):
        raise IncasemError(
            f"{entry.name}: voxel size {entry.voxel_size} nm differs from the model's "
            f"{list(voxel_size)} nm"
        )
    parameter = next(model.parameters(), None)
    wanted = torch.device(device)
    if parameter is not None and (
        parameter.device.type != wanted.type
        or (wanted.index is not None and parameter.device.index != wanted.index)
    ):
        raise ValueError(f"the model is on {parameter.device}, but device={device!r}")
    layout = layout_for_model(model, input_size_voxels, voxel_size)
    raw = open_array(entry.path(data_root), entry.raw)
    truth = EntryTruth(entry, data_root)
    total: tuple[ConfusionCounts, ThresholdHistograms] | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for write_roi in layout.write_rois(entry.roi):
                probabilities = predict_block(model, raw, write_roi, layout, normalisation, device)
                class_ids, region = truth.read(write_roi)
                if collect is not None:
                    collect(write_roi, probabilities, class_ids, region)
                scores = block_scores(
                    probabilities, classify(probabilities, threshold), class_ids, region
                )
                total = scores if total is None else (total[0] + scores[0], total[1] + scores[1])
    finally:
        model.train(was_training)
    if total is None:
        raise IncasemError(f"{entry.name}: empty ROI {entry.roi_voxels}")
    return total


def entry_scores(
    counts: ConfusionCounts,
    histograms: ThresholdHistograms,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """The flat scores `evaluate_entry` reports, from (summed) counts and histograms."""
    return {
        **flat_scores(counts, class_names),
        "threshold": float(threshold),
        **best_threshold_scores(histograms, class_names),
    }


def evaluate_entry(
    model: torch.nn.Module,
    entry: DataEntry,
    data_root: str | os.PathLike | None,
    input_size_voxels: Sequence[int],
    voxel_size: Sequence[int],
    normalisation: Mapping[str, Any],
    device: str = "cpu",
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Predict an entry's whole ROI block by block and score it against its labels.

    Args:
        model: the network (e.g. `ASEMUNet`), already on ``device``. It is switched to eval
            mode for the call and back to its previous mode afterwards; no gradients are kept.
        entry: the data-config entry (ROI in voxels, z, y, x; labels, mask, metric masks,
            ignore value). An entry without labels is all background.
        data_root: folder that the entry's relative ``file`` is joined to.
        input_size_voxels: network input per block (z, y, x); the blocks written are its
            output rounded down to the network's downsampling grid, as in a prediction.
        voxel_size: the model's voxel size in nm (z, y, x); must equal the entry's.
        normalisation: the checkpoint card's raw normalisation.
        device: where the model's parameters are and where inputs are sent.
        threshold: two classes: foreground where p(class 1) >= threshold; more classes: argmax.
        class_names: one per class, background first; default ``class_<c>``.

    Returns:
        ``{"f1", "precision", "recall", "iou"}`` of the first foreground class at
        ``threshold``, ``"threshold"``, and the threshold sweep's best: ``"best_threshold"``
        (highest F1 over all uint8 levels) with ``"best_f1"``, ``"best_precision"``,
        ``"best_recall"``, ``"best_iou"`` there; ``"<class name>/<score>"`` of every foreground
        class; over the voxels inside the mask and all metric masks and not ``ignore_value``.
        A class absent from both truth and prediction scores 1.0.
    """
    counts, histograms = score_entry(
        model, entry, data_root, input_size_voxels, voxel_size, normalisation, device, threshold
    )
    return entry_scores(counts, histograms, threshold, class_names)
