"""One training run's session around the loop: logging to TensorBoard, the curves and Sacred,
validation, checkpoints, and what is kept when the run ends or is stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gunpowder as gp
import torch
from torch.optim.swa_utils import AveragedModel

from incasem.metrics import format_scores
from incasem.torch.checkpoint import ModelCard, save_checkpoint
from incasem.tracking.run_folder import checkpoint_path, list_checkpoints, training_curves_path
from incasem.training.config import TrainingConfig
from incasem.training.meters import _BatchWaiting, _LossReader, _TrainingClock
from incasem.training.signals import TrainingInterrupted
from incasem.training.validation import _post_processing, _threshold, _Validator
from incasem.viz.curves import plot_training_curves

logger = logging.getLogger(__name__)

#: Called as ``log(name, value, iteration)`` for every scalar (e.g. Sacred's ``log_scalar``).
ScalarLogger = Callable[[str, float, int], None]


@dataclass
class TrainingResult:
    """What a finished training run reports."""

    run_dir: Path
    first_iteration: int
    last_iteration: int
    losses: list[float] = field(default_factory=list)
    validation: dict[int, dict[str, float]] = field(default_factory=dict)
    best_iteration: int | None = None
    empty_batches: int = 0


class _Session:
    """One training run's logging, validation and checkpoints, around the loop in
    `incasem.training.loop.train`.

    What is validated, saved and handed on is the weight average when there is one (the
    training weights are saved beside it, so that a continued run resumes them).
    """

    def __init__(
        self,
        config: TrainingConfig,
        run_dir: Path,
        card: ModelCard,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        averaged: AveragedModel | None,
        validation: _Validator | None,
        log_scalar: ScalarLogger | None,
        result: TrainingResult,
        curves: dict[str, tuple[list[int], list[float]]],
    ) -> None:
        from tensorboardX import SummaryWriter

        self.config, self.run_dir, self.card = config, run_dir, card
        self.scored = model if averaged is None else averaged.module
        self.training_model = None if averaged is None else model
        self.optimizer = optimizer
        self.validation = validation
        self.log_scalar = log_scalar
        self.result = result
        self.curves = curves
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.clock = _TrainingClock(config.training.max_minutes)
        self.bar: Any = None
        self.loss_window: list[float] = []  # losses since Sacred's last loss point

    def log(self, name: str, value: float, iteration: int) -> None:
        """A scalar to TensorBoard, to the curves (loss, validation) and to Sacred."""
        self.writer.add_scalar(name, value, iteration)
        if name == "loss" or name.startswith("validation/"):
            steps, values = self.curves.setdefault(name, ([], []))
            steps.append(iteration)
            values.append(float(value))
        # Sacred keeps every scalar in one JSON file: thin per-iteration curves, keep validation
        # and the training time logged with it. Its loss is the mean since its previous point:
        # one iteration's loss every sacred.log_every is a sample whose spikes look like
        # divergence in `incasem runs plot`.
        thinned = iteration % self.config.sacred.log_every != 0 and not name.startswith(
            ("validation", "time/")
        )
        if self.log_scalar is not None and not thinned:
            if name == "loss" and self.loss_window:
                value = sum(self.loss_window) / len(self.loss_window)
                self.loss_window.clear()
            self.log_scalar(name, float(value), iteration)

    def record_loss(self, iteration: int, loss_value: float, rate: float) -> None:
        """One step's loss (and its learning rate), read one step late (`_LossReader`)."""
        self.result.losses.append(loss_value)
        self.loss_window.append(loss_value)
        self.bar.set_postfix(loss=f"{loss_value:.4f}")
        if iteration % self.config.training.log_every == 0:
            self.log("loss", loss_value, iteration)
            self.log("learning_rate", rate, iteration)

    def log_batch(self, iteration: int, batch: gp.Batch, keys: Any, waiting: _BatchWaiting) -> None:
        """The batch's class fractions and the share of time spent waiting for batches."""
        waited = waiting.window_fraction()
        if waited is not None:
            self.log("pipeline/batch_wait_fraction", waited, iteration)
        waiting.new_window()
        for name, fraction in _class_fractions(batch, keys, self.config.class_names).items():
            self.log(f"class_fraction/{name}", fraction, iteration)

    def out_of_time(self, iteration: int) -> bool:
        """Whether ``training.max_minutes`` is spent (said once, when it is)."""
        if not self.clock.out_of_time():
            return False
        logger.info(
            "training.max_minutes (%g) reached after %d iterations",
            self.config.training.max_minutes,
            iteration - 1,
        )
        return True

    def save(self, iteration: int, metrics: dict[str, float] | None = None) -> None:
        """Write the checkpoint of ``iteration`` with its validation metrics, threshold and
        post-processing."""
        self.card.iteration = iteration
        self.card.metrics = dict(metrics or {})
        self.card.threshold = _threshold(self.config, metrics)
        self.card.fill_holes, self.card.min_object_nm3 = _post_processing(metrics)
        save_checkpoint(
            checkpoint_path(self.run_dir, iteration),
            self.scored,
            self.card,
            self.optimizer,
            self.training_model,
        )

    def validate(self, iteration: int) -> None:
        """Score the model, log and plot the scores, save the checkpoint, track the best."""
        assert self.validation is not None
        with self.clock.paused():
            metrics = self.validation(self.scored, iteration)
        for name, value in metrics.items():
            self.log(f"validation/{name}", value, iteration)
        self.log("time/training_s", self.clock.training_s(), iteration)
        self.result.validation[iteration] = metrics
        plot_training_curves(
            self.curves, training_curves_path(self.run_dir), f"run {self.run_dir.name}"
        )
        if iteration > 0:
            with self.clock.paused():
                self.save(iteration, metrics)
            if self.validation.is_best(iteration, metrics):
                self.result.best_iteration = iteration
        logger.info("validation at iteration %d: %s", iteration, format_scores(metrics))

    def checkpoint(self, iteration: int, losses: _LossReader) -> None:
        """Validate (and save) or just save when ``iteration`` is due for it."""
        config = self.config
        if self.validation is not None and iteration % config.validation.validate_every == 0:
            losses.flush()
            self.validate(iteration)
        elif iteration % config.training.save_every == 0 or iteration == config.training.iterations:
            self.save(iteration)

    def finish(self, signal: int | None, waiting: _BatchWaiting) -> None:
        """After the loop: keep the last iteration (validated unless a signal stopped the run).

        Raises `TrainingInterrupted` after saving when a signal stopped the run.
        """
        result, run_dir = self.result, self.run_dir
        last = result.last_iteration
        trained = last > result.first_iteration
        if signal is not None:
            # A cluster's time limit: keep every iteration done, skip the final validation.
            if trained and last not in list_checkpoints(run_dir):
                self.save(last)
            raise TrainingInterrupted(signal, last)
        waiting.report(self.config.training.precache.num_workers)
        # The final model is always scored (so every validated run has a best.json) and kept.
        if self.validation is not None and trained and last not in result.validation:
            self.validate(last)
        elif self.validation is None and trained and last not in list_checkpoints(run_dir):
            self.save(last)
        if result.best_iteration is None and self.validation is not None:
            result.best_iteration = self.validation.best_iteration


def _class_fractions(batch: gp.Batch, keys: Any, class_names: list[str]) -> dict[str, float]:
    """Fraction of each class among the batch's known (valid) label voxels."""
    valid = batch[keys.valid].data > 0
    labels = batch[keys.labels].data[valid]
    return {
        name: float((labels == class_id).mean()) if labels.size else 0.0
        for class_id, name in enumerate(class_names)
    }
