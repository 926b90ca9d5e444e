"""Everything checked before training starts: sizes against the network, extra nodes, data
configs against the data on disk, voxel sizes against ``data.voxel_size``, and that every class
has voxels. A mistake costs seconds, not a night.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from incasem.errors import IncasemError
from incasem.io.data_config import DataConfig, check_data_config, entry_voxel_size
from incasem.pipeline.extra_nodes import check_extra_nodes
from incasem.torch.models import output_shape
from incasem.training.config import TrainingConfig

logger = logging.getLogger(__name__)


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
