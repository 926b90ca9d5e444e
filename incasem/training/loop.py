"""The training loop around the gunpowder pipeline.

The loop, not gunpowder's Train node, owns checkpoints, validation and logging, because each
needs more than the node offers: checkpoints must describe their model and be written
atomically (`incasem.torch.checkpoint`), validation must run the prediction code path on whole
ROIs (`incasem.predict.evaluate_entry`), and every number goes to TensorBoard and Sacred alike.
Everything is checked before the first batch is drawn (`incasem.training.checks`), so a mistake
costs seconds, not a night.

The parts live in modules of their own: the checks (`incasem.training.checks`), the model and
what it starts from (`incasem.training.model_setup`), validation (`incasem.training.validation`),
stop signals (`incasem.training.signals`), the measurements of the iterations
(`incasem.training.meters`), the model card (`incasem.training.card`) and the session that
logs, validates and saves (`incasem.training.session`). Their public names are importable from
here too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gunpowder as gp
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from incasem.errors import IncasemError
from incasem.torch.loss import MaskedBalancedCrossEntropy
from incasem.torch.models import place_model
from incasem.tracking.runs import resumed_curves
from incasem.training.card import _model_card, training_raw_histogram
from incasem.training.checks import TrainingData, check_training_config
from incasem.training.config import TrainingConfig
from incasem.training.meters import _BatchWaiting, _LossReader
from incasem.training.model_setup import (
    HPARAM_CONFIG_KEYS,
    _initial_weights,
    bias_corrected_ema,
    build_model,
    build_optimizer,
    build_weight_average,
    check_start_from,
    configure_device,
    seed_everything,
)
from incasem.training.schedule import budget_fraction, learning_rate
from incasem.training.session import ScalarLogger, TrainingResult, _Session
from incasem.training.signals import TrainingInterrupted, _StopSignals
from incasem.training.validation import BEST_METRIC, _Validator

__all__ = [
    "BEST_METRIC",
    "HPARAM_CONFIG_KEYS",
    "ScalarLogger",
    "TrainingData",
    "TrainingInterrupted",
    "TrainingResult",
    "bias_corrected_ema",
    "build_model",
    "build_optimizer",
    "build_weight_average",
    "check_start_from",
    "check_training_config",
    "configure_device",
    "seed_everything",
    "train",
    "training_raw_histogram",
]


def _set_learning_rate(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, iteration: int, training_s: float
) -> float:
    """Set and return the scheduled learning rate of ``iteration`` (counted from 1), given the
    training time so far (seconds; a ``max_minutes`` budget schedules by time)."""
    schedule = config.training.optimizer
    rate = learning_rate(
        schedule.lr,
        schedule.schedule,
        budget_fraction(
            iteration - 1, config.training.iterations, training_s, config.training.max_minutes
        ),
        iteration,
        schedule.warmup_iterations,
        schedule.final_lr_fraction,
    )
    for group in optimizer.param_groups:
        group["lr"] = rate
    return rate


def _request_batch(pipeline: gp.Pipeline, request: gp.BatchRequest) -> gp.Batch:
    """The next batch; a sampling dead end or a failed write is one line (`IncasemError`)."""
    try:
        return pipeline.request_batch(request)
    except Exception as e:
        message = _sampling_error(e)
        if message is not None:
            raise IncasemError(message) from None
        written = _os_error(e)
        if written is not None:  # e.g. a full disk while the Snapshot node writes
            where = f": {written.filename}" if written.filename else ""
            raise IncasemError(
                f"training stopped: cannot write ({written.strerror or written}{where}); the "
                "checkpoints saved before are intact"
            ) from None
        raise


def _sampling_error(error: BaseException) -> str | None:
    """The message of the `SamplingError` a gunpowder error carries, if any: gunpowder
    re-raises node errors as its own type with the original only in the text, and a sampling
    dead end is a user error (config vs annotations), not a crash."""
    for line in str(error).splitlines():
        _, marker, message = line.partition("SamplingError: ")
        if marker:
            return message
    return None


def _os_error(error: BaseException) -> OSError | None:
    """The OSError a gunpowder error was raised from, if any: gunpowder re-raises node errors
    ``from None``, which keeps the original as the exceptions' ``__context__``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__context__
    return None


@dataclass
class _Run:
    """What the iterations of one run work with."""

    config: TrainingConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    averaged: AveragedModel | None
    keys: Any
    request: gp.BatchRequest
    pipeline: Any  # incasem.pipeline.TrainingPipeline
    session: _Session


def _model_and_optimizer(
    config: TrainingConfig,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, AveragedModel | None]:
    """The network on its device, its optimizer and its weight average (None without one)."""
    # On the device before the optimizer is made (its state follows the parameters) and before
    # the validation at iteration 0, which runs ahead of the Train node that would move it.
    model = place_model(build_model(config), config.torch.device)
    optimizer = build_optimizer(config, model)
    return model, optimizer, build_weight_average(config, model)


def _assemble_pipeline(
    config: TrainingConfig,
    data: TrainingData,
    model: torch.nn.Module,
    loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    run_dir: Path,
) -> tuple[Any, gp.BatchRequest, Any]:
    """The batch's keys, its request and the training pipeline, from the config's pipeline
    settings (`incasem.pipeline.settings`)."""
    from incasem.pipeline import TrainingKeys, training_pipeline, training_request

    settings = config.pipeline_settings()
    keys = TrainingKeys.create()
    request = training_request(settings, keys)
    pipeline = training_pipeline(
        settings,
        data.train,
        model,
        loss,
        optimizer,
        keys,
        request,
        run_dir,
        data_root=config.directories.data,
    )
    return keys, request, pipeline


def _step(run: _Run, iteration: int, losses: _LossReader, waiting: _BatchWaiting) -> None:
    """One iteration: learning rate, batch (the Train node steps the model), weight average,
    loss, logs and the checkpoint when due."""
    config, session = run.config, run.session
    rate = _set_learning_rate(run.optimizer, config, iteration, session.clock.training_s())
    start = time.perf_counter()
    batch = _request_batch(run.pipeline.pipeline, run.request)
    if run.averaged is not None:
        run.averaged.update_parameters(run.model)
    waiting.add(time.perf_counter() - start)
    losses.push(iteration, batch.loss, rate)
    session.result.last_iteration = iteration
    if iteration % config.training.log_every == 0:
        session.log_batch(iteration, batch, run.keys, waiting)
    session.checkpoint(iteration, losses)


def _iterate(run: _Run, first_iteration: int, progress: bool) -> None:
    """The iterations after ``first_iteration`` until the last, the time budget or a stop
    signal; then what the session keeps of the run."""
    session = run.session
    iterations = range(first_iteration + 1, run.config.training.iterations + 1)
    session.bar = tqdm(iterations, desc="training", unit="it", disable=not progress)
    losses = _LossReader(session.record_loss)
    waiting = _BatchWaiting(run.pipeline.prefetch)
    stop = _StopSignals()
    try:
        with stop, gp.build(run.pipeline.pipeline):
            run.pipeline.train.iteration = first_iteration
            session.clock.start()
            for iteration in session.bar:
                if stop.signal is not None or session.out_of_time(iteration):
                    break
                _step(run, iteration, losses, waiting)
        losses.flush()
        session.finish(stop.signal, waiting)
    finally:
        session.writer.close()


def train(
    config: TrainingConfig,
    run_dir: str | os.PathLike,
    log_scalar: ScalarLogger | None = None,
    start_from: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    checked: TrainingData | None = None,
) -> TrainingResult:
    """Train a model as configured, writing checkpoints and logs into ``run_dir``.

    Args:
        config: the validated training config.
        run_dir: the run folder (see `incasem.training.run_dir`); created if missing.
        log_scalar: also receives every logged scalar, e.g. Sacred's ``run.log_scalar``.
        start_from: a checkpoint to fine-tune from: its weights are loaded, the iteration count
            and optimizer start fresh. The architecture must match ``config.model``.
        resume: continue from the latest checkpoint in ``run_dir`` (weights, optimizer state,
            iteration).
        progress: show a progress bar.
        checked: what `check_training_config` returned for this config, if the caller already
            checked it (the command line does, before Sacred records a run), so the data and
            its labels are not read twice.

    Raises `IncasemError` (one line) for any problem found before training starts.
    """
    run_dir = Path(run_dir)
    data = checked or check_training_config(config)
    validation = None
    if data.validation is not None:
        validation = _Validator(config, data.validation, run_dir)
    seed_everything(config.training.seed)
    configure_device(config.torch.device)
    model, optimizer, averaged = _model_and_optimizer(config)
    first_iteration = _initial_weights(
        run_dir, model, optimizer, averaged, resume=resume, start_from=start_from
    )
    loss = MaskedBalancedCrossEntropy(
        config.loss.weight,
        dice=config.loss.type == "cross_entropy_dice",
        aux_factors=model.aux_factors,
    )
    keys, request, pipeline = _assemble_pipeline(config, data, model, loss, optimizer, run_dir)
    session = _Session(
        config,
        run_dir,
        _model_card(config, model, data),
        model,
        optimizer,
        averaged,
        validation,
        log_scalar,
        TrainingResult(run_dir, first_iteration, first_iteration),
        resumed_curves(run_dir, first_iteration) if resume else {},
    )
    if validation is not None and first_iteration == 0:
        session.validate(0)
    run = _Run(config, model, optimizer, averaged, keys, request, pipeline, session)
    _iterate(run, first_iteration, progress)
    session.result.empty_batches = loss.empty_batches
    return session.result
