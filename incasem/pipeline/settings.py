"""What the training pipeline needs to know, and nothing else: sizes, augmentation, sampling,
label balancing, the user's extra nodes and how batches are prepared.

The pipeline reads only this object, so it does not depend on the training configuration (a
higher room): `incasem.training.config.TrainingConfig.pipeline_settings` builds it. Values are
final: sizes in voxels and voxel sizes in nm, z, y, x; elastic distances already converted to
voxels; an augmentation that is off is None. Importing this module loads pydantic only.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from incasem.pipeline.extra_nodes import ExtraNode

Triple = tuple[int, int, int]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElasticSettings(_Settings):
    """Elastic deformation: control-point spacing (voxels), jitter sigma (voxels), z y x, and
    whether to rotate about z."""

    control_point_spacing: Triple
    jitter_sigma: tuple[float, float, float]
    rotate_in_plane: bool


class SimpleSettings(_Settings):
    """Mirroring and transposing; ``transpose_only``: the axes (0 z, 1 y, 2 x) that may be
    swapped (None: all), of which only those sharing the most common voxel size are."""

    mirror: bool
    transpose: bool
    transpose_only: tuple[int, ...] | None


class IntensitySettings(_Settings):
    """Raw scaled by 1 ± ``scale`` and shifted by ± ``shift`` (raw in [0, 1])."""

    scale: float
    shift: float


class GammaSettings(_Settings):
    """Raw raised to a power drawn from [``min``, ``max``]."""

    min: float
    max: float


class NoiseSettings(_Settings):
    """Gaussian noise of variance ``var`` (raw in [0, 1])."""

    var: float


class DefectSettings(_Settings):
    """Whole z-sections missing (``prob_missing``) or faded to ``contrast_scale``
    (``prob_low_contrast``)."""

    prob_missing: float
    prob_low_contrast: float
    contrast_scale: float


class AugmentationSettings(_Settings):
    """The augmentations, in pipeline order; None: off."""

    elastic: ElasticSettings | None
    simple: SimpleSettings | None
    intensity: IntensitySettings | None
    gamma: GammaSettings | None
    noise: NoiseSettings | None
    defect: DefectSettings | None


class RejectSettings(_Settings):
    """Sampling (`incasem.gunpowder.ForegroundBiasedLocation`): the least valid fraction of an
    output block, the foreground fraction below which a block is rejected with
    ``reject_probability``, and the attempts before giving up."""

    min_valid: float
    min_masked: float
    reject_probability: float
    max_attempts: int


class BalanceSettings(_Settings):
    """Class fractions clipped to [``clipmin``, ``clipmax``] for the loss weights."""

    clipmin: float
    clipmax: float


class PrecacheSettings(_Settings):
    """Batches prepared ahead in ``num_workers`` processes (0: in the training process), up to
    ``cache_size`` at a time, each with ``num_threads`` threads (None: cores / workers), and
    taken off their queue in a background thread with ``prefetch``."""

    cache_size: int
    num_workers: int
    num_threads: int | None
    prefetch: bool


class PipelineSettings(_Settings):
    """Everything `incasem.pipeline.training` builds a training pipeline from.

    Args:
        voxel_size: nm per voxel, z y x.
        input_size_voxels: the network input (raw) of one batch, voxels z y x.
        output_size_voxels: the network output (labels, mask, loss weights), voxels z y x.
        num_classes: label classes, background included.
        augmentation: the augmentations (`AugmentationSettings`).
        reject: sampling of sparse labels (`RejectSettings`).
        balance: class balancing of the loss weights; None: every valid voxel weighs 1.
        extra_nodes: the user's nodes by import path (`incasem.pipeline.extra_nodes`).
        precache: batch preparation ahead of the model (`PrecacheSettings`).
        seed: seed of the batch-preparing processes.
        snapshot_every: iterations between snapshots.
        profiling_every: iterations between gunpowder's profiling statistics.
        device: where the model trains (``cpu``, ``cuda:N``).
    """

    voxel_size: Triple
    input_size_voxels: Triple
    output_size_voxels: Triple
    num_classes: int
    augmentation: AugmentationSettings
    reject: RejectSettings
    balance: BalanceSettings | None
    extra_nodes: tuple[ExtraNode, ...] = ()
    precache: PrecacheSettings
    seed: int
    snapshot_every: int
    profiling_every: int
    device: str


class HasPipelineSettings(Protocol):
    """A configuration the pipeline settings are taken from, e.g. a training config."""

    def pipeline_settings(self) -> PipelineSettings: ...


def as_pipeline_settings(config: PipelineSettings | HasPipelineSettings) -> PipelineSettings:
    """``config`` itself, or the pipeline settings it gives (``config.pipeline_settings()``)."""
    return config if isinstance(config, PipelineSettings) else config.pipeline_settings()
