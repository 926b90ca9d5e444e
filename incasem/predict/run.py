"""Run a blockwise prediction: check everything, create the outputs, run one daisy task per entry.

A prediction is planned completely before anything is written: the checkpoint is loaded and
compared with the data (voxel size, class ids), every ROI is checked against its datasets, the
block layout is validated for the network, and every output location is checked (exists without
``overwrite``? writable? when resuming: made by the same inputs?). Only then are the outputs
created and the workers started, so a bad request fails with one line and writes nothing.

Entries run one after another, each as one daisy task with ``num_workers`` workers; the outcome
(blocks computed, skipped, failed with their ROIs, voxels per second, scores) is summarised per
entry and recorded in the entry group's attributes. A run with failed blocks raises
`PredictionFailed` after the summary; rerunning it with ``resume`` computes just those blocks.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Roi

from incasem import __version__
from incasem.blockwise import BlockFailures, JobOutcome, run_job
from incasem.digest import file_sha256
from incasem.errors import IncasemError, Interrupted
from incasem.io import carried_voxel_size_attrs, format_roi_voxels, open_array
from incasem.io.arrays import write_refusal
from incasem.io.budget import check_disk
from incasem.io.data_config import DataEntry, load_data_config, validate_against_data
from incasem.io.intensity import WARN_DISTANCE, histogram_distance, percentiles, sample_histogram
from incasem.metrics import class_names_for, format_scores
from incasem.predict.block_size import largest_input_shape, memory_budget
from incasem.predict.checkpoints import ResolvedCheckpoint, resolve_checkpoint
from incasem.predict.evaluate import entry_scores
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import (
    EntryOutputs,
    check_writable,
    container_path,
    delete_group,
    existing_ids,
    group_exists,
    model_folder,
    prediction_group,
    reserve_prediction,
    safe_name,
    set_group_attrs,
)
from incasem.predict.progress import PredictionProgress
from incasem.predict.resample import (
    Resampling,
    UpsampleBlock,
    delete_input,
    downsample_input,
    model_outputs,
    resampling_for,
    upsample_outputs,
)
from incasem.predict.resume import (
    load_metrics,
    metrics_path,
    provenance_hash,
    tracking_path,
)
from incasem.predict.settings import PredictionSettings
from incasem.predict.task import prediction_block_timeout, prediction_job, prediction_worker
from incasem.predict.worker import WorkerSpec
from incasem.torch.models import shapes

if TYPE_CHECKING:
    from incasem.torch.checkpoint import ModelCard

logger = logging.getLogger("incasem.predict")

#: Smallest default network output per axis (voxels): blocks smaller than the original's 110
#: spend most of their time on context.
DEFAULT_MIN_OUTPUT = 110


class PredictionFailed(IncasemError):
    """Some blocks could not be predicted; ``result`` holds the full outcome."""

    def __init__(self, message: str, result: PredictionResult):
        super().__init__(message)
        self.result = result


@dataclass
class EntryResult:
    """Outcome of one entry.

    Attributes:
        name: the entry's name.
        container: output container.
        group: the entry's output group.
        datasets: probability datasets (class 0 first), then the segmentation.
        roi_voxels: the predicted ROI, ``[z0:z1, y0:y1, x0:x1]`` voxels.
        blocks: blocks covering the ROI.
        computed: blocks computed in this run.
        skipped: blocks skipped because an earlier run of the same prediction did them.
        failed: blocks that failed (or could not run).
        failures: ``block <id> at <ROI>`` of each failed block.
        first_error: the first worker error, one line.
        seconds: wall time of the entry's task.
        voxels_per_second: voxels of the computed blocks per second.
        scores: flat scores (see `incasem.metrics.flat_scores`), if metrics were logged.
        best_thresholds: per foreground class, the sweep item with the best F1.
        log_dir: the workers' log folder.
    """

    name: str
    container: Path
    group: str
    datasets: list[str]
    roi_voxels: str
    blocks: int
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    first_error: str | None = None
    seconds: float = 0.0
    voxels_per_second: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    best_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    log_dir: Path | None = None

    @property
    def ok(self) -> bool:
        """All blocks are done (computed now or earlier)."""
        return self.failed == 0 and self.computed + self.skipped == self.blocks


@dataclass
class PredictionResult:
    """Outcome of a prediction run."""

    prediction_id: int | None
    group: str
    model: str
    checkpoint: Path
    entries: list[EntryResult]
    threshold: float = 0.5
    threshold_origin: str = ""

    @property
    def ok(self) -> bool:
        """Every block of every entry is done."""
        return all(entry.ok for entry in self.entries)

    def summary(self) -> str:
        """A few lines per entry for the terminal and the log."""
        lines = [
            f"prediction {self.group} with {self.checkpoint}",
            f"  foreground threshold {self.threshold:g} ({self.threshold_origin})",
        ]
        for e in self.entries:
            status = "done" if e.ok else "FAILED"
            lines.append(
                f"  {e.name} {e.roi_voxels}: {status}; {e.blocks} blocks: {e.computed} computed, "
                f"{e.skipped} skipped, {e.failed} failed; {e.seconds:.1f} s, "
                f"{e.voxels_per_second:,.0f} voxels/s"
            )
            lines.append(f"    output: {e.container}/{e.group}")
            if e.scores:
                lines.append(f"    scores: {format_scores(e.scores)}")
            for class_name, best in e.best_thresholds.items():
                lines.append(
                    f"    {class_name}: best F1 {best['f1']:.4f} at threshold "
                    f"{best['threshold']:.3f}"
                )
            for failure in e.failures[:10]:
                lines.append(f"    failed: {failure}")
            if len(e.failures) > 10:
                lines.append(f"    ... and {len(e.failures) - 10} more failed blocks")
            if e.first_error:
                lines.append(f"    first error: {e.first_error}")
            if not e.ok and e.log_dir is not None:
                lines.append(f"    worker logs: {e.log_dir}")
        return "\n".join(lines)


@dataclass
class _EntryPlan:
    entry: DataEntry
    data_root: Path | None
    outputs: EntryOutputs | None
    container: Path
    digest: str
    provenance: dict[str, Any]
    layout: BlockLayout
    action: str = "create"  # "create", "resume" or "recreate"
    resampling: Resampling | None = None  # data at a whole fraction of the model's voxel size


@dataclass
class _Plan:
    settings: PredictionSettings
    resolved: ResolvedCheckpoint
    checkpoint_sha256: str
    card: Any
    num_classes: int
    class_names: list[str]
    num_fmaps: int
    layout: BlockLayout
    device: str
    gpus: list[int] | None
    threads: int
    model: str
    group: str | None
    prediction_id: int | None
    replace_group: bool
    entries: list[_EntryPlan]
    threshold: float = 0.5
    threshold_origin: str = "0.5"


def default_input_size(card_output: list[int], downsample_factors: Any, head: int) -> list[int]:
    """Smallest valid input (voxels, z y x) whose output covers both the training output and
    `DEFAULT_MIN_OUTPUT`."""
    wanted = [max(int(o), DEFAULT_MIN_OUTPUT) for o in card_output]
    return list(shapes.input_shape_for_output(wanted, downsample_factors, head))


def resolve_device(
    device: str | int, gpus: list[int] | None, template: str | None
) -> tuple[str, list[int] | None]:
    """(``"cpu"`` or ``"cuda"``, GPU indices) from the device setting and ``gpus``.

    ``"auto"`` means CUDA when this machine has it. Asking for CUDA on a machine without it is
    an error, unless workers run elsewhere (a worker command template).
    """
    import torch

    text = str(device).strip().lower()
    if gpus:
        kind = "cuda"
    elif text == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif text == "cpu":
        kind = "cpu"
    elif text.isdigit():
        kind, gpus = "cuda", [int(text)]
    elif text.startswith("cuda"):
        kind = "cuda"
        index = text.partition(":")[2]
        if index:
            if not index.isdigit():
                raise IncasemError(f"device {device!r}: expected cuda:N")
            gpus = [int(index)]
    else:
        raise IncasemError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or a GPU index")
    if kind == "cuda" and template is None and not torch.cuda.is_available():
        raise IncasemError(
            f"device {device!r}{' / gpus ' + str(gpus) if gpus else ''} asks for a GPU, but "
            "CUDA is not available here; use device=cpu"
        )
    return kind, gpus


def _input_entry(settings: PredictionSettings) -> DataEntry:
    """A data-config entry for ``--input CONTAINER --dataset DS [--roi ...]``."""
    container = container_path(str(settings.input))
    raw = open_array(container, settings.dataset)
    if len(raw.voxel_size) != 3 or raw.channel_dims:
        raise IncasemError(
            f"{container}/{settings.dataset} has shape {list(raw.shape)}; expected 3 axes"
        )
    if settings.roi is not None:
        offset, shape = settings.roi[:3], settings.roi[3:]
    else:
        offset = list(raw.roi.begin / raw.voxel_size)
        shape = list(raw.roi.shape / raw.voxel_size)
    return DataEntry(
        name=safe_name(container.stem),
        source="--input",
        file=str(container),
        offset=[int(o) for o in offset],
        shape=[int(s) for s in shape],
        voxel_size=[int(v) for v in raw.voxel_size],
        raw=settings.dataset,
    )


def _load_entries(
    settings: PredictionSettings, num_classes: int
) -> tuple[list[DataEntry], Path | None]:
    if settings.input is not None:
        from incasem.io.data_config import DataConfig

        entry = _input_entry(settings)
        validate_against_data(DataConfig(entries=[entry]), num_classes=num_classes)
        return [entry], None
    data_root = container_path(settings.data_root) if settings.data_root else None
    config = load_data_config(settings.data, data_root=data_root)
    validate_against_data(config, num_classes=num_classes, data_root=data_root)
    return list(config.entries), data_root


def _entry_record(entry: DataEntry, data_root: Path | None) -> dict[str, Any]:
    return {
        "container": str(container_path(entry.path(data_root))),
        "raw": entry.raw,
        "offset_voxels": list(entry.offset),
        "shape_voxels": list(entry.shape),
        "voxel_size_nm": list(entry.voxel_size),
        "labels": dict(entry.labels),
        "mask": entry.mask,
        "metric_masks": list(entry.metric_masks),
        "ignore_value": entry.ignore_value,
    }


def _warn_unfamiliar_intensities(
    entry: DataEntry, data_root: str | None, training: list[int], checkpoint: Path
) -> None:
    """Warn, naming the dataset, when the raw's grey values are distributed far from the
    training raw's (`incasem.io.intensity`); models without a recorded histogram are not
    checked."""
    if not training:
        return
    raw = open_array(entry.path(data_root), entry.raw)
    counts = sample_histogram(raw, entry.roi)
    distance = histogram_distance(counts, training)
    if distance > WARN_DISTANCE:
        logger.warning(
            "%s/%s: its grey values (1/50/99 %% at %s) are far from those the model %s was "
            "trained on (%s; %.0f grey levels apart); predictions may be poor: prepare the raw "
            "as the training raw was (e.g. incasem equalize if that was CLAHE-equalised)",
            entry.path(data_root),
            entry.raw,
            "/".join(map(str, percentiles(counts))),
            checkpoint,
            "/".join(map(str, percentiles(np.asarray(training)))),
            distance,
        )


def _block_layout(
    settings: PredictionSettings,
    network: Any,
    card: ModelCard,
    entries: list[DataEntry],
    device: str,
    gpus: list[int] | None,
) -> BlockLayout:
    """The block geometry: the input size asked for, the default one, or ``auto``'s choice;
    warns when blocks would spend most of their compute on context."""
    minimum_input = default_input_size(
        card.output_size_voxels, network.downsample_factors, network.head_kernel_size
    )
    if settings.input_size_voxels == "auto":
        sharing = math.ceil(settings.num_workers / len(gpus)) if gpus else settings.num_workers
        input_size = largest_input_shape(
            memory_budget(device, sharing),
            network.num_fmaps,
            network.downsample_factors,
            network.head_kernel_size,
            [entry.shape for entry in entries],
            minimum_input,
        )
        logger.info("input_size_voxels auto: %s per block", input_size)
    else:
        input_size = settings.input_size_voxels or minimum_input
    layout = BlockLayout.for_network(
        input_size, card.voxel_size, network.downsample_factors, network.head_kernel_size
    )
    efficiency = math.prod(layout.write_shape) / math.prod(layout.input_shape)
    covered = all(
        w >= max(entry.shape[axis] for entry in entries)
        for axis, w in enumerate(layout.write_shape)
    )
    if efficiency < 0.05 and not covered:  # a larger block would compute less context
        logger.warning(
            "blocks of %s voxels write only %s each (%.1f %% of what they read): prediction "
            "will be slow; use a larger input_size_voxels or 'auto'",
            list(layout.input_shape),
            list(layout.write_shape),
            100 * efficiency,
        )
    if settings.output_size_voxels is not None and list(layout.output_shape) != list(
        settings.output_size_voxels
    ):
        raise IncasemError(
            f"output_size_voxels {settings.output_size_voxels} does not match the network: an "
            f"input of {list(layout.input_shape)} gives {list(layout.output_shape)}"
        )
    return layout


def _check_entries(
    settings: PredictionSettings,
    entries: list[DataEntry],
    data_root: Path | None,
    card: ModelCard,
    checkpoint: Path,
) -> dict[str, Resampling | None]:
    """How each entry's voxel size relates to the model's (`resampling_for`: one line for a
    ratio that is not whole); warns about unfamiliar intensities."""
    resampling = {}
    for entry in entries:
        resampling[entry.name] = found = resampling_for(
            entry, data_root, card.voxel_size, checkpoint, settings.output_voxel_size
        )
        if found is not None:
            logger.info(
                "%s: data at %s nm, model at %s nm: the raw is averaged to the model's voxel "
                "size, outputs are written at %s nm",
                entry.name,
                list(found.data_voxel_size),
                list(found.model_voxel_size),
                found.describe()["output_nm"],
            )
    for entry in entries:
        _warn_unfamiliar_intensities(entry, data_root, card.raw_histogram, checkpoint)
    return resampling


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
) -> _EntryPlan:
    """One entry's provenance (everything that shapes its output, hashed) and what to do with
    its outputs: create them, resume them (same provenance) or recreate them (``overwrite``)."""
    provenance = {
        "checkpoint_sha256": checkpoint_sha256,
        "entry": _entry_record(entry, data_root),
        "layout": layout.describe(),
        "normalisation": card.normalisation,
        "probabilities": settings.probabilities,
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
                outputs.check_existing(*_output_geometry(entry, layout, resampling))
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
    return _EntryPlan(
        entry, data_root, outputs, container, digest, provenance, layout, action, resampling
    )


def _output_geometry(
    entry: DataEntry, layout: BlockLayout, resampling: Resampling | None
) -> tuple[Roi, BlockLayout]:
    """The ROI (nm) and layout (voxel size, chunks) of an entry's outputs."""
    if resampling is None:
        return entry.roi, layout
    return resampling.output_roi(entry.roi), resampling.output_layout(layout)


def plan_prediction(settings: PredictionSettings) -> _Plan:
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
    entries, data_root = _load_entries(settings, num_classes)
    device, gpus = resolve_device(settings.device, settings.gpus, settings.worker_command)
    if device == "cpu" and settings.precision == "float16":
        logger.warning(
            "precision float16 on a CPU is slow (no half-precision 3D convolutions: 19x float32's "
            "time, measured); bfloat16 is faster than float32 on CPUs with bfloat16 support"
        )
    if settings.input_size_voxels == "auto":  # each entry's blocks sized by its own ROI
        layouts = [_block_layout(settings, network, card, [e], device, gpus) for e in entries]
        layout = max(layouts, key=lambda each: math.prod(each.input_shape))
    else:
        layout = _block_layout(settings, network, card, entries, device, gpus)
        layouts = [layout] * len(entries)
    resampling = _check_entries(settings, entries, data_root, card, resolved.path)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // settings.num_workers)

    model = model_folder(resolved.run_id, resolved.path)
    containers = _output_containers(settings, entries, data_root)
    prediction_id, group, replace_group = _output_group(settings, containers.values(), model)
    threshold, threshold_origin = _decision_threshold(settings, card, num_classes)
    checkpoint_sha256 = file_sha256(resolved.path)
    plans = [
        _entry_plan(settings, entry, data_root, containers[entry.name], group, entry_layout,
                    card, checkpoint_sha256, threshold, num_classes, resampling[entry.name])
        for entry, entry_layout in zip(entries, layouts, strict=True)
    ]  # fmt: skip
    _check_disk(plans, num_classes, settings.probabilities)
    return _Plan(
        settings=settings,
        resolved=resolved,
        checkpoint_sha256=checkpoint_sha256,
        card=card,
        num_classes=num_classes,
        class_names=class_names,
        num_fmaps=int(network.num_fmaps),
        layout=layout,
        device=device,
        gpus=gpus,
        threads=threads,
        model=model,
        group=group,
        prediction_id=prediction_id,
        replace_group=replace_group,
        entries=plans,
        threshold=threshold,
        threshold_origin=threshold_origin,
    )


def _check_disk(plans: list[_EntryPlan], num_classes: int, probabilities: str) -> None:
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


def _decision_threshold(
    settings: PredictionSettings, card: ModelCard, num_classes: int
) -> tuple[float, str]:
    """The foreground threshold on p(class 1) and where it comes from (for the log)."""
    if num_classes != 2:
        return 0.5, "unused: more than two classes are decided by the argmax"
    if settings.threshold is not None:
        return float(settings.threshold), "--threshold"
    return card.decision_threshold()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _create_outputs(plan: _Plan) -> None:
    """Create (or reuse, when resuming) the prediction group and every entry's datasets."""
    settings = plan.settings
    containers = sorted({p.container for p in plan.entries})
    if plan.group is None:
        run_id = settings.sacred_run_id
        preferred = int(run_id) if str(run_id).isdigit() else None
        plan.prediction_id, plan.group = reserve_prediction(containers, plan.model, preferred)
        if preferred is not None and plan.prediction_id != preferred:
            logger.warning(
                "prediction run p%s writes to %s: that container already holds a predict_%04d "
                "of %s (from another runs folder)",
                run_id,
                plan.group,
                preferred,
                plan.model,
            )
        for p in plan.entries:
            p.outputs = EntryOutputs.for_entry(
                p.container, plan.group, p.entry.name, plan.num_classes
            )
    elif plan.replace_group:
        for container in containers:
            delete_group(container, plan.group)
    record = {
        "id": plan.prediction_id,
        "incasem_version": __version__,
        "created": _now(),
        "host": socket.gethostname(),
        "checkpoint": str(plan.resolved.path.absolute()),
        "checkpoint_sha256": plan.checkpoint_sha256,
        "training_run": plan.resolved.run_id,
        "iteration": plan.resolved.iteration,
        "card": {
            "class_names": plan.class_names,
            "voxel_size": list(plan.card.voxel_size),
            "input_size_voxels": list(plan.card.input_size_voxels),
            "output_size_voxels": list(plan.card.output_size_voxels),
            "iteration": plan.card.iteration,
            "data_digest": plan.card.data_digest,
            "hparams": plan.card.hparams,
            "normalisation": plan.card.normalisation,
        },
        "layout": plan.layout.describe(),  # with auto sizes: the largest entry's
        "entry_layouts": {p.entry.name: p.layout.describe() for p in plan.entries},
        "settings": settings.as_dict(),
        "sacred_run_id": settings.sacred_run_id,
        "entries": [p.entry.name for p in plan.entries],
    }
    for container in containers:
        key = "incasem_prediction_resumed" if settings.resume is not None else "incasem_prediction"
        set_group_attrs(container, plan.group, {key: record})
    for p in plan.entries:
        assert p.outputs is not None
        if p.action == "resume":
            p.outputs.update_attrs({"status": "running", "resumed": _now()})
            continue
        if p.action == "recreate":
            p.outputs.delete()
        attrs = {
            "threshold": plan.threshold if plan.num_classes == 2 else None,
            "entry": p.entry.model_dump(),
            "provenance": p.provenance,
            "provenance_hash": p.digest,
            "status": "running",
            "created": _now(),
        }
        if p.resampling is not None:
            attrs["voxel_sizes"] = p.resampling.describe()
        roi, layout = _output_geometry(p.entry, p.layout, p.resampling)
        carried = carried_voxel_size_attrs(p.entry.path(p.data_root), p.entry.raw)
        p.outputs.create(roi, layout, settings.probabilities, plan.class_names, attrs, carried)
        if p.resampling is not None and p.resampling.upsamples:
            model_outputs(p.outputs, p.resampling, plan.num_classes).create(
                p.resampling.roi, p.layout, settings.probabilities, plan.class_names, attrs
            )


def _worker_spec(
    plan: _Plan, p: _EntryPlan, metrics_dir: Path | None, failures: BlockFailures
) -> WorkerSpec:
    """What every worker of the entry needs (saved as JSON beside the outputs)."""
    settings, outputs = plan.settings, p.outputs
    assert outputs is not None
    return WorkerSpec(
        checkpoint=str(plan.resolved.path.absolute()),
        checkpoint_sha256=plan.checkpoint_sha256,
        device=plan.device,
        gpus=plan.gpus,
        threads=plan.threads,
        deterministic=settings.deterministic,
        entry=p.entry.model_dump(),
        data_root=str(p.data_root) if p.data_root else None,
        layout=p.layout.describe(),
        normalisation=dict(plan.card.normalisation),
        output_container=str(outputs.container),
        probabilities=list(outputs.probabilities),
        segmentation=outputs.segmentation,
        probability_dtype=settings.probabilities,
        threshold=plan.threshold,
        metrics_dir=str(metrics_dir) if metrics_dir is not None else None,
        precision=settings.precision,
        failures_dir=str(failures.folder),
    )


def _count_blocks(
    result: EntryResult,
    outcome: JobOutcome,
    layout: BlockLayout,
    roi: Roi,
    failures: BlockFailures,
) -> None:
    """Computed, skipped and failed blocks of the job, each failed block's ROI (clipped to
    the entry's ``roi``, nm) and the first failure its workers recorded."""
    result.first_error = outcome.error
    state = outcome.state
    if state is not None:
        result.skipped = int(state.skipped_count)
        result.computed = int(state.completed_count) - result.skipped
        result.failed = result.blocks - int(state.completed_count)
        if result.failed:
            # A worker that failed once and was replaced leaves its error in the state even
            # when every block was then done: only a failed run has a first error to show.
            result.first_error = result.first_error or failures.first()
    else:
        result.failed = result.blocks
    voxel_size = layout.voxel_size
    for block_id, write_roi in outcome.failed_blocks:
        clipped = write_roi.intersect(roi)
        where = format_roi_voxels(clipped.begin / voxel_size, clipped.shape / voxel_size)
        result.failures.append(f"block {block_id} at {where}")


def _score(result: EntryResult, plan: _Plan, metrics_dir: Path, blocks: int) -> None:
    """The entry's scores from the blocks' stored counts, once all ``blocks`` have them."""
    counts, histograms, scored = load_metrics(metrics_dir, plan.num_classes)
    if scored != blocks:
        return
    result.scores = entry_scores(counts, histograms, plan.threshold, plan.class_names)
    for class_id in range(1, plan.num_classes):
        result.best_thresholds[plan.class_names[class_id]] = histograms.best_threshold(class_id)


def _run_entry(plan: _Plan, p: _EntryPlan) -> EntryResult:
    if p.resampling is not None:
        return _run_resampled_entry(plan, p)
    settings, layout, outputs = plan.settings, p.layout, p.outputs
    assert outputs is not None
    entry = p.entry
    roi = entry.roi
    work_dir = outputs.work_dir
    metrics_dir = metrics_path(work_dir, p.digest)
    log_metrics = settings.log_metrics and bool(entry.labels)
    spec_path = work_dir / f"worker-{p.digest[:16]}.json"
    log_dir = work_dir / "logs" / safe_name(entry.name)
    failures = BlockFailures(log_dir / "failures")
    failures.clear()  # a resumed prediction reports its own failures, not earlier ones
    _worker_spec(plan, p, metrics_dir if log_metrics else None, failures).save(spec_path)
    blocks = layout.num_blocks(roi)
    result = EntryResult(
        name=entry.name,
        container=outputs.container,
        group=outputs.group,
        datasets=outputs.datasets(),
        roi_voxels=entry.roi_voxels,
        blocks=blocks,
        log_dir=log_dir,
    )
    timeout = settings.block_timeout or prediction_block_timeout(layout, plan.num_fmaps)
    job = prediction_job(
        safe_name(entry.name),
        roi,
        layout,
        settings.num_workers,
        timeout,
        settings.max_retries,
        tracking_path(work_dir, p.digest),
    )
    roi_voxels = int(np.prod(roi.shape / layout.voxel_size))
    logger.info(
        "%s: %s voxels in %d blocks of %s (input %s, %d workers, %s, block timeout %.0f s)",
        entry.name,
        entry.roi_voxels,
        blocks,
        list(layout.write_shape),
        list(layout.input_shape),
        settings.num_workers,
        plan.device + (f" {plan.gpus}" if plan.gpus else ""),
        timeout,
    )
    started = time.monotonic()
    progress = PredictionProgress(entry.name, roi_voxels / blocks, enabled=settings.progress)
    worker = prediction_worker(spec_path, settings.worker_command)
    outcome = run_job(
        job, worker, work_dir / "logs", progress=progress, host=settings.scheduler_host
    )
    result.seconds = time.monotonic() - started
    _count_blocks(result, outcome, layout, roi, failures)
    result.voxels_per_second = result.computed * roi_voxels / blocks / max(result.seconds, 1e-9)
    if log_metrics:
        _score(result, plan, metrics_dir, result.blocks)
    elif settings.log_metrics:
        logger.info("%s: no labels, so no metrics", entry.name)
    _record_outcome(outputs, result)
    return result


def _record_outcome(outputs: EntryOutputs, result: EntryResult) -> None:
    """Status, block counts and scores in the entry group's attributes."""
    outputs.update_attrs(
        {
            "status": "complete" if result.ok else "incomplete",
            "finished": _now(),
            "blocks": {
                "total": result.blocks,
                "computed_last_run": result.computed,
                "skipped_last_run": result.skipped,
                "failed": result.failed,
            },
            "metrics": result.scores,
            "best_thresholds": result.best_thresholds,
        }
    )


def _run_resampled_entry(plan: _Plan, p: _EntryPlan) -> EntryResult:
    """An entry at a whole fraction of the model's voxel size (`incasem.predict.resample`):
    average the raw, predict at the model's voxel size, then (by default) upsample into the
    entry's outputs and score them there. Block counts are those of the prediction."""
    settings, resampling, outputs = plan.settings, p.resampling, p.outputs
    assert resampling is not None and outputs is not None
    started = time.monotonic()
    at_model = model_outputs(outputs, resampling, plan.num_classes)
    entry = downsample_input(
        p.entry, p.data_root, resampling, p.layout.context, outputs,
        settings.num_workers, settings.worker_command, settings.progress,
    )  # fmt: skip
    if settings.log_metrics and not resampling.upsamples:
        logger.info("%s: metrics need the labels' voxel size: no metrics", p.entry.name)
    result = _run_entry(
        replace(plan, settings=settings.replace(log_metrics=False)),
        replace(p, entry=entry, outputs=at_model, resampling=None),
    )
    if resampling.upsamples:
        if result.ok:
            _upsample(plan, p, at_model, result)
        _record_outcome(outputs, result)
        result.group, result.datasets = outputs.group, outputs.datasets()
        result.roi_voxels = p.entry.roi_voxels
    if result.ok:
        delete_input(outputs)
    result.seconds = time.monotonic() - started
    voxels = int(np.prod(p.entry.shape))
    result.voxels_per_second = voxels * result.computed / result.blocks / result.seconds
    return result


def _upsample(plan: _Plan, p: _EntryPlan, at_model: EntryOutputs, result: EntryResult) -> None:
    """Pass 3 of a resampled entry: its outputs at the data's voxel size, scored there."""
    settings, outputs, resampling = plan.settings, p.outputs, p.resampling
    assert outputs is not None and resampling is not None
    metrics_dir = None
    if settings.log_metrics and p.entry.labels:
        metrics_dir = metrics_path(outputs.work_dir, p.digest)
    block = UpsampleBlock(
        entry=p.entry.model_dump(),
        data_root=str(p.data_root) if p.data_root else None,
        container=str(outputs.container),
        coarse=at_model.probabilities,
        probabilities=outputs.probabilities,
        segmentation=outputs.segmentation,
        probability_dtype=settings.probabilities,
        threshold=plan.threshold,
        metrics_dir=str(metrics_dir) if metrics_dir is not None else None,
    )
    chunks = resampling.output_layout(p.layout).write_shape
    blocks = upsample_outputs(
        block, chunks, settings.num_workers, settings.worker_command, settings.progress
    )
    if metrics_dir is not None:
        _score(result, plan, metrics_dir, blocks)


def predict(settings: PredictionSettings | None = None, **overrides: Any) -> PredictionResult:
    """Predict every entry of a data config (or one input container) blockwise with daisy.

    Args:
        settings: a `PredictionSettings`; or leave it out and give its fields as keywords,
            e.g. ``predict(checkpoint="model.pt", input="cell.zarr", num_workers=2)``.
        overrides: fields to change in ``settings``.

    Returns:
        The outcome per entry (output paths, block counts, voxels/s, scores).

    Raises:
        IncasemError: the request is invalid (nothing was written).
        PredictionFailed: some blocks failed (after all others were done); its ``result`` is
            the `PredictionResult`. Rerun with ``resume=<id>`` to compute just those.
    """
    if settings is None:
        settings = PredictionSettings(**overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    return execute_plan(plan_prediction(settings))


def execute_plan(plan: _Plan, settings: PredictionSettings | None = None) -> PredictionResult:
    """Run a prediction planned by `plan_prediction` (see `predict` for the outcome).

    ``settings``: the planned settings again, as the Sacred run has them (with its run id); a
    request that differs from the plan's in anything that shapes the output is refused.
    """
    if settings is not None:
        if settings != plan.settings:
            raise IncasemError("the prediction's settings changed after it was planned")
        plan = replace(plan, settings=settings)
    settings = plan.settings
    logger.info("foreground threshold %g (%s)", plan.threshold, plan.threshold_origin)
    try:
        _create_outputs(plan)
    except (OSError, KeyError) as e:
        containers = ", ".join(sorted({str(p.container) for p in plan.entries}))
        refusal = write_refusal(containers, e)
        if refusal is None:
            raise
        raise refusal from None
    assert plan.group is not None
    logger.info(
        "prediction %s with %s%s",
        plan.group,
        plan.resolved.path,
        f" (continue an interrupted run with --resume {plan.prediction_id})"
        if plan.prediction_id is not None and settings.resume is None
        else "",
    )
    try:
        results = [_run_entry(plan, p) for p in plan.entries]
    except KeyboardInterrupt:
        raise Interrupted(
            f"the blocks done are kept in {plan.group}: run again with --resume "
            f"{plan.prediction_id} to compute the rest"
        ) from None
    result = PredictionResult(
        prediction_id=plan.prediction_id,
        group=plan.group,
        model=plan.model,
        checkpoint=plan.resolved.path,
        entries=results,
        threshold=plan.threshold,
        threshold_origin=plan.threshold_origin,
    )
    logger.info("%s", result.summary())
    if not result.ok:
        failed = sum(e.failed for e in results)
        first = next(
            (e.first_error or (e.failures[0] if e.failures else None) for e in results if not e.ok),
            None,
        )
        hint = f"--resume {plan.prediction_id}" if plan.prediction_id is not None else "--resume"
        raise PredictionFailed(
            f"{failed} of {sum(e.blocks for e in results)} blocks failed"
            + (f" (first: {first})" if first else "")
            + f"; rerun with {hint} to compute only those",
            result,
        )
    return result


def result_as_json(result: PredictionResult) -> str:
    """The result as JSON (for ``--json`` output and the Sacred run's result)."""
    return json.dumps(
        {
            "prediction_id": result.prediction_id,
            "group": result.group,
            "model": result.model,
            "checkpoint": str(result.checkpoint),
            "threshold": result.threshold,
            "threshold_origin": result.threshold_origin,
            "ok": result.ok,
            "entries": [
                {
                    "name": e.name,
                    "container": str(e.container),
                    "group": e.group,
                    "datasets": e.datasets,
                    "blocks": e.blocks,
                    "computed": e.computed,
                    "skipped": e.skipped,
                    "failed": e.failed,
                    "first_error": e.first_error,
                    "seconds": e.seconds,
                    "voxels_per_second": e.voxels_per_second,
                    "scores": e.scores,
                    "best_thresholds": e.best_thresholds,
                }
                for e in result.entries
            ],
        },
        indent=2,
    )
