"""The model a run trains and what it starts from: the network, its optimizer and weight
average, the device and seeds, and the weights loaded to continue a run or fine-tune.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from incasem.errors import IncasemError
from incasem.torch.checkpoint import load_checkpoint
from incasem.torch.models import ASEMUNet, initialise_weights
from incasem.tracking.run_folder import list_checkpoints
from incasem.training.config import TrainingConfig

logger = logging.getLogger(__name__)


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
        normalisation=config.model.normalisation,
        residual=config.model.residual,
        deep_supervision=config.model.deep_supervision,
    )
    return initialise_weights(model, config.model.initialisation)


#: The config key of each network constructor argument (``ASEMUNet.hparams``) the config sets.
HPARAM_CONFIG_KEYS = {
    "num_classes": "data.num_classes",
    "num_fmaps": "model.num_fmaps",
    "fmap_inc_factor": "model.fmap_inc_factor",
    "downsample_factors": "model.downsample_factors",
    "constant_upsample": "model.constant_upsample",
    "normalisation": "model.normalisation",
    "residual": "model.residual",
    "deep_supervision": "model.deep_supervision",
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


def _initial_weights(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averaged: AveragedModel | None,
    resume: bool,
    start_from: str | os.PathLike | None,
) -> int:
    """Load the weights a run starts from (see `incasem.training.loop.train`); returns the
    iteration it continues from (0 for a new run or fine-tuning)."""
    if resume:
        return _continue_run(run_dir, model, optimizer, averaged)
    if start_from is not None:
        _fine_tune(start_from, model, averaged)
    elif list_checkpoints(run_dir):
        raise IncasemError(f"{run_dir} already has checkpoints; continue that run instead")
    return 0


def _continue_run(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averaged: AveragedModel | None,
) -> int:
    """Load the latest checkpoint of ``run_dir``: training weights, average, optimizer state;
    returns its iteration."""
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


def _fine_tune(
    start_from: str | os.PathLike, model: torch.nn.Module, averaged: AveragedModel | None
) -> None:
    """Load the weights of the checkpoint ``start_from`` (its architecture must be the
    configured one) into the model and its average."""
    loaded = load_checkpoint(start_from)
    check_start_from(loaded.card.hparams, model.hparams(), start_from)
    model.load_state_dict(loaded.model.state_dict())
    if averaged is not None:
        averaged.module.load_state_dict(loaded.model.state_dict())
    logger.info("fine-tuning from %s (iteration %d)", start_from, loaded.card.iteration)
