"""Plan a prediction: check everything and decide every output, writing nothing.

`plan_prediction` loads the checkpoint and compares it with the data (voxel size, class ids),
checks every ROI against its datasets, validates the block layout for the network and checks
every output location (exists without ``overwrite``? writable? when resuming: made by the same
inputs?). Its answer is a frozen `PredictionPlan`: what execution reads and nothing it may
change. Only a new prediction's id and group are left open; `incasem.predict.reserve` claims
them when it creates the outputs, and answers the plan with them filled in.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from funlib.geometry import Roi

from incasem import __version__
from incasem.digest import file_sha256
from incasem.errors import IncasemError
from incasem.io.budget import check_disk
from incasem.metrics import class_names_for
from incasem.postprocess.cleanup import PostProcessing
from incasem.predict.block_size import block_layout
from incasem.predict.checkpoints import ResolvedCheckpoint, resolve_checkpoint
from incasem.predict.device import resolve_device
from incasem.predict.entries import check_entries, entry_record, load_entries
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import (
    EntryOutputs,
    check_writable,
    container_path,
    existing_ids,
    group_exists,
    model_folder,
    prediction_group,
    safe_name,
)
from incasem.predict.resample import Resampling
from incasem.predict.resume import provenance_hash

if TYPE_CHECKING:
    from collections.abc import Iterable

    from incasem.io.data_config import DataEntry
    from incasem.predict.settings import PredictionSettings
    from incasem.torch.checkpoint import ModelCard

logger = logging.getLogger("incasem.predict")


@dataclass(frozen=True)
class EntryPlan:
    """What a prediction does with one entry (frozen).

    Attributes:
        entry: the data-config entry (ROI in voxels, z y x).
        data_root: the folder its relative paths start from, if any.
        outputs: its datasets; None until a new prediction's group is reserved.
        container: the container its outputs go to.
        digest: hash of ``provenance`` (names its done markers and metric counts).
        provenance: everything that shapes its output.
        layout: its block geometry (nm and voxels, z y x).
        action: ``create`` its outputs, ``resume`` them (same provenance) or ``recreate``
            them (``overwrite``).
        resampling: set when the data is at a whole fraction of the model's voxel size.
    """

    entry: DataEntry
    data_root: Path | None
    outputs: EntryOutputs | None
    container: Path
    digest: str
    provenance: dict[str, Any]
    layout: BlockLayout
    action: Literal["create", "resume", "recreate"] = "create"
    resampling: Resampling | None = None


@dataclass(frozen=True)
class PredictionPlan:
    """A checked prediction request (frozen): everything execution reads.

    Attributes:
        settings: the request.
        resolved: the checkpoint file, with its training run and iteration where known.
        checkpoint_sha256: the checkpoint's digest (workers check it).
        card: the checkpoint's model card.
        num_classes: output channels of the network.
        class_names: one per class, background first.
        num_fmaps: top-level feature maps of the network (sizes the block timeout).
        layout: the block geometry (with ``auto`` sizes: the largest entry's).
        device: ``"cpu"`` or ``"cuda"``.
        gpus: the GPU indices workers share, or None.
        threads: torch threads per worker.
        model: the outputs' model folder (``train_<run>`` or the checkpoint's stem).
        group: the prediction group; None for a new prediction until it is reserved.
        prediction_id: the prediction's id; None until reserved (or for ``output_group``).
        replace_group: an existing ``output_group`` is replaced (``overwrite``).
        entries: one plan per entry, in the data config's order.
        threshold: the foreground threshold on p(class 1).
        threshold_origin: where the threshold comes from, for messages.
        post_processing: what is done to a two-class segmentation after the blockwise pass.
        post_processing_origin: where it comes from, for messages.
    """

    settings: PredictionSettings
    resolved: ResolvedCheckpoint
    checkpoint_sha256: str
    card: ModelCard
    num_classes: int
    class_names: tuple[str, ...]
    num_fmaps: int
    layout: BlockLayout
    device: str
    gpus: tuple[int, ...] | None
    threads: int
    model: str
    group: str | None
    prediction_id: int | None
    replace_group: bool
    entries: tuple[EntryPlan, ...]
    threshold: float = 0.5
    threshold_origin: str = "0.5"
    post_processing: PostProcessing = PostProcessing()
    post_processing_origin: str = "the model card has none"

    @property
    def reserved(self) -> bool:
        """The group is decided and every entry knows its outputs (ready to execute)."""
        return self.group is not None and all(p.outputs is not None for p in self.entries)


def plan_prediction(settings: PredictionSettings) -> PredictionPlan:
    """Check a request completely and decide every output location; writes nothing.

    Raises `IncasemError` (one line) for any problem: missing or unreadable checkpoint, a data
    voxel size the model was not trained for, a ROI outside its data, an invalid block size,
    existing outputs without ``overwrite``, an unwritable output, a resume that does not match.
    """
    from incasem.torch.checkpoint import load_checkpoint

    resolved = resolve_checkpoint(
        settings.checkpoint, settings.run_id, settings.iteration, settings.runs_dir
    )
    checkpoint = load_checkpoint(resolved.path)
    card, network = checkpoint.card, checkpoint.model
    num_classes = int(network.num_classes)
    class_names = class_names_for(
        num_classes, card.class_names if len(card.class_names) == num_classes else None
    )
    entries, data_root = load_entries(settings, num_classes)
    device, gpus = _device(settings)
    layout, layouts = _entry_layouts(settings, network, card, entries, device, gpus)
    resampling = check_entries(settings, entries, data_root, card, resolved.path)
    model = model_folder(resolved.run_id, resolved.path)
    containers = _output_containers(settings, entries, data_root)
    prediction_id, group, replace_group = _output_group(settings, containers.values(), model)
    threshold, threshold_origin = _decision_threshold(settings, card, num_classes)
    checkpoint_sha256 = file_sha256(resolved.path)
    plans = tuple(
        _entry_plan(settings, entry, data_root, containers[entry.name], group, entry_layout,
                    card, checkpoint_sha256, threshold, num_classes, resampling[entry.name])
        for entry, entry_layout in zip(entries, layouts, strict=True)
    )  # fmt: skip
    _check_disk(plans, num_classes, settings.probability_dtype)
    return PredictionPlan(
        settings=settings,
        resolved=resolved,
        checkpoint_sha256=checkpoint_sha256,
        card=card,
        num_classes=num_classes,
        class_names=tuple(class_names),
        num_fmaps=int(network.num_fmaps),
        layout=layout,
        device=device,
        gpus=tuple(gpus) if gpus is not None else None,
        threads=_threads(settings.num_workers),
        model=model,
        group=group,
        prediction_id=prediction_id,
        replace_group=replace_group,
        entries=plans,
        threshold=threshold,
        threshold_origin=threshold_origin,
        **_post_processing(settings, card, num_classes),
    )


def _device(settings: PredictionSettings) -> tuple[str, list[int] | None]:
    """(device kind, GPU indices) of the request (`resolve_device`); warns about float16 on
    a CPU."""
    device, gpus = resolve_device(settings.device, settings.gpus, settings.worker_command)
    if device == "cpu" and settings.precision == "float16":
        logger.warning(
            "precision float16 on a CPU is slow (no half-precision 3D convolutions: 19x float32's "
            "time, measured); bfloat16 is faster than float32 on CPUs with bfloat16 support"
        )
    return device, gpus


def _entry_layouts(
    settings: PredictionSettings,
    network: Any,
    card: ModelCard,
    entries: list[DataEntry],
    device: str,
    gpus: list[int] | None,
) -> tuple[BlockLayout, list[BlockLayout]]:
    """(the prediction's layout, each entry's): with ``auto`` each entry's blocks are sized by
    its own ROI and the prediction's is the largest; otherwise all share one."""
    if settings.input_size_voxels == "auto":
        layouts = [block_layout(settings, network, card, [e], device, gpus) for e in entries]
        return max(layouts, key=lambda each: math.prod(each.input_shape)), layouts
    layout = block_layout(settings, network, card, entries, device, gpus)
    return layout, [layout] * len(entries)


def _threads(num_workers: int) -> int:
    """Torch threads per worker: this process's cores shared by the workers."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // num_workers)


def _output_containers(
    settings: PredictionSettings, entries: list[DataEntry], data_root: Path | None
) -> dict[str, Path]:
    """The container each entry writes into (``output``, else its own), checked writable and
    free of group-name clashes."""
    containers = {}
    for entry in entries:
        target = container_path(settings.output) if settings.output else None
        containers[entry.name] = target or container_path(entry.path(data_root))
    for container in sorted(set(containers.values())):
        check_writable(container)
        names = [safe_name(e.name) for e in entries if containers[e.name] == container]
        if len(set(names)) != len(names):
            raise IncasemError(
                f"entries {names} write to {container} under the same group names; rename them"
            )
    return containers


def _output_group(
    settings: PredictionSettings, containers: Iterable[Path], model: str
) -> tuple[int | None, str | None, bool]:
    """(prediction id, group, whether to replace the group) for a resumed prediction or an
    explicit ``output_group``; (None, None, False) for a new prediction, whose id and group are
    reserved when its outputs are created."""
    containers = set(containers)
    if settings.resume is not None and settings.resume is not True:
        prediction_id = int(settings.resume)
        group = prediction_group(model, prediction_id)
        for container in containers:
            if not group_exists(container, group):
                found = ", ".join(map(str, existing_ids(container, model))) or "none"
                raise IncasemError(
                    f"{container}: no prediction {prediction_id} of {model} to resume "
                    f"(predictions there: {found})"
                )
        return prediction_id, group, False
    if settings.output_group is None:
        return None, None, False
    group = settings.output_group.strip("/")
    replace_group = False
    for container in containers:
        exists = group_exists(container, group)
        if settings.resume is True and not exists:
            raise IncasemError(f"{container}/{group}: nothing to resume (no such group)")
        if exists and settings.resume is None:
            if not settings.overwrite:
                raise IncasemError(
                    f"{container}/{group} already exists; pass --overwrite to replace it"
                )
            replace_group = True
    return None, group, replace_group


def _entry_plan(
    settings: PredictionSettings,
    entry: DataEntry,
    data_root: Path | None,
    container: Path,
    group: str | None,
    layout: BlockLayout,
    card: ModelCard,
    checkpoint_sha256: str,
    threshold: float,
    num_classes: int,
    resampling: Resampling | None = None,
) -> EntryPlan:
    """One entry's provenance (everything that shapes its output, hashed) and what to do with
    its outputs: create them, resume them (same provenance) or recreate them (``overwrite``)."""
    provenance = {
        "checkpoint_sha256": checkpoint_sha256,
        "entry": entry_record(entry, data_root),
        "layout": layout.describe(),
        "normalisation": card.normalisation,
        "probabilities": settings.probability_dtype,
        "threshold": threshold,
        "log_metrics": bool(settings.log_metrics),
        "deterministic": bool(settings.deterministic),
        "precision": settings.precision,
        "incasem_version": __version__,
    }
    if resampling is not None:
        provenance["voxel_sizes"] = resampling.describe()
    digest = provenance_hash(provenance)
    outputs = EntryOutputs.for_entry(container, group, entry.name, num_classes) if group else None
    action = "create"
    if settings.resume is not None and outputs is not None:
        if group_exists(container, outputs.group):
            previous = outputs.attrs().get("provenance_hash")
            if previous == digest:
                outputs.check_existing(*output_geometry(entry, layout, resampling))
                action = "resume"
            elif settings.overwrite:
                action = "recreate"
            else:
                raise IncasemError(
                    f"{container}/{outputs.group} was predicted with different inputs "
                    "(checkpoint, data, ROI, block size or output type changed), so no "
                    "block can be reused; pass --overwrite to recompute it, or drop "
                    "--resume for a new prediction"
                )
    return EntryPlan(
        entry, data_root, outputs, container, digest, provenance, layout, action, resampling
    )


def output_geometry(
    entry: DataEntry, layout: BlockLayout, resampling: Resampling | None
) -> tuple[Roi, BlockLayout]:
    """The ROI (nm) and layout (voxel size, chunks) of an entry's outputs."""
    if resampling is None:
        return entry.roi, layout
    return resampling.output_roi(entry.roi), resampling.output_layout(layout)


def _check_disk(plans: tuple[EntryPlan, ...], num_classes: int, probabilities: str) -> None:
    """Refuse a prediction whose new datasets (probabilities and segmentation, uncompressed)
    do not fit on the disk of their container (`incasem.io.budget.check_disk`)."""
    per_voxel = num_classes * np.dtype(probabilities).itemsize + (1 if num_classes <= 256 else 2)
    need: dict[Path, int] = {}
    names: dict[Path, list[str]] = {}
    for p in plans:
        if p.action != "resume":
            voxels = math.prod(p.entry.roi.shape / p.layout.voxel_size)
            need[p.container] = need.get(p.container, 0) + voxels * per_voxel
            names.setdefault(p.container, []).append(f"{p.entry.path(p.data_root)}/{p.entry.raw}")
    for container, size in need.items():
        check_disk(f"predict {', '.join(names[container])}", container, size)


def _post_processing(
    settings: PredictionSettings, card: ModelCard, num_classes: int
) -> dict[str, Any]:
    """The post-processing of the segmentation (the model card's unless turned off) and
    where it comes from (for the log), as `PredictionPlan` fields."""
    if num_classes != 2:
        return {"post_processing_origin": "none: only two-class segmentations are post-processed"}
    if not settings.post_processing:
        return {"post_processing_origin": "turned off by --no-post-processing"}
    chosen = PostProcessing(card.fill_holes, float(card.min_object_nm3))
    origin = "from the model card" if chosen.active else "the model card has none"
    return {"post_processing": chosen, "post_processing_origin": origin}


def _decision_threshold(
    settings: PredictionSettings, card: ModelCard, num_classes: int
) -> tuple[float, str]:
    """The foreground threshold on p(class 1) and where it comes from (for the log)."""
    if num_classes != 2:
        return 0.5, "unused: more than two classes are decided by the argmax"
    if settings.threshold is not None:
        return float(settings.threshold), "--threshold"
    return card.decision_threshold()
