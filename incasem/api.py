"""The library face of the two commands: `train` and `predict` from Python, as Sacred runs.

Both run exactly what ``incasem train`` (``scripts/train.py``) and ``incasem predict`` run: the
same checks before a run is recorded, the same Sacred run with its file observer under
``directories.runs``, the same outputs. They return where the results are instead of printing
them. Configuration is given as on the command line: config files (YAML or JSON, in the
original incasem's layout too) and updates by dotted key, later ones winning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from incasem.errors import IncasemError

if TYPE_CHECKING:
    from incasem.training.cli import TrainingRun
    from incasem.training.config import TrainingConfig

ConfigSource = str | os.PathLike | Mapping[str, Any]


@dataclass
class PredictionRun:
    """Where a finished prediction is.

    Attributes:
        run_id: the Sacred run's id.
        run_dir: the run's record: ``<directories.runs>/predictions/<run_id>/`` (config.json,
            run.json, metrics, reports).
        outputs: per entry name, its datasets as ``(container, dataset)``: the probabilities
            of each class (class 0 first; (z, y, x), uint8 p*255 or float32), then the
            segmentation (uint8 class ids), all on the entry's ROI in nm.
        result: the run's result as Sacred records it (blocks, voxels/s, scores per entry).
    """

    run_id: str
    run_dir: Path
    outputs: dict[str, list[tuple[Path, str]]]
    result: dict[str, Any]


def _plain(value: Any) -> Any:
    """A copy of ``value`` as Sacred records configs: paths as strings, tuples as lists (the
    caller's mapping stays as it was)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, os.PathLike) else value


def _layers(
    config: ConfigSource | Sequence[ConfigSource] | TrainingConfig | None,
    updates: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], list[str]]:
    """(nested updates, config files) as Sacred takes them: files and mappings of ``config``
    in order, then ``updates`` (dotted keys or nested); mappings and updates win over files."""
    from sacred.utils import set_by_dotted_path

    from incasem.tracking.config_layers import check_config_files, merge_into

    if config is None:
        sources: list[Any] = []
    elif isinstance(config, str | os.PathLike | Mapping) or hasattr(config, "model_dump"):
        sources = [config]
    else:
        sources = list(config)
    files: list[str] = []
    nested: dict[str, Any] = {}
    for source in [*sources, updates or {}]:
        if hasattr(source, "model_dump"):  # a TrainingConfig
            source = source.model_dump()
        if isinstance(source, str | os.PathLike):
            files.append(str(source))
            continue
        if not isinstance(source, Mapping):
            raise IncasemError(
                f"config: expected a file path or a mapping of keys, got {type(source).__name__}"
            )
        for key, value in _plain(source).items():
            if "." in key:
                update: dict[str, Any] = {}
                set_by_dotted_path(update, key, value)
                merge_into(nested, update)
            else:
                merge_into(nested, {key: value})
    check_config_files(files)
    return nested, files


def train(
    config: ConfigSource | Sequence[ConfigSource] | TrainingConfig | None = None,
    updates: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    start_from: str | os.PathLike | int | None = None,
    iteration: int | str | None = None,
    continue_run: str | int | None = None,
    mongodb: str | None = None,
) -> TrainingRun:
    """Train a network as ``incasem train`` does, recorded as a Sacred run.

    Args:
        config: the configuration: a YAML/JSON file (``configs/training.yaml``'s keys, or the
            original incasem's ``config_training.yaml`` layout), a mapping of keys (nested, or
            dotted as ``"training.iterations"``), a `TrainingConfig`, or a list of these
            (later ones win). Sizes in voxels (z, y, x), voxel sizes in nm (z, y, x).
        updates: keys set last, e.g. ``{"training.iterations": 2, "torch.device": "cpu"}``.
        name: the run's name in listings.
        start_from: fine-tune from this checkpoint file, or from training run N (an int).
        iteration: with a run id in ``start_from``: an iteration or ``"best"``.
        continue_run: resume this stopped run where it stopped.
        mongodb: also record the run in MongoDB (``mongodb://HOST[:PORT][/DB]``).

    Returns:
        `TrainingRun`: the run id and folder, the checkpoint to predict with, the result.

    Raises:
        IncasemError: bad configuration or data, in one line; no run is recorded.
    """
    from incasem.training.cli import run_training

    config_updates, files = _layers(config, updates)
    start = None
    if start_from is not None:
        start = [str(start_from)] + ([] if iteration is None else [str(iteration)])
    return run_training(
        config_updates,
        files,
        name=name,
        start_from=start,
        continue_run=None if continue_run is None else str(continue_run),
        mongodb=mongodb,
    )


def predict(
    config: ConfigSource | Sequence[ConfigSource] | None = None,
    updates: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    mongodb: str | None = None,
    progress: bool = True,
    **settings: Any,
) -> PredictionRun:
    """Predict blockwise with daisy as ``incasem predict`` does, recorded as a Sacred run.

    Args:
        config: ``configs/prediction.yaml``-style files (YAML/JSON) or mappings of Sacred keys
            (``prediction.data``, ...), or a list of them (later ones win).
        updates: Sacred keys set after ``config`` (dotted or nested).
        name: the Sacred run's name.
        mongodb: also record the run in MongoDB.
        progress: show a progress bar.
        settings: `incasem.predict.PredictionSettings` fields, set last, e.g.
            ``checkpoint="model.pt"``, ``input="cell.zarr"``, ``roi=[z, y, x, dz, dy, dx]``
            (offset and shape in voxels), ``num_workers=2``, ``probability_dtype="float32"``,
            ``output="out.zarr"``.

    Returns:
        `PredictionRun`: the Sacred run's record folder and, per entry, the datasets written.

    Raises:
        IncasemError: a bad request (nothing written, no run recorded) or an unknown setting.
        PredictionFailed: some blocks failed; rerun with ``resume=<prediction id>``.
    """
    from incasem.cli.predict import run_prediction
    from incasem.predict.configure import keyed_settings
    from incasem.tracking.observers import run_folder

    keyed = keyed_settings(settings)
    config_updates, files = _layers(
        [] if config is None else config, {**dict(updates or {}), **keyed}
    )
    run = run_prediction(config_updates, files, name=name, mongodb=mongodb, progress=progress)
    outputs = {
        entry["name"]: [(Path(entry["container"]), dataset) for dataset in entry["datasets"]]
        for entry in run.result["entries"]
    }
    return PredictionRun(str(run._id), run_folder(run), outputs, run.result)
