"""Voxel and object scores of a prediction against labels, exact and block by block.

* **Voxel scores** (F1 = Dice, precision, recall, IoU = Jaccard) come from confusion counts,
  which add up over blocks, so the blockwise result equals a whole-volume evaluation exactly.
  Only voxels inside every mask (cell mask ∧ metric mask) count.
* **Threshold sweep.** For a probability map, each block histograms its voxels by how many of the
  sweep's thresholds they reach (``numpy.searchsorted``), separately for true and false voxels.
  Cumulative sums of those histograms give the exact counts at every threshold in one pass, for
  uint8 levels and float probabilities alike (`incasem.metrics.ThresholdHistograms` would round
  float probabilities to uint8 levels first).
* **Object scores.** Objects are the 6-connected components (`incasem.postprocess.components`)
  of the masked prediction and of the masked truth (voxels outside a mask are background for
  both). One more pass counts the voxels shared by each (predicted, true) pair; a pair matches
  when IoU = shared / (size_p + size_t − shared) >= the IoU threshold (0.5), one to one, best IoU
  first. Above 0.5 a match is unique anyway; the greedy order only settles exact ties.
  Object precision = matched / predicted objects, recall = matched / true objects.

Labels are compared as class ids (multi-class), or one class against the rest when a truth class
is given; probabilities always score one class (p >= threshold) against the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from funlib.geometry import Roi

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.roi import roi_inside
from incasem.metrics import level_for_threshold, scores
from incasem.postprocess.components import connected_components
from incasem.postprocess.partials import load_parts, save_part, scratch_folder
from incasem.postprocess.sources import (
    BinarySource,
    DatasetRef,
    check_covers,
    check_probability_dtype,
    check_threshold,
    read_filled,
    region_mask,
    spatial_array,
)

#: Objects match when their IoU is at least this.
OBJECT_IOU = 0.5


def sweep_thresholds(start: float, stop: float, step: float) -> list[float]:
    """``start, start + step, ..., stop`` (inclusive), rounded to 6 decimals, probabilities."""
    if step <= 0:
        raise IncasemError(f"--sweep step {step} must be positive")
    for value in (start, stop):
        check_threshold(value, "--sweep bound")
    if stop < start:
        raise IncasemError(f"--sweep stop {stop} is below start {start}")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 6) for i in range(count)]


@dataclass(frozen=True)
class _CountBlock:
    """Saves, per block, histograms over threshold bins (probabilities) or class-id pairs."""

    prediction: DatasetRef
    truth: DatasetRef
    masks: tuple[DatasetRef, ...]
    cuts: tuple[float, ...] | None
    truth_class: int | None
    parts: str

    def __call__(self, block: Any) -> None:
        roi = block.write_roi
        prediction = read_filled(self.prediction, roi)
        truth = read_filled(self.truth, roi)
        region = region_mask(self.masks, roi)
        if region is not None:
            prediction, truth = prediction[region], truth[region]
        prediction, truth = prediction.ravel(), truth.ravel()
        if self.truth_class is not None:
            truth = (truth == self.truth_class).astype(np.uint8)
        if self.cuts is None:
            if self.truth_class is not None:
                prediction = (prediction != 0).astype(np.uint8)
            pairs, counts = np.unique(
                np.stack([truth.astype(np.int64), prediction.astype(np.int64)]),
                axis=1,
                return_counts=True,
            )
            save_part(self.parts, roi, pairs=pairs.T, counts=counts.astype(np.int64))
            return
        bins = np.searchsorted(np.asarray(self.cuts), prediction, side="right")
        positive = truth != 0
        size = len(self.cuts) + 1
        save_part(
            self.parts,
            roi,
            positive=np.bincount(bins[positive], minlength=size).astype(np.int64),
            negative=np.bincount(bins[~positive], minlength=size).astype(np.int64),
        )


@dataclass(frozen=True)
class _OverlapBlock:
    """Saves, per block, the voxels shared by each (predicted, true) object pair."""

    container: str
    predicted: str
    true: str
    parts: str

    def __call__(self, block: Any) -> None:
        roi = block.write_roi
        predicted = open_array(self.container, self.predicted)[roi].ravel()
        true = open_array(self.container, self.true)[roi].ravel()
        both = (predicted != 0) & (true != 0)
        pairs, counts = np.unique(
            np.stack([predicted[both], true[both]]), axis=1, return_counts=True
        )
        save_part(self.parts, roi, pairs=pairs.T, counts=counts.astype(np.int64))


def _class_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    result: dict[str, Any] = scores(tp, fp, fn)
    result["dice"] = result["f1"]
    result.update(tp=int(tp), fp=int(fp), fn=int(fn))
    return result


def match_objects(
    pairs: np.ndarray,
    shared: np.ndarray,
    predicted_sizes: np.ndarray,
    true_sizes: np.ndarray,
    iou_threshold: float = OBJECT_IOU,
) -> dict[str, float]:
    """Object precision, recall and F1 from overlaps.

    Args:
        pairs: (n, 2) ids (predicted, true) of object pairs that share voxels.
        shared: (n,) voxels each pair shares.
        predicted_sizes: voxels per predicted object, indexed by id (index 0 unused).
        true_sizes: voxels per true object, indexed by id (index 0 unused).
        iou_threshold: least IoU of a match.
    """
    predicted_count, true_count = len(predicted_sizes) - 1, len(true_sizes) - 1
    matched = 0
    if len(pairs):
        p, t = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
        iou = shared / (predicted_sizes[p] + true_sizes[t] - shared)
        candidates = np.flatnonzero(iou >= iou_threshold)
        candidates = candidates[np.argsort(-iou[candidates], kind="stable")]
        used_p: set[int] = set()
        used_t: set[int] = set()
        for i in candidates:
            if p[i] not in used_p and t[i] not in used_t:
                used_p.add(int(p[i]))
                used_t.add(int(t[i]))
        matched = len(used_p)
    precision = 1.0 if predicted_count == 0 else matched / predicted_count
    recall = 1.0 if true_count == 0 else matched / true_count
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "iou_threshold": iou_threshold,
        "predicted": predicted_count,
        "true": true_count,
        "matched": matched,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _object_scores(
    predicted: BinarySource,
    true: BinarySource,
    roi: Roi,
    block_edge: int,
    voxel_size: Sequence[int],
    num_workers: int,
    progress: bool,
) -> dict[str, float]:
    with scratch_folder(prefix="incasem-evaluate-") as scratch:
        container = str(scratch / "objects.zarr")
        run = {"block_edge": block_edge, "num_workers": num_workers, "progress": progress}
        p = connected_components(predicted, container, "predicted", **run)
        # The truth may be larger than the prediction: label only the evaluated ROI of it.
        true = replace(true, region=(tuple(roi.offset), tuple(roi.shape)))
        t = connected_components(true, container, "true", **run)
        (scratch / "overlaps").mkdir()
        run_in_blocks(
            _OverlapBlock(container, "predicted", "true", str(scratch / "overlaps")),
            roi,
            None,
            voxel_size,
            block_edge=block_edge,
            num_workers=num_workers,
            name="evaluate-objects",
            progress=progress,
        )
        parts = load_parts(scratch / "overlaps")
    pairs = np.concatenate([part["pairs"] for part in parts]).reshape(-1, 2)
    counts = np.concatenate([part["counts"] for part in parts])
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    shared = np.zeros(len(unique), np.int64)
    np.add.at(shared, inverse.ravel(), counts)
    return match_objects(unique, shared, p.sizes, t.sizes)


def _class_name(attrs: dict[str, Any], class_id: int, binary: bool = False) -> str:
    # Prediction datasets name their class ("class_name", one per probability map) or classes
    # ("class_names", segmentation); a one-class comparison uses the former when present.
    if binary and "class_name" in attrs:
        return str(attrs["class_name"])
    names = attrs.get("class_names")
    if isinstance(names, list) and class_id < len(names):
        return str(names[class_id])
    return f"class_{class_id}"


_ObjectSources = dict[str, tuple[BinarySource, BinarySource]]


def _check_inputs(
    prediction: DatasetRef,
    predicted: Any,
    truth: DatasetRef,
    masks: Sequence[DatasetRef],
    threshold: float | None,
    sweep: Sequence[float] | None,
    roi: Roi,
) -> None:
    """Truth and masks cover the scored ROI (nm); a threshold fits a probability map."""
    voxel_size = predicted.voxel_size
    for other in (truth, *masks):
        check_covers(prediction, roi, voxel_size, other)
    if threshold is not None:
        check_probability_dtype(prediction, predicted)
        check_threshold(threshold)
    elif sweep:
        raise IncasemError("a threshold sweep needs a probability map: pass --threshold too")


def _probability_scores(
    report: dict[str, Any],
    parts: list[dict[str, Any]],
    thresholds: list[float],
    sweep: Sequence[float] | None,
    attrs: dict[str, Any],
    sources: tuple[DatasetRef, DatasetRef, tuple[DatasetRef, ...]],
) -> _ObjectSources:
    """Voxel scores of a probability map at each threshold into ``report``; returns the
    binary sources (prediction, truth, masks) of its foreground for object scores."""
    prediction, truth, masks = sources
    threshold, truth_class = report["threshold"], report["truth_class"]
    positive = sum(part["positive"] for part in parts)
    negative = sum(part["negative"] for part in parts)
    sweep_scores = []
    for k, t in enumerate(thresholds):
        tp, fn = int(positive[k + 1 :].sum()), int(positive[: k + 1].sum())
        fp = int(negative[k + 1 :].sum())
        sweep_scores.append({"threshold": t, **_class_scores(tp, fp, fn)})
    name = str(attrs.get("class_name", "foreground"))
    chosen = sweep_scores[thresholds.index(threshold)]
    report["classes"] = {name: {k: v for k, v in chosen.items() if k != "threshold"}}
    if sweep:
        report["sweep"] = [s for s in sweep_scores if s["threshold"] in set(sweep)]
        report["best"] = max(report["sweep"], key=lambda s: s["f1"])
    return {
        name: (
            BinarySource(prediction, threshold=threshold, masks=masks),
            BinarySource(truth, class_id=truth_class, masks=masks),
        )
    }


def _label_scores(
    report: dict[str, Any],
    parts: list[dict[str, Any]],
    truth_class: int | None,
    attrs: dict[str, Any],
    sources: tuple[DatasetRef, DatasetRef, tuple[DatasetRef, ...]],
) -> _ObjectSources:
    """Voxel scores per class of a class-id prediction (from the blocks' confusion pairs)
    into ``report``; returns the binary sources of each scored class for object scores."""
    prediction, truth, masks = sources
    pairs = np.concatenate([part["pairs"] for part in parts]).reshape(-1, 2)
    counts = np.concatenate([part["counts"] for part in parts])
    size = int(pairs.max()) + 1 if len(pairs) else 2
    confusion = np.zeros((max(size, 2), max(size, 2)), np.int64)
    np.add.at(confusion, (pairs[:, 0], pairs[:, 1]), counts)
    tp_all = np.diag(confusion)
    report["classes"] = {}
    binary: _ObjectSources = {}
    for c in range(1, len(confusion)):
        tp = int(tp_all[c])
        fp, fn = int(confusion[:, c].sum()) - tp, int(confusion[c, :].sum()) - tp
        if tp + fp + fn == 0:
            continue
        name = _class_name(attrs, c, binary=truth_class is not None)
        report["classes"][name] = _class_scores(tp, fp, fn)
        predicted_class = None if truth_class is not None else c
        binary[name] = (
            BinarySource(prediction, class_id=predicted_class, masks=masks),
            BinarySource(truth, class_id=c if truth_class is None else truth_class, masks=masks),
        )
    return binary


def evaluate(
    prediction: DatasetRef,
    truth: DatasetRef,
    *,
    masks: Sequence[DatasetRef] = (),
    threshold: float | None = None,
    sweep: Sequence[float] | None = None,
    truth_class: int | None = None,
    objects: bool = False,
    roi_voxels: Sequence[int] | None = None,
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores of ``prediction`` against ``truth`` over the prediction's ROI (or ``roi_voxels``),
    inside ``masks``.

    Args:
        prediction: probabilities (uint8 p * 255 or float; give ``threshold``) or class ids.
        truth: label dataset (class ids; nonzero = object), same voxel size, containing the
            prediction's ROI (nm).
        masks: datasets whose zero voxels are left out (cell mask, metric mask).
        threshold: probability in [0, 1]; given, the prediction is a probability map and
            voxels with p >= threshold are positive. None: the prediction holds class ids.
        sweep: thresholds (probabilities) to score as well; the best F1 is reported. Needs
            ``threshold``.
        truth_class: score this truth id against everything else (prediction: p >= threshold,
            or nonzero); None: probabilities score nonzero truth, labels compare ids.
        objects: also compute object precision/recall/F1 (matches at IoU >= 0.5).
        roi_voxels: score only this box: offset z, y, x and shape z, y, x in voxels (offset =
            world nm / voxel size), inside the prediction; None: the prediction's whole ROI.
            Objects are cut at its faces.
        block_edge: block edge in voxels.
        num_workers: worker processes (0: every block in this process).
        progress: show progress bars.

    Returns a JSON-ready dict: ``classes`` (name → f1, precision, recall, iou, dice, tp, fp,
    fn), ``sweep`` and ``best`` (with a threshold), ``objects`` (name → object scores).
    """
    predicted = spatial_array(prediction)
    roi, voxel_size = predicted.roi, predicted.voxel_size
    if roi_voxels is not None:
        roi = roi_inside(roi_voxels, voxel_size, roi, f"--roi (inside the prediction {prediction})")
    _check_inputs(prediction, predicted, truth, masks, threshold, sweep, roi)
    probability = threshold is not None
    thresholds = sorted(set([threshold, *(sweep or [])])) if probability else []
    cuts = None
    if probability:
        uint8 = predicted.dtype == np.uint8
        cuts = tuple(float(level_for_threshold(t)) if uint8 else t for t in thresholds)
    masks = tuple(masks)
    with scratch_folder(prefix="incasem-evaluate-") as scratch:
        run_in_blocks(
            _CountBlock(prediction, truth, masks, cuts, truth_class, str(scratch)),
            roi,
            None,
            voxel_size,
            block_edge=block_edge,
            num_workers=num_workers,
            name="evaluate",
            progress=progress,
        )
        parts = load_parts(scratch)
    attrs = dict(prediction.zarr().attrs)
    report: dict[str, Any] = {
        "prediction": str(prediction),
        "truth": str(truth),
        "masks": [str(m) for m in masks],
        "roi_nm": {"offset": list(roi.offset), "shape": list(roi.shape)},
        "threshold": threshold,
        "truth_class": truth_class,
    }
    sources = (prediction, truth, masks)
    if probability:
        object_sources = _probability_scores(report, parts, thresholds, sweep, attrs, sources)
    else:
        object_sources = _label_scores(report, parts, truth_class, attrs, sources)
    if objects:
        report["objects"] = {
            name: _object_scores(p, t, roi, block_edge, voxel_size, num_workers, progress)
            for name, (p, t) in object_sources.items()
        }
    return report
