"""The layout of a training run folder, in one place.

``<runs>/<id>/`` is the Sacred ``FileStorageObserver`` folder (config.json, run.json,
metrics.json, cout.txt) and also holds our files::

    checkpoints/model_checkpoint_<iteration>.pt   self-describing, see incasem.torch.checkpoint
    best.json                                     the checkpoint with the best validation F1
                                                  at its best threshold, and that threshold
    tensorboard/                                  TensorBoard event files
    snapshots/<iteration>.zarr                    training batches with predictions
    training_curves.png                           loss and validation curves, redrawn at each
                                                  validation (incasem.viz.curves)

Prediction (and fine-tuning) find a model as ``--run_id N [--iteration K|best]`` from this
layout alone (`incasem.predict.checkpoints.resolve_checkpoint`). A checkpoint needs none of it
to predict (its model card describes it); what its place says about it (the run id that names
its outputs, the run's name and data configs an export records) is read here only
(`checkpoint_run`, `training_run_record`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from incasem.atomic import write_json

CHECKPOINT_NAME = re.compile(r"^model_checkpoint_(\d+)\.pt$")


def checkpoint_path(run_dir: str | os.PathLike, iteration: int) -> Path:
    """Where the checkpoint of ``iteration`` lives (whether or not it exists)."""
    return Path(run_dir) / "checkpoints" / f"model_checkpoint_{iteration}.pt"


def checkpoint_run(path: str | os.PathLike) -> tuple[int | None, int | None]:
    """(run id, iteration) of a checkpoint at ``<runs>/<id>/checkpoints/model_checkpoint_<it>.pt``;
    None for what its place and name do not say (a checkpoint moved elsewhere or renamed)."""
    path = Path(path)
    match = CHECKPOINT_NAME.match(path.name)
    iteration = int(match.group(1)) if match else None
    run = path.parent.parent.name if path.parent.name == "checkpoints" else ""
    return (int(run) if run.isdigit() else None), iteration


def training_run_record(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Run id, name and data configs of the run folder a checkpoint lies in (`checkpoint_run`
    of its resolved path, the run's ``config.json`` and ``run.json``); {} outside a run
    folder, just the run id when its config is unreadable."""
    resolved = Path(checkpoint).resolve()
    run_id, _ = checkpoint_run(resolved)
    if run_id is None:
        return {}
    run_dir = resolved.parent.parent
    record: dict[str, Any] = {"run_id": run_id}
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return record
    record["name"] = run_name(run_dir)
    record["training_data"] = config.get("training", {}).get("data")
    record["validation_data"] = config.get("validation", {}).get("data")
    return record


def training_curves_path(run_dir: str | os.PathLike) -> Path:
    """Where training draws its loss and validation curves (PNG)."""
    return Path(run_dir) / "training_curves.png"


def list_checkpoints(run_dir: str | os.PathLike) -> dict[int, Path]:
    """Iteration -> checkpoint path, for all checkpoints of a run, in iteration order."""
    folder = Path(run_dir) / "checkpoints"
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = CHECKPOINT_NAME.match(path.name)
            if match:
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


#: How a score of several foreground classes becomes one number (`incasem.metrics.foreground_mean`).
MULTI_CLASS_RULE = "mean over foreground classes"


def write_best(
    run_dir: str | os.PathLike,
    iteration: int,
    metric: str,
    value: float,
    threshold: float | None = None,
    classes: dict[str, float] | None = None,
) -> None:
    """Record ``iteration`` as the run's best checkpoint by validation ``metric``, with the
    decision threshold (on p(class 1), two classes only) at which it reached ``value``.

    ``classes``: ``metric`` per foreground class; ``value`` is their mean (``rule``
    `MULTI_CLASS_RULE`)."""
    write_json(
        Path(run_dir) / "best.json",
        {
            "iteration": iteration,
            "checkpoint": str(checkpoint_path(".", iteration)),
            "metric": metric,
            "value": value,
            "rule": MULTI_CLASS_RULE,
            "classes": dict(classes or {}),
            "threshold": threshold,
        },
    )


def run_name(run_dir: str | os.PathLike) -> str:
    """The Sacred experiment name (``--name``) in the run folder's ``run.json``, or "" if there
    is none or the file is unreadable."""
    try:
        name = json.loads((Path(run_dir) / "run.json").read_text())["experiment"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return name if isinstance(name, str) else ""


def read_best(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``best.json``, or None if the run has not validated yet."""
    path = Path(run_dir) / "best.json"
    return json.loads(path.read_text()) if path.is_file() else None
