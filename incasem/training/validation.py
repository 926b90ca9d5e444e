"""Validation during training: every entry of the validation config scored through the
prediction code path, the threshold sweep summed over them, and the best checkpoint tracked.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from incasem.io.data_config import DataConfig, DataEntry
from incasem.metrics import level_for_threshold, quantise
from incasem.postprocess.cleanup import MAX_VOXELS, choose_post_processing
from incasem.torch.checkpoint import DEFAULT_NORMALISATION
from incasem.tracking.run_folder import MULTI_CLASS_RULE, read_best, write_best
from incasem.training.config import TrainingConfig

#: The validation score that picks the best checkpoint: F1 at the model's own best threshold.
BEST_METRIC = "best_f1"

#: Metrics keys of the post-processing validation chooses (two classes): fill holes (1 or 0),
#: the minimum object size (nm³) and the F1 at the best threshold after post-processing.
FILL_HOLES, MIN_OBJECT_NM3, POST_F1 = (
    "post_processing/fill_holes",
    "post_processing/min_object_nm3",
    "post_processing/f1",
)

logger = logging.getLogger(__name__)


class _EntryVolume:
    """One validation entry's class-1 probability levels, truth and region (z, y, x), put
    together from its blocks, to choose the post-processing on (objects span blocks)."""

    def __init__(self, entry: DataEntry):
        self.roi, self.voxel_size = entry.roi, Coordinate(entry.voxel_size)
        shape = tuple(entry.shape)
        self.levels = np.zeros(shape, np.uint8)
        self.truth = np.zeros(shape, bool)
        self.region = np.zeros(shape, bool)

    def __call__(
        self, write_roi: Roi, probabilities: np.ndarray, class_ids: np.ndarray, region: np.ndarray
    ) -> None:
        begin = (write_roi.begin - self.roi.begin) / self.voxel_size
        shape = write_roi.shape / self.voxel_size
        index = tuple(slice(b, b + s) for b, s in zip(begin, shape, strict=True))
        self.levels[index] = quantise(probabilities[1])
        self.truth[index] = class_ids == 1
        self.region[index] = region

    def volume(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(foreground at ``threshold``, truth, region), as `choose_post_processing` takes."""
        return self.levels >= level_for_threshold(threshold), self.truth, self.region


class _Validator:
    """Validates a model on every entry of the validation config and tracks the best checkpoint.

    Counts and probability histograms are summed over the entries, so the threshold sweep is
    one sweep over all validation voxels. The best checkpoint is the one with the highest F1 at
    its own best threshold (``best_f1``): a fixed 0.5 would rank models by how well their
    probabilities happen to be centred, not by how well they separate the classes. With several
    foreground classes ``best_f1`` is the mean of each class's (`incasem.metrics.foreground_mean`),
    so a checkpoint is never chosen on one class alone.
    """

    def __init__(self, config: TrainingConfig, data: DataConfig, run_dir: Path):
        self.config = config
        self.data = data
        self.run_dir = run_dir
        best = read_best(run_dir)
        comparable = (
            best is not None
            and best.get("metric") == BEST_METRIC
            and (best.get("rule") == MULTI_CLASS_RULE or config.data.num_classes == 2)
        )  # a best.json from before the rule ranked class 1 alone
        self.best_value = best["value"] if comparable else -1.0
        self.best_iteration = best["iteration"] if best else None
        self.chooses_post_processing = config.data.num_classes == 2 and self._fits(data)

    @staticmethod
    def _fits(data: DataConfig) -> bool:
        """Whether every validation entry fits the post-processing choice in memory."""
        large = [e.name for e in data if int(np.prod(e.shape)) > MAX_VOXELS]
        if large:
            logger.warning(
                "validation chooses no post-processing: %s larger than %s voxels",
                ", ".join(large), f"{MAX_VOXELS:,}",
            )  # fmt: skip
        return not large

    def __call__(self, model: torch.nn.Module, iteration: int) -> dict[str, float]:
        from incasem.predict.evaluate import entry_scores, score_entry

        totals = None
        volumes = []
        for entry in self.data:
            volume = _EntryVolume(entry) if self.chooses_post_processing else None
            scored = score_entry(
                model,
                entry,
                self.config.directories.data,
                input_size_voxels=self._input_size(model, entry),
                voxel_size=self.config.data.voxel_size,
                normalisation=DEFAULT_NORMALISATION,
                device=self.config.torch.device,
                collect=volume,
            )
            volumes += [volume] if volume is not None else []
            totals = scored if totals is None else (totals[0] + scored[0], totals[1] + scored[1])
        assert totals is not None
        metrics = entry_scores(*totals, class_names=self.config.class_names)
        if volumes:
            threshold = metrics["best_threshold"]
            chosen, f1 = choose_post_processing(
                [v.volume(threshold) for v in volumes], self.config.data.voxel_size
            )
            metrics |= {
                FILL_HOLES: float(chosen.fill_holes),
                MIN_OBJECT_NM3: chosen.min_object_nm3,
                POST_F1: f1,
            }
        return metrics

    def _input_size(self, model: torch.nn.Module, entry: DataEntry) -> list[int]:
        """Block input (voxels, z y x) for validating ``entry``.

        Default: the training input, cut along each axis to what the entry's ROI needs, so the
        validation allocates no more than a training step (larger blocks slow every later
        training step on a CPU: glibc keeps the heap they grew) and a thin ROI is not padded
        with a training block's depth of context. ``auto``: the largest block the memory
        allows, as prediction's ``input_size_voxels: auto``. Or the size given.
        """
        from incasem.predict.block_size import (
            fit_input_to_roi,
            largest_input_shape,
            memory_budget,
        )

        network = getattr(model, "module", model)  # the average of AveragedModel
        factors, head = network.downsample_factors, network.head_kernel_size
        size = self.config.validation.input_size_voxels
        training = list(self.config.training.input_size_voxels)
        if size is None:
            return fit_input_to_roi(training, [entry.shape], factors, head)
        if size == "auto":
            device = "cuda" if str(self.config.torch.device).startswith("cuda") else "cpu"
            budget = memory_budget(device, 1)
            return largest_input_shape(
                budget, network.num_fmaps, factors, head, [entry.shape], training
            )
        return list(size)

    def is_best(self, iteration: int, metrics: dict[str, float]) -> bool:
        value = metrics[BEST_METRIC]
        if value > self.best_value:
            self.best_value, self.best_iteration = value, iteration
            keys = {name: f"{name}/{BEST_METRIC}" for name in self.config.class_names[1:]}
            classes = {name: metrics[key] for name, key in keys.items() if key in metrics}
            write_best(
                self.run_dir,
                iteration,
                BEST_METRIC,
                value,
                _threshold(self.config, metrics),
                classes,
            )
            return True
        return False


def _threshold(config: TrainingConfig, metrics: dict[str, float] | None) -> float | None:
    """The calibrated decision threshold in ``metrics`` (two classes only; more classes are
    decided by the argmax)."""
    if not metrics or config.data.num_classes != 2:
        return None
    return metrics.get("best_threshold")


def _post_processing(metrics: dict[str, float] | None) -> tuple[bool, float]:
    """(fill holes, minimum object size in nm³) validation chose, in ``metrics``; none where
    it chose none (more than two classes, no validation)."""
    if not metrics or FILL_HOLES not in metrics:
        return False, 0.0
    return bool(metrics[FILL_HOLES]), float(metrics[MIN_OBJECT_NM3])
