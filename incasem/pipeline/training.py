"""The training pipeline: sources -> random location -> augmentation -> balancing -> Train,
with a user's own nodes at named places (`incasem.pipeline.extra_nodes`).

Node order and defaults follow the original incasem (see ``configs/training.yaml``) with three
deliberate changes: context outside the annotated ROI is unknown rather than background (see
`incasem.pipeline.sources`), foreground-biased sampling cannot loop forever
(`ForegroundBiasedLocation`), and the U-Net crops to its translation-equivariant size in
training as in prediction, so a 204³ request gives 110³ in both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import gunpowder as gp
import numpy as np
import torch

from incasem.gunpowder import (
    DeferredLossTrain,
    ElasticDeform,
    ForegroundBiasedLocation,
    GammaAugment,
    Prefetch,
    ThreadLimitedPreCache,
)
from incasem.io.arrays import open_array
from incasem.io.data_config import DataConfig
from incasem.pipeline.extra_nodes import ExtraNodes, configured_nodes, merge_nodes
from incasem.pipeline.settings import (
    AugmentationSettings,
    HasPipelineSettings,
    PipelineSettings,
    as_pipeline_settings,
)
from incasem.pipeline.sources import SourceKeys, entry_source

#: The settings the builders take: `PipelineSettings`, or a config that gives them (a
#: `incasem.training.config.TrainingConfig`).
Settings = PipelineSettings | HasPipelineSettings


@dataclass(frozen=True)
class TrainingKeys(SourceKeys):
    """All arrays of a training batch."""

    scales: gp.ArrayKey
    prediction: gp.ArrayKey

    @classmethod
    def create(cls) -> TrainingKeys:
        return cls(
            raw=gp.ArrayKey("RAW"),
            labels=gp.ArrayKey("LABELS"),
            valid=gp.ArrayKey("VALID"),
            scales=gp.ArrayKey("SCALES"),
            prediction=gp.ArrayKey("PREDICTION"),
        )


def _sizes_nm(settings: PipelineSettings) -> tuple[gp.Coordinate, gp.Coordinate, gp.Coordinate]:
    """Voxel size, input size and output size, nm (z, y, x)."""
    voxel_size = gp.Coordinate(settings.voxel_size)
    input_size = gp.Coordinate(settings.input_size_voxels) * voxel_size
    output_size = gp.Coordinate(settings.output_size_voxels) * voxel_size
    return voxel_size, input_size, output_size


def training_request(config: Settings, keys: TrainingKeys) -> gp.BatchRequest:
    """The request of one training batch: raw at the input size, the rest at the output size
    (voxels from the settings, converted to nm with their voxel size).

    Args:
        config: the pipeline settings, or a training config (see `Settings`).
        keys: the batch's array keys.
    """
    _, input_size, output_size = _sizes_nm(as_pipeline_settings(config))
    request = gp.BatchRequest()
    request.add(keys.raw, input_size)
    for key in (keys.labels, keys.valid, keys.scales):
        request.add(key, output_size)
    return request


def _transpose_axes(voxel_size: gp.Coordinate, allowed: list[int] | None) -> list[int]:
    """Spatial axes (0 z, 1 y, 2 x) that may be swapped: of ``allowed`` (None: all), only
    those sharing the most common voxel size, so that anisotropic data (e.g. 40x6x6 nm) is
    never transposed across its thick axis. Fewer than two axes: none ([])."""
    sizes = list(voxel_size)
    common = max(set(sizes), key=sizes.count)
    axes = [i for i, s in enumerate(sizes) if s == common and (allowed is None or i in allowed)]
    return axes if len(axes) > 1 else []


def _augmentations(
    augment: AugmentationSettings, voxel_size: gp.Coordinate, keys: TrainingKeys
) -> list[gp.BatchFilter]:
    """The augmentation nodes, in pipeline order: spatial first, then intensities, defects
    last."""
    nodes: list[gp.BatchFilter] = []
    if augment.elastic is not None:
        # Spacing and jitter in voxels, and rotation about z, as the original's ElasticAugment;
        # ElasticDeform's docstring says why it replaces gunpowder's elastic nodes.
        nodes.append(
            ElasticDeform(
                control_point_spacing=list(augment.elastic.control_point_spacing),
                jitter_sigma=list(augment.elastic.jitter_sigma),
                rotation_interval=(0, math.pi / 2) if augment.elastic.rotate_in_plane else (0, 0),
            )
        )
    if augment.simple is not None:
        simple = augment.simple
        allowed = None if simple.transpose_only is None else list(simple.transpose_only)
        nodes.append(
            gp.SimpleAugment(
                mirror_only=None if simple.mirror else [],
                transpose_only=_transpose_axes(voxel_size, allowed) if simple.transpose else [],
            )
        )
    return nodes + _intensity_augmentations(augment, keys)


def _intensity_augmentations(
    augment: AugmentationSettings, keys: TrainingKeys
) -> list[gp.BatchFilter]:
    nodes: list[gp.BatchFilter] = []
    if augment.intensity is not None:
        s, t = augment.intensity.scale, augment.intensity.shift
        nodes.append(gp.IntensityAugment(keys.raw, 1 - s, 1 + s, -t, t))
    if augment.gamma is not None:
        nodes.append(GammaAugment(keys.raw, augment.gamma.min, augment.gamma.max))
    if augment.noise is not None:
        nodes.append(gp.NoiseAugment(keys.raw, mode="gaussian", var=augment.noise.var))
    if augment.defect is not None:
        # After every spatial augmentation, so that the sections lost or faded are whole
        # z-sections of the batch the network sees (a later rotation would tilt them).
        nodes.append(
            gp.DefectAugment(
                keys.raw,
                prob_missing=augment.defect.prob_missing,
                prob_low_contrast=augment.defect.prob_low_contrast,
                prob_artifact=0.0,
                prob_deform=0.0,
                contrast_scale=augment.defect.contrast_scale,
                axis=0,
            )
        )
    return nodes


def _raw_is_8bit(data: DataConfig, data_root: str | os.PathLike | None) -> bool:
    return all(open_array(entry.path(data_root), entry.raw).dtype.itemsize == 1 for entry in data)


def _joined_sources(
    settings: PipelineSettings,
    data: DataConfig,
    keys: TrainingKeys,
    data_root: str | os.PathLike | None,
) -> gp.Pipeline:
    """One source branch per entry, each sampling foreground-biased locations, joined with
    probabilities in proportion to the entries' voxels times their weights."""
    voxel_size, input_size, output_size = _sizes_nm(settings)
    # Output windows may hang over the ROI border by up to half their size; ValidMask keeps the
    # overhang out of the loss and ForegroundBiasedLocation limits how much of it a batch has.
    label_padding = (output_size / 2 / voxel_size) * voxel_size
    # Raw is reflected beyond the dataset far enough for any deformed or rotated request around
    # any allowed location (a 45 degree turn needs sqrt(2)/2 of the input per side), so a small
    # annotated block at the edge of a small volume never makes a request unsatisfiable.
    raw_padding = input_size + label_padding
    reject = settings.reject
    branches = []
    for entry in data:
        branch = entry_source(
            entry, data_root, keys, raw_padding=raw_padding, label_padding=label_padding
        )
        branch += ForegroundBiasedLocation(
            keys.valid,
            keys.labels,
            min_valid=reject.min_valid,
            min_foreground=reject.min_masked,
            reject_probability=reject.reject_probability,
            max_attempts=reject.max_attempts,
            source_name=entry.name,
        )
        branches.append(branch)
    weights = [float(np.prod(entry.shape)) * entry.weight for entry in data]
    return tuple(branches) + gp.RandomProvider(probabilities=weights)


def _balance_labels(settings: PipelineSettings, keys: TrainingKeys) -> gp.BalanceLabels:
    """The loss weights (``SCALES``) from the labels' class fractions within the valid mask."""
    # Without balancing every class fraction is clipped to 1 / num_classes, which gives every
    # valid voxel the weight 1: the same node then only applies the valid mask.
    uniform = 1.0 / settings.num_classes
    balance = settings.balance
    return gp.BalanceLabels(
        keys.labels,
        keys.scales,
        mask=keys.valid,
        num_classes=settings.num_classes,
        clipmin=balance.clipmin if balance is not None else uniform,
        clipmax=balance.clipmax if balance is not None else uniform,
    )


def batch_pipeline(
    config: Settings,
    data: DataConfig,
    keys: TrainingKeys,
    data_root: str | os.PathLike | None = None,
    extra_nodes: ExtraNodes | None = None,
) -> gp.Pipeline:
    """Everything that prepares a training batch, up to (not including) PreCache and Train:
    sources, foreground-biased locations, augmentation, intensity scaling and label balancing,
    with the extra nodes at their places. Arrays are (z, y, x), ROIs in nm: the Train node adds
    the batch and channel axes on the model's device. Benchmarks time it alone.

    Args:
        config: the pipeline settings, or a validated training config (see `Settings`); their
            extra nodes (``training.pipeline.extra_nodes``) are built and inserted.
        data: the training data config, validated against the data.
        keys: the batch's array keys.
        data_root: directory relative data-config paths are joined to.
        extra_nodes: more nodes from Python, by place (``{"after_sources": [node, ...]}``,
            places in `incasem.pipeline.extra_nodes.PLACES`), each inserted after the
            config's nodes at the same place.

    Raises:
        IncasemError: an extra node's class, arguments or place is wrong (one line naming it).
    """
    settings = as_pipeline_settings(config)
    extra = merge_nodes(configured_nodes(settings.extra_nodes), extra_nodes)
    pipeline = _joined_sources(settings, data, keys, data_root)
    augmentations = _augmentations(settings.augmentation, gp.Coordinate(settings.voxel_size), keys)
    for node in [*extra["after_sources"], *augmentations, *extra["after_augmentation"]]:
        pipeline += node
    pipeline += gp.IntensityScaleShift(keys.raw, 2, -1)
    if _raw_is_8bit(data, data_root):
        # The batch crosses a process boundary (PreCache) and, on a GPU, the PCIe bus. Raw from
        # 8-bit data loses nothing in float16 (11 significant bits against 8), and half the bytes
        # keep a 204³ block (17 instead of 34 MB) under glibc's 32 MB mmap threshold, which
        # spares the training process ~30 ms of page faults per batch. The model casts its input
        # to its own dtype.
        pipeline += gp.AsType(keys.raw, np.float16)
    for node in extra["before_balancing"]:
        pipeline += node
    # Labels stay uint8 (MergeLabels' class ids): the loss casts them on the model's device,
    # so they cross to the training process and the GPU at an eighth of int64's bytes.
    return pipeline + _balance_labels(settings, keys)


class _OneSample(torch.nn.Module):
    """The network on one sample without batch and channel axes: raw (z, y, x) in, logits
    (class, z, y, x) out.

    gunpowder batches hold one sample. Adding the axes here rather than with Unsqueeze and
    Squeeze nodes spares the training process two nodes' request handling per iteration
    (about 1 ms together, measured on these CPUs; time in which a GPU waits for the next step).

    With deep supervision (``model.deep_supervision``) the output is ``(logits, [aux logits,
    ...])``, each without its batch axis.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if not getattr(self.model, "deep_supervision", False):
            return self.model(x[None, None])[0]
        logits, aux = self.model.forward_with_aux(x[None, None])
        return logits[0], [head[0] for head in aux]


class _OneSampleLoss(torch.nn.Module):
    """The loss on one sample's logits (class, z, y, x), labels and scales (z, y, x)."""

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(
        self,
        logits: torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]],
        target: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        if isinstance(logits, tuple):
            main, aux = logits
            return self.loss((main[None], [head[None] for head in aux]), target[None], scale[None])
        return self.loss(logits[None], target[None], scale[None])


class TrainingPipeline(NamedTuple):
    """The assembled training pipeline and the nodes the training loop talks to."""

    pipeline: gp.Pipeline
    train: DeferredLossTrain
    prefetch: Prefetch | None


def _precache(settings: PipelineSettings) -> tuple[list[gp.BatchFilter], Prefetch | None]:
    """The nodes preparing batches ahead of the model, and the Prefetch node among them."""
    precache = settings.precache
    if precache.num_workers == 0:
        return [], None
    nodes: list[gp.BatchFilter] = [
        ThreadLimitedPreCache(
            cache_size=precache.cache_size,
            num_workers=precache.num_workers,
            num_threads=precache.num_threads,
            seed=settings.seed,
        )
    ]
    prefetch = Prefetch() if precache.prefetch else None
    return nodes + ([prefetch] if prefetch is not None else []), prefetch


def _train_node(
    settings: PipelineSettings,
    model: torch.nn.Module,
    loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    keys: TrainingKeys,
    run_dir: str | os.PathLike,
) -> DeferredLossTrain:
    """The Train node, its own checkpoints disabled (see `training_pipeline`)."""
    private = os.path.join(str(run_dir), ".gunpowder")
    return DeferredLossTrain(
        model=_OneSample(model),
        loss=_OneSampleLoss(loss),
        optimizer=optimizer,
        inputs={"x": keys.raw},
        outputs={0: keys.prediction},
        loss_inputs={0: keys.prediction, 1: keys.labels, 2: keys.scales},
        array_specs={keys.prediction: gp.ArraySpec(voxel_size=gp.Coordinate(settings.voxel_size))},
        checkpoint_basename=os.path.join(private, "unused"),
        save_every=2**62,
        log_dir=None,
        device=settings.device,
    )


def _snapshot(
    settings: PipelineSettings,
    keys: TrainingKeys,
    request: gp.BatchRequest,
    run_dir: str | os.PathLike,
) -> gp.Snapshot:
    """Every ``snapshot_every`` iterations the batch and its prediction, to
    ``run_dir/snapshots``."""
    return gp.Snapshot(
        {
            keys.raw: "volumes/raw",
            keys.labels: "volumes/labels",
            keys.valid: "volumes/valid_mask",
            keys.prediction: "volumes/prediction",
        },
        output_dir=os.path.join(str(run_dir), "snapshots"),
        output_filename="{iteration:08d}.zarr",
        every=settings.snapshot_every,
        dataset_dtypes={keys.raw: np.float32, keys.labels: np.uint8},
        additional_request=gp.BatchRequest(
            {keys.prediction: gp.ArraySpec(roi=request[keys.labels].roi)}
        ),
    )


def training_pipeline(
    config: Settings,
    data: DataConfig,
    model: torch.nn.Module,
    loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    keys: TrainingKeys,
    request: gp.BatchRequest,
    run_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    extra_nodes: ExtraNodes | None = None,
) -> TrainingPipeline:
    """Assemble the training pipeline; returns it with its Train node (to set the iteration) and
    its Prefetch node (None without ``precache.prefetch``; it counts the time spent waiting for
    batches).

    Args:
        config: the pipeline settings, or a validated training config (see `Settings`).
        data: the training data config, validated against the data.
        model, loss, optimizer: the torch objects to train.
        keys: the batch's array keys.
        request: the batch request (see `training_request`); snapshots add the prediction on
            the labels' ROI.
        run_dir: the run folder; snapshots go to ``run_dir/snapshots``.
        data_root: directory relative data-config paths are joined to.
        extra_nodes: more nodes from Python, by place (see `batch_pipeline`).

    Batches are prepared by `batch_pipeline`, ahead of the model in ``precache.num_workers``
    processes, and (with ``precache.prefetch``) taken off their queue in a background thread
    while the model steps. The Train node's own checkpointing is disabled (the training loop writes
    self-describing, atomic checkpoints); its checkpoint basename points into an empty private
    folder so it can never silently resume from a stale file.
    """
    settings = as_pipeline_settings(config)
    pipeline = batch_pipeline(settings, data, keys, data_root, extra_nodes)
    ahead, prefetch = _precache(settings)
    for node in ahead:
        pipeline += node
    train = _train_node(settings, model, loss, optimizer, keys, run_dir)
    pipeline += train
    pipeline += _snapshot(settings, keys, request, run_dir)
    pipeline += gp.PrintProfilingStats(every=settings.profiling_every)
    return TrainingPipeline(pipeline, train, prefetch)
