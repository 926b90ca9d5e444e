"""The entries a prediction covers, read and checked against their data and the model.

An entry is a data-config entry (`incasem.io.data_config`), or one built from ``--input`` and
``--dataset``; its ROI is checked against its datasets, its voxel size against the model's
(a whole fraction means resampling, `incasem.predict.resample`), and its grey values against
the training raw's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.data_config import DataConfig, DataEntry, load_data_config, validate_against_data
from incasem.io.intensity import WARN_DISTANCE, histogram_distance, percentiles, sample_histogram
from incasem.predict.output import container_path, safe_name
from incasem.predict.resample import Resampling, resampling_for

if TYPE_CHECKING:
    from incasem.predict.settings import PredictionSettings
    from incasem.torch.checkpoint import ModelCard

logger = logging.getLogger("incasem.predict")


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


def load_entries(
    settings: PredictionSettings, num_classes: int
) -> tuple[list[DataEntry], Path | None]:
    """(entries, data root) of the request: its data config's entries, or the one entry of
    ``--input``; each checked against its datasets (ROI in voxels inside them, label ids below
    ``num_classes``)."""
    if settings.input is not None:
        entry = _input_entry(settings)
        validate_against_data(DataConfig(entries=[entry]), num_classes=num_classes)
        return [entry], None
    data_root = container_path(settings.data_root) if settings.data_root else None
    config = load_data_config(settings.data, data_root=data_root)
    validate_against_data(config, num_classes=num_classes, data_root=data_root)
    return list(config.entries), data_root


def entry_record(entry: DataEntry, data_root: Path | None) -> dict[str, Any]:
    """What of an entry shapes its output (container, datasets, ROI in voxels, voxel size in
    nm), for its provenance."""
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


def check_entries(
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
