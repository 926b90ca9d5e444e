"""Validation during training: every entry of the validation config scored through the
prediction code path, the threshold sweep summed over them, and the best checkpoint tracked.
"""

from __future__ import annotations

from pathlib import Path

import torch

from incasem.io.data_config import DataConfig, DataEntry
from incasem.torch.checkpoint import DEFAULT_NORMALISATION
from incasem.tracking.run_folder import MULTI_CLASS_RULE, read_best, write_best
from incasem.training.config import TrainingConfig

#: The validation score that picks the best checkpoint: F1 at the model's own best threshold.
BEST_METRIC = "best_f1"


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

    def __call__(self, model: torch.nn.Module, iteration: int) -> dict[str, float]:
        from incasem.predict.evaluate import entry_scores, score_entry

        totals = None
        for entry in self.data:
            scored = score_entry(
                model,
                entry,
                self.config.directories.data,
                input_size_voxels=self._input_size(model, entry),
                voxel_size=self.config.data.voxel_size,
                normalisation=DEFAULT_NORMALISATION,
                device=self.config.torch.device,
            )
            totals = scored if totals is None else (totals[0] + scored[0], totals[1] + scored[1])
        assert totals is not None
        return entry_scores(*totals, class_names=self.config.class_names)

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
