"""The training loop around the gunpowder pipeline.

The loop, not gunpowder's Train node, owns checkpoints, validation and logging, because each
needs more than the node offers: checkpoints must describe their model and be written
atomically (`incasem.torch.checkpoint`), validation must run the prediction code path on whole
ROIs (`incasem.predict.evaluate_entry`), and every number goes to TensorBoard and Sacred alike.
Everything is checked before the first batch is drawn (data configs against the data, sizes
against the network), so a mistake costs seconds, not a night.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gunpowder as gp
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from incasem.digest import digest_files
from incasem.errors import IncasemError
from incasem.gunpowder import Prefetch
from incasem.io import open_array
from incasem.io.data_config import DataConfig, DataEntry, check_data_config, entry_voxel_size
from incasem.io.intensity import sample_histogram
from incasem.metrics import format_scores
from incasem.pipeline.extra_nodes import check_extra_nodes, describe_nodes
from incasem.torch.checkpoint import (
    DEFAULT_NORMALISATION,
    ModelCard,
    load_checkpoint,
    save_checkpoint,
)
from incasem.torch.loss import MaskedBalancedCrossEntropy
from incasem.torch.models import ASEMUNet, initialise_weights, output_shape, place_model
from incasem.tracking.run_folder import (
    MULTI_CLASS_RULE,
    checkpoint_path,
    list_checkpoints,
    read_best,
    training_curves_path,
    write_best,
)
from incasem.tracking.runs import resumed_curves
from incasem.training.config import TrainingConfig
from incasem.training.schedule import budget_fraction, learning_rate
from incasem.viz.curves import plot_training_curves

logger = logging.getLogger(__name__)

#: The validation score that picks the best checkpoint: F1 at the model's own best threshold.
BEST_METRIC = "best_f1"

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


@dataclass
class TrainingData:
    """The data configs of a training run, validated against the data on disk."""

    train: DataConfig
    train_files: list[str]
    validation: DataConfig | None
    #: (directories.data, training.data, validation.data) they were read from.
    sources: tuple[str, str | None, str | None] = ("", None, None)


def check_training_config(config: TrainingConfig) -> TrainingData:
    """Everything that can be checked before training: sizes against the network, data configs
    against the data on disk, voxel sizes against ``data.voxel_size``. Raises `IncasemError`."""
    if config.training.data is None:
        raise IncasemError("training.data is not set: give a data config JSON")
    _check_sizes(config)
    check_extra_nodes(config.training.pipeline.extra_nodes)
    train, train_files = _load_data(config.training.data, "training.data", config)
    _check_outputs_fit(train, config)
    _check_class_voxels(train, config)
    validation = None
    if config.validation.data:
        validation, _ = _load_data(config.validation.data, "validation.data", config)
    sources = (config.directories.data, config.training.data, config.validation.data)
    return TrainingData(train, train_files, validation, sources)


def _check_sizes(config: TrainingConfig) -> None:
    factors = config.model.downsample_factors
    input_size = config.training.input_size_voxels
    try:
        expected = output_shape(input_size, factors)
    except ValueError as e:
        raise IncasemError(f"training.input_size_voxels {input_size}: {e}") from None
    if list(expected) != list(config.training.output_size_voxels):
        raise IncasemError(
            f"training.output_size_voxels is {config.training.output_size_voxels} but the model "
            f"gives {list(expected)} for training.input_size_voxels {input_size}"
        )
    validation = config.validation
    if validation.input_size_voxels not in (None, "auto"):
        try:
            validation_output = output_shape(validation.input_size_voxels, factors)
        except ValueError as e:
            raise IncasemError(
                f"validation.input_size_voxels {validation.input_size_voxels}: {e}"
            ) from None
        wanted = validation.output_size_voxels
        if wanted is not None and list(wanted) != list(validation_output):
            raise IncasemError(
                f"validation.output_size_voxels is {wanted} but the model gives "
                f"{list(validation_output)} for validation.input_size_voxels "
                f"{validation.input_size_voxels}"
            )


def _check_outputs_fit(data: DataConfig, config: TrainingConfig) -> None:
    """Fail at once, with the plan for this data, when no annotated ROI can hold the share of
    an output block that ``training.reject.min_valid`` asks for: sampling would try for minutes
    and then blame the labels (e.g. a 110-section output on a 14-section ROI)."""
    from incasem.training.plan import plan_network, unreachable_valid_fraction

    shapes = {entry.name: list(entry.shape) for entry in data}
    message = unreachable_valid_fraction(
        config.training.output_size_voxels, shapes, config.training.reject.min_valid
    )
    if message is None:
        return
    try:
        plan = plan_network(config.data.voxel_size, list(shapes.values()), config.model.num_fmaps)
    except IncasemError as e:
        raise IncasemError(f"{message}; {e}") from None
    raise IncasemError(
        f"{message}. 'incasem plan {config.training.data}' proposes {plan.config_arguments()} "
        "(or set these keys to auto)"
    )


def _check_class_voxels(data: DataConfig, config: TrainingConfig) -> None:
    """Refuse training data in which a class has no voxel at all: such a run would train at a
    constant loss and learn nothing of that class. Entries without a class are only logged
    (background-only blocks are a normal part of sparse annotation)."""
    from incasem.predict.truth import EntryTruth

    num_classes, names = config.data.num_classes, config.class_names
    total = np.zeros(num_classes, np.int64)
    for entry in data:
        counts = EntryTruth(entry, config.directories.data).class_counts(entry.roi, num_classes)
        total += counts
        missing = [f"{names[c]} ({c})" for c in range(1, num_classes) if counts[c] == 0]
        if missing:
            logger.info("%s: no voxel of %s in its ROI", entry.name, ", ".join(missing))
    empty = [f"{names[c]} ({c})" for c in range(1, num_classes) if total[c] == 0]
    if empty:
        raise IncasemError(
            f"training.data {config.training.data}: no entry has a single voxel of class "
            f"{', '.join(empty)} inside its ROI and mask; the labels are empty or the class ids "
            "do not match (incasem validate prints the voxels per class)"
        )


def _load_data(paths: str, role: str, config: TrainingConfig) -> tuple[DataConfig, list[str]]:
    data = check_data_config(
        paths, data_root=config.directories.data, num_classes=config.data.num_classes
    )
    voxel_size = list(entry_voxel_size(data))
    if voxel_size != list(config.data.voxel_size):
        raise IncasemError(
            f"{role} {paths}: entries have voxel size {voxel_size} nm but data.voxel_size is "
            f"{config.data.voxel_size}"
        )
    return data, [p.strip() for p in paths.split(",") if p.strip()]


def build_model(config: TrainingConfig) -> ASEMUNet:
    """The network described by ``config.model`` and ``config.data`` (untrained, initialised
    as ``model.initialisation`` says)."""
    model = ASEMUNet(
        in_channels=1,
        num_classes=config.data.num_classes,
        num_fmaps=config.model.num_fmaps,
        fmap_inc_factor=config.model.fmap_inc_factor,
        downsample_factors=config.model.downsample_factors,
        constant_upsample=config.model.constant_upsample,
    )
    return initialise_weights(model, config.model.initialisation)


#: The config key of each network constructor argument (``ASEMUNet.hparams``) the config sets.
HPARAM_CONFIG_KEYS = {
    "num_classes": "data.num_classes",
    "num_fmaps": "model.num_fmaps",
    "fmap_inc_factor": "model.fmap_inc_factor",
    "downsample_factors": "model.downsample_factors",
    "constant_upsample": "model.constant_upsample",
}


def check_start_from(
    checkpoint_hparams: dict[str, Any], configured: dict[str, Any], path: str | os.PathLike
) -> None:
    """Raise `IncasemError` naming each config key whose value builds a network other than the
    checkpoint's (fine-tuning loads its weights, so the architectures must be equal)."""
    differences = [
        f"{HPARAM_CONFIG_KEYS.get(key, key)} {configured.get(key)!r} (the checkpoint's: {value!r})"
        for key, value in checkpoint_hparams.items()
        if configured.get(key) != value
    ]
    differences += [f"{key} (not in the checkpoint)" for key in configured if key not in
                    checkpoint_hparams]  # fmt: skip
    if differences:
        raise IncasemError(
            f"--start_from {path}: the configured network differs from the checkpoint's: "
            + "; ".join(differences)
            + " (leave these keys unset to take them from the checkpoint)"
        )


def build_optimizer(config: TrainingConfig, model: torch.nn.Module) -> torch.optim.Adam:
    """Adam with ``training.optimizer.lr`` and ``training.optimizer.weight_decay``."""
    return torch.optim.Adam(
        model.parameters(),
        lr=config.training.optimizer.lr,
        weight_decay=config.training.optimizer.weight_decay,
    )


def training_raw_histogram(data: DataConfig, data_root: str | None) -> list[int]:
    """Grey-value counts (256 levels) of the training raw, sampled over every entry's ROI, for
    the model card (see `incasem.io.intensity`)."""
    counts = sum(
        sample_histogram(open_array(entry.path(data_root), entry.raw), entry.roi) for entry in data
    )
    return [int(c) for c in counts]


def build_weight_average(config: TrainingConfig, model: torch.nn.Module) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights, or None without
    ``training.weight_averaging.enabled``.

    Why: with the high learning rates that make a CPU budget count, the weights of any one step
    are noisy, and so is a validation of them; their running average (decay
    ``training.weight_averaging.decay`` per iteration, a memory of about ``1 / (1 - decay)``
    iterations) is the better model at every point of a run, not just after the learning rate
    has decayed. Validation, checkpoints and prediction use the average; the optimizer keeps
    stepping the raw weights. The average is bias-corrected (`bias_corrected_ema`), so a run
    shorter than its memory averages the weights it has seen rather than keeping most of the
    first ones.
    """
    averaging = config.training.weight_averaging
    if not averaging.enabled:
        return None
    return AveragedModel(model, multi_avg_fn=bias_corrected_ema(averaging.decay))


def bias_corrected_ema(decay: float) -> Callable[[list, list, torch.Tensor], None]:
    """The ``multi_avg_fn`` of an exponential moving average normalised over the steps seen.

    After the weights ``w_0 .. w_n`` the average is ``sum d^(n-t) w_t / sum d^(n-t)``: update n
    (n averaged so far) keeps ``d (1 - d^n) / (1 - d^(n+1))`` of the average and takes the rest
    from ``w_n``. It equals the plain EMA (``d``) once ``d^n`` is small; before that the plain
    EMA still holds ``d^n`` of the first weights (54 % after 63 iterations at 0.99), the
    random initialisation a short run validates and saves as its model.
    """

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        keep = decay * (1 - decay**n) / (1 - decay ** (n + 1))
        for average, weights in zip(averaged, current, strict=True):
            if torch.is_floating_point(average):
                average.lerp_(weights, 1 - keep)
            else:
                average.copy_(weights)

    return update


def configure_device(device: str) -> None:
    """Let cuDNN pick the fastest convolution algorithms for ``device`` when it is a GPU.

    Training batches always have the same shape, so the one-off autotuning at the first
    iteration pays for itself; on the CPU the setting has no effect.
    """
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's random generators (gunpowder draws from the first
    two), so that a run's initial weights and first batches are reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _BatchWaiting:
    """How much of the training iterations' time went to waiting for prepared batches.

    `Prefetch` counts the seconds it waited for upstream; set against the seconds of whole
    iterations this says whether ``precache.num_workers`` processes keep the model busy. Without
    a Prefetch node nothing is measured.
    """

    def __init__(self, prefetch: Prefetch | None) -> None:
        self.prefetch = prefetch
        self.step_s = 0.0
        self._window = (0.0, 0.0)

    def add(self, seconds: float) -> None:
        self.step_s += seconds

    def window_fraction(self) -> float | None:
        """Fraction of the time since `new_window` spent waiting (None if not measured)."""
        step_s = self.step_s - self._window[0]
        if self.prefetch is None or step_s <= 0:
            return None
        return (self.prefetch.waited_s - self._window[1]) / step_s

    def new_window(self) -> None:
        if self.prefetch is not None:
            self._window = (self.step_s, self.prefetch.waited_s)

    def report(self, num_workers: int) -> None:
        if self.prefetch is None or self.step_s <= 0:
            return
        fraction = self.prefetch.waited_s / self.step_s
        logger.info("waited for prepared batches %.0f%% of the iterations' time", 100 * fraction)
        if fraction > 0.1:
            logger.warning(
                "training waited for prepared batches %.0f%% of the time: batch preparation is "
                "the bottleneck; raise training.precache.num_workers (now %d) if cores are free",
                100 * fraction,
                num_workers,
            )


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


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint at ``iteration``.

    A KeyboardInterrupt, so that Sacred records the run as INTERRUPTED.
    """

    def __init__(self, signum: int, iteration: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} at iteration {iteration}")
        self.signum = signum
        self.iteration = iteration


class _StopSignals:
    """Turns SIGTERM and SIGINT into a request to stop after the current iteration.

    Clusters (SLURM, LSF) send SIGTERM at a job's time limit, a while before SIGKILL; stopping
    between iterations leaves the model and optimizer consistent for the checkpoint that
    follows. A second signal interrupts at once. Outside the main thread (where handlers cannot
    be installed) nothing changes.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A PreCache worker forked with these handlers: it must die as gunpowder's
            # teardown (SIGTERM) or the cluster means it to.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning(
            "%s: stopping after this iteration with a checkpoint (again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class _TrainingClock:
    """Seconds spent training, validation and checkpoint writing excluded, against a budget.

    ``training.max_minutes`` and the learning-rate schedule count only these seconds, so a run
    with frequent validation trains as long as one without.
    """

    def __init__(self, max_minutes: float | None) -> None:
        self.max_minutes = max_minutes
        self._started: float | None = None
        self._paused_s = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._paused_s = 0.0

    def training_s(self) -> float:
        if self._started is None:
            return 0.0
        return time.perf_counter() - self._started - self._paused_s

    def out_of_time(self) -> bool:
        return self.max_minutes is not None and self.training_s() >= 60.0 * self.max_minutes

    @contextmanager
    def paused(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused_s += time.perf_counter() - start


class _LossReader:
    """Reads each step's loss one step late and hands it on exactly.

    `incasem.gunpowder.DeferredLossTrain` leaves the loss on the device; reading it right away
    would make the host wait for the GPU to finish the step. Read after the next step has been
    queued, it costs no wait. ``on_loss(iteration, loss, learning_rate)`` sees every step's
    loss, in order; `flush` hands on the last one (before validation and at the end).
    """

    def __init__(self, on_loss: Callable[[int, float, float], None]) -> None:
        self._on_loss = on_loss
        self._pending: tuple[int, Any, float] | None = None

    def push(self, iteration: int, loss: Any, rate: float) -> None:
        """Hand on the previous step's loss and keep this one (a 0-d tensor or a number)."""
        self.flush()
        self._pending = (iteration, loss, rate)

    def flush(self) -> None:
        """Hand on the kept loss, if any."""
        if self._pending is not None:
            iteration, loss, rate = self._pending
            self._pending = None
            self._on_loss(iteration, float(loss), rate)


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


def _class_fractions(batch: gp.Batch, keys: Any, class_names: list[str]) -> dict[str, float]:
    """Fraction of each class among the batch's known (valid) label voxels."""
    valid = batch[keys.valid].data > 0
    labels = batch[keys.labels].data[valid]
    return {
        name: float((labels == class_id).mean()) if labels.size else 0.0
        for class_id, name in enumerate(class_names)
    }


def _request_batch(pipeline: gp.Pipeline, request: gp.BatchRequest) -> gp.Batch:
    try:
        return pipeline.request_batch(request)
    except Exception as e:
        # gunpowder re-raises node errors as its own type with the original only in the text;
        # a sampling dead end is a user error (config vs annotations), not a crash.
        for line in str(e).splitlines():
            _, marker, message = line.partition("SamplingError: ")
            if marker:
                raise IncasemError(message) from None
        written = _os_error(e)
        if written is not None:  # e.g. a full disk while the Snapshot node writes
            where = f": {written.filename}" if written.filename else ""
            raise IncasemError(
                f"training stopped: cannot write ({written.strerror or written}{where}); the "
                "checkpoints saved before are intact"
            ) from None
        raise


def _os_error(error: BaseException) -> OSError | None:
    """The OSError a gunpowder error was raised from, if any: gunpowder re-raises node errors
    ``from None``, which keeps the original as the exceptions' ``__context__``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__context__
    return None


def _initial_weights(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averaged: AveragedModel | None,
    resume: bool,
    start_from: str | os.PathLike | None,
) -> int:
    """Load the weights a run starts from (see `train`); returns the iteration it continues
    from (0 for a new run or fine-tuning)."""
    if resume:
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints:
            raise IncasemError(f"{run_dir}: no checkpoint to continue from")
        first_iteration = max(checkpoints)
        loaded = load_checkpoint(checkpoints[first_iteration])
        model.load_state_dict(loaded.training_state or loaded.model.state_dict())
        if averaged is not None:
            averaged.module.load_state_dict(loaded.model.state_dict())
            averaged.n_averaged.fill_(first_iteration)
        if loaded.optimizer_state is not None:
            optimizer.load_state_dict(loaded.optimizer_state)
        logger.info("continuing %s from iteration %d", run_dir, first_iteration)
        return first_iteration
    if start_from is not None:
        loaded = load_checkpoint(start_from)
        check_start_from(loaded.card.hparams, model.hparams(), start_from)
        model.load_state_dict(loaded.model.state_dict())
        if averaged is not None:
            averaged.module.load_state_dict(loaded.model.state_dict())
        logger.info("fine-tuning from %s (iteration %d)", start_from, loaded.card.iteration)
    elif list_checkpoints(run_dir):
        raise IncasemError(f"{run_dir} already has checkpoints; continue that run instead")
    return 0


def _model_card(config: TrainingConfig, model: ASEMUNet, data: TrainingData) -> ModelCard:
    """The card saved with every checkpoint of the run (iteration, metrics and threshold are
    filled in at each save)."""
    return ModelCard(
        hparams=model.hparams(),
        input_size_voxels=list(config.training.input_size_voxels),
        output_size_voxels=list(config.training.output_size_voxels),
        voxel_size=list(config.data.voxel_size),
        class_names=config.class_names,
        data_digest=digest_files(data.train_files),
        raw_histogram=training_raw_histogram(data.train, config.directories.data),
        training_nodes=describe_nodes(config.training.pipeline.extra_nodes),
    )


class _Session:
    """One training run's logging, validation and checkpoints, around the loop in `train`.

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
        """Write the checkpoint of ``iteration`` with its validation metrics and threshold."""
        self.card.iteration = iteration
        self.card.metrics = dict(metrics or {})
        self.card.threshold = _threshold(self.config, metrics)
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
    # On the device before the optimizer is made (its state follows the parameters) and before
    # the validation at iteration 0, which runs ahead of the Train node that would move it.
    model = place_model(build_model(config), config.torch.device)
    optimizer = build_optimizer(config, model)
    averaged = build_weight_average(config, model)
    first_iteration = _initial_weights(
        run_dir, model, optimizer, averaged, resume=resume, start_from=start_from
    )
    loss = MaskedBalancedCrossEntropy(
        config.loss.weight, dice=config.loss.type == "cross_entropy_dice"
    )
    from incasem.pipeline import TrainingKeys, training_pipeline, training_request

    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline, train_node, prefetch = training_pipeline(
        config,
        data.train,
        model,
        loss,
        optimizer,
        keys,
        request,
        run_dir,
        data_root=config.directories.data,
    )
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
    iterations = range(first_iteration + 1, config.training.iterations + 1)
    session.bar = tqdm(iterations, desc="training", unit="it", disable=not progress)
    losses = _LossReader(session.record_loss)
    waiting = _BatchWaiting(prefetch)
    stop = _StopSignals()
    try:
        with stop, gp.build(pipeline):
            train_node.iteration = first_iteration
            session.clock.start()
            for iteration in session.bar:
                if stop.signal is not None or session.out_of_time(iteration):
                    break
                rate = _set_learning_rate(optimizer, config, iteration, session.clock.training_s())
                start = time.perf_counter()
                batch = _request_batch(pipeline, request)
                if averaged is not None:
                    averaged.update_parameters(model)
                waiting.add(time.perf_counter() - start)
                losses.push(iteration, batch.loss, rate)
                session.result.last_iteration = iteration
                if iteration % config.training.log_every == 0:
                    session.log_batch(iteration, batch, keys, waiting)
                session.checkpoint(iteration, losses)
        losses.flush()
        session.finish(stop.signal, waiting)
    finally:
        session.writer.close()
    session.result.empty_batches = loss.empty_batches
    return session.result
