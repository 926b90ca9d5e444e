"""Find the checkpoint of a training run in the run store, without a database.

The original needed the MongoDB of the training runs to predict at all. Our training runs are
folders, ``<runs>/<N>/`` (Sacred's file observer) with ``checkpoints/model_checkpoint_<it>.pt``
and ``best.json``, and a checkpoint carries its own model card, so ``--run_id N [--iteration
K|best]`` is resolved by looking at files. An exported model (`incasem.torch.export`) is a
checkpoint too and is given as ``--checkpoint``; original ASEM weights are recognised and
refused with the command that wraps them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from incasem.errors import IncasemError
from incasem.tracking.run_folder import checkpoint_run, list_checkpoints

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A checkpoint file and, if known, the training run and iteration it belongs to."""

    path: Path
    run_id: int | None
    iteration: int | None


def _check_not_asem_weights(path: Path) -> None:
    """Original ASEM weights carry no description: say how to wrap them instead of failing on
    a missing model card."""
    from incasem.torch.export import describe_model

    if path.is_file() and describe_model(path).kind == "asem-weights":
        raise IncasemError(
            f"{path}: original ASEM weights without a model card; wrap them first with "
            f"'incasem export --asem {path} --model-id N -o model.pt' "
            "(see docs/howto/runs-models-viewing.md)"
        )


def resolve_checkpoint(
    checkpoint: str | os.PathLike | None,
    run_id: int | None,
    iteration: int | str | None,
    runs_dir: str | os.PathLike,
) -> ResolvedCheckpoint:
    """The checkpoint to predict with.

    Args:
        checkpoint: an explicit file; wins over ``run_id`` (which then only names outputs).
        run_id: a training run folder ``<runs_dir>/<run_id>``.
        iteration: an iteration of that run, or ``"best"``; None means best if the run has a
            ``best.json``, else the latest checkpoint.
        runs_dir: the training runs folder.

    Raises `IncasemError` naming the run folder and the checkpoints it has when the request
    cannot be met.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        _check_not_asem_weights(path)
        found_run, found_iteration = checkpoint_run(path)
        return ResolvedCheckpoint(
            path, run_id if run_id is not None else found_run, found_iteration
        )
    if run_id is None:
        raise IncasemError("no model given: pass a checkpoint or a training run id")
    runs_dir = Path(runs_dir).expanduser()
    run_dir = runs_dir / str(run_id)
    if not run_dir.is_dir():
        runs = sorted(int(p.name) for p in runs_dir.glob("*") if p.name.isdigit())
        raise IncasemError(
            f"{run_dir}: no such training run (runs in {runs_dir}: "
            f"{', '.join(map(str, runs)) or 'none'})"
        )
    checkpoints = list_checkpoints(run_dir)
    best_file = run_dir / "best.json"
    if iteration == "best" or (iteration is None and best_file.is_file()):
        if not best_file.is_file():
            raise IncasemError(f"{run_dir}: no best.json (the run was never validated)")
        try:
            best = json.loads(best_file.read_text())
            path = run_dir / best["checkpoint"]
            chosen = int(best["iteration"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise IncasemError(f"{best_file}: unreadable ({e})") from None
        logger.info("run %s: best checkpoint is iteration %d (%s)", run_id, chosen, path.name)
        return ResolvedCheckpoint(path, run_id, chosen)
    if not checkpoints:
        raise IncasemError(f"{run_dir}: the run has no checkpoints (checkpoints/ is empty)")
    if iteration is None:
        chosen = max(checkpoints)
        logger.info("run %s: no best.json, using the latest checkpoint (%d)", run_id, chosen)
    else:
        chosen = int(iteration)
        if chosen not in checkpoints:
            raise IncasemError(
                f"{run_dir}: no checkpoint for iteration {chosen} (available: "
                f"{', '.join(map(str, checkpoints))})"
            )
    return ResolvedCheckpoint(checkpoints[chosen], run_id, chosen)
