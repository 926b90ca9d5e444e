"""The training command line, Sacred style, as users of the original know it::

    python scripts/train.py --name er_cell1 with configs/training.yaml \\
        training.data=configs/data/x.json torch.device=cpu training.iterations=20000
    python scripts/train.py --start_from runs/3/checkpoints/model_checkpoint_5000.pt with ...
    python scripts/train.py --start_from 3 best with ...     # fine-tune from run 3's best
    python scripts/train.py --continue_run 3                  # resume run 3 where it stopped

We parse our own flags and hand ``with`` updates to ``Experiment.run`` instead of Sacred's
``run_commandline``, so that a user error ends with one line (Sacred would print a traceback) and
the experiment is built by a function, not at import: the Sacred front end prediction shares
(`incasem.tracking.experiment`). Every run is recorded by a file observer under
``directories.runs``; ``--mongodb`` adds a MongoDB observer for Omniboard.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sacred.utils import set_by_dotted_path

from incasem.errors import IncasemError
from incasem.predict.checkpoints import resolve_checkpoint
from incasem.torch.checkpoint import ModelCard, load_checkpoint
from incasem.torch.models.unet import ARCHITECTURE_DEFAULTS
from incasem.tracking.experiment import (
    new_experiment,
    resolve_config,
    run_experiment,
    with_clause,
)
from incasem.tracking.observers import add_database_artifacts, run_folder
from incasem.tracking.run_folder import list_checkpoints, read_best, run_name, training_curves_path
from incasem.training.allocator import exec_with_allocator_settings
from incasem.training.arguments import DESCRIPTION, add_arguments
from incasem.training.checks import TrainingData, check_training_config
from incasem.training.config import TrainingConfig, default_config, parse_config
from incasem.training.loop import train
from incasem.training.model_setup import HPARAM_CONFIG_KEYS, build_model, check_start_from
from incasem.training.signals import TrainingInterrupted

logger = logging.getLogger(__name__)


def build_training_experiment(
    runs_dir: str,
    mongodb: str | None = None,
    started: dict[str, Path] | None = None,
    checked: TrainingData | None = None,
    continue_id: str | None = None,
) -> Any:
    """A Sacred experiment that trains with `incasem.training.loop.train`.

    The run folder of the file observer is the training run folder (checkpoints, best.json,
    TensorBoard, snapshots). With ``continue_id`` (``--continue_run``; run the experiment with
    the option ``--id`` set to it) the run is recorded under that id again and trains on in its
    folder. ``started["run_dir"]`` receives the folder training writes into; ``checked`` is the
    data already checked for the same data configs (not read again).
    """

    def _train(_config: dict[str, Any], _run) -> dict[str, Any]:
        config = parse_config(_config)
        run_dir = run_folder(_run)
        resume = config.training.continue_id is not None
        if started is not None:
            started["run_dir"] = run_dir
        result = train(
            config,
            run_dir,
            log_scalar=_run.log_scalar,
            start_from=config.training.start_from,
            resume=resume,
            checked=checked if checked and _same_data(checked, config) else None,
        )
        best = read_best(run_dir)
        add_database_artifacts(
            _run,
            {
                "training_curves.png": training_curves_path(run_dir),
                "best.json": run_dir / "best.json",
                **({Path(best["checkpoint"]).name: run_dir / best["checkpoint"]} if best else {}),
            },
        )
        return {
            "run_dir": str(result.run_dir),
            "iterations": [result.first_iteration, result.last_iteration],
            "final_loss": result.losses[-1] if result.losses else None,
            "best_iteration": result.best_iteration,
            "validation": {str(k): v for k, v in result.validation.items()},
            "empty_batches": result.empty_batches,
        }

    return new_experiment(
        "incasem_training", default_config(), runs_dir, _train, mongodb, continue_id
    )


def _same_data(checked: TrainingData, config: TrainingConfig) -> bool:
    """Whether ``checked`` was made from the data configs ``config`` names."""
    return checked.sources == (
        config.directories.data,
        config.training.data,
        config.validation.data,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def _resolved_config(config_updates: dict[str, Any], files: Sequence[str]) -> dict[str, Any]:
    """Defaults < YAML files < key=value updates, as Sacred will combine them."""
    return resolve_config(default_config(), config_updates, files)


def _plan_auto_sizes(config_updates: dict[str, Any], files: Sequence[str]) -> None:
    """Replace ``auto`` downsampling and training sizes by the plan for the training data (as
    ``incasem plan`` prints it), so the run records the values it trains with."""
    from incasem.predict.block_size import memory_budget
    from incasem.training.plan import resolve_auto

    resolved = _resolved_config(config_updates, files)
    device = str((resolved.get("torch") or {}).get("device", "cpu"))
    budget = memory_budget("cuda" if device.startswith("cuda") or device.isdigit() else "cpu", 1)
    planned, plan = resolve_auto(resolved, budget)
    for key, value in planned.items():
        set_by_dotted_path(config_updates, key, value)
    if plan is not None:
        logger.info("planned from the training data (incasem plan):\n%s", plan.describe())


def _card_config(card: ModelCard) -> dict[str, Any]:
    """The config a fine-tuning run takes from its checkpoint's model card (dotted keys):
    the network, its classes, voxel size (nm) and training input/output sizes (voxels)."""
    hparams = {**ARCHITECTURE_DEFAULTS, **card.hparams}  # a card names only other options
    network = {key: hparams[name] for name, key in HPARAM_CONFIG_KEYS.items()}
    return {
        **network,
        "data.class_names": list(card.class_names),
        "data.voxel_size": list(card.voxel_size),
        "training.input_size_voxels": list(card.input_size_voxels),
        "training.output_size_voxels": list(card.output_size_voxels),
    }


def _set_by_user(key: str, config_updates: dict[str, Any], files: Sequence[str]) -> bool:
    """Whether the dotted ``key`` is given on the command line or in one of the YAML files."""

    def has(tree: Any, parts: list[str]) -> bool:
        for part in parts:
            if not isinstance(tree, dict) or part not in tree:
                return False
            tree = tree[part]
        return True

    parts = key.split(".")
    return has(config_updates, parts) or any(
        has(yaml.safe_load(Path(name).read_text()), parts) for name in files
    )


@dataclass
class TrainingRun:
    """Where a finished training run is.

    Attributes:
        run_id: the Sacred run's id (the run folder's name).
        run_dir: the run folder: ``config.json``, ``run.json``, ``metrics.json``,
            ``checkpoints/``, ``best.json``, ``snapshots/``, ``tensorboard/``.
        checkpoint: the checkpoint to predict with: the best one (``best.json``) if the run
            validated, else the latest.
        result: the run's result as Sacred records it (iterations, final loss, validation).
    """

    run_id: str
    run_dir: Path
    checkpoint: Path | None
    result: dict[str, Any]


@dataclass
class _Prepared:
    config: TrainingConfig
    config_updates: dict[str, Any]
    files: list[str]
    runs_dir: str
    name: str | None
    checked: TrainingData


def _start_from_checkpoint(
    start_from: Sequence[str], config_updates: dict[str, Any], files: Sequence[str], runs_dir: str
) -> Path:
    """The checkpoint ``--start_from`` names; its card's network and sizes fill the keys the
    user did not set."""
    source = start_from[0]
    if Path(source).is_file():
        checkpoint = Path(source)
    else:
        iteration = start_from[1] if len(start_from) > 1 else None
        if not source.isdigit():
            raise IncasemError(f"--start_from {source}: no such checkpoint file or run id")
        checkpoint = resolve_checkpoint(None, int(source), iteration, runs_dir).path
    set_by_dotted_path(config_updates, "training.start_from", str(checkpoint))
    card = load_checkpoint(checkpoint).card
    for key, value in _card_config(card).items():
        if not _set_by_user(key, config_updates, files):
            set_by_dotted_path(config_updates, key, value)
    return checkpoint


def _prepare(
    config_updates: dict[str, Any],
    files: Sequence[str],
    name: str | None,
    start_from: Sequence[str] | None,
    continue_run: str | None,
) -> _Prepared:
    """Resolve and check everything before Sacred records a run (raises `IncasemError`)."""
    files = list(files)
    runs_dir = _resolved_config(config_updates, files)["directories"]["runs"]
    if continue_run is not None:
        run_config = Path(runs_dir) / continue_run / "config.json"
        if not run_config.is_file():
            raise IncasemError(f"--continue_run {continue_run}: no {run_config}")
        # A continued run keeps the name it was recorded under, unless --name says otherwise.
        if name is None:
            name = run_name(run_config.parent)
        files = [str(run_config), *files]
        set_by_dotted_path(config_updates, "training.continue_id", continue_run)
        set_by_dotted_path(config_updates, "training.start_from", None)
    checkpoint = None
    if start_from:
        checkpoint = _start_from_checkpoint(start_from, config_updates, files, runs_dir)
    _plan_auto_sizes(config_updates, files)
    config = parse_config(_resolved_config(config_updates, files))
    if checkpoint is not None:
        # before Sacred records a run: a network that cannot take the weights is bad input
        check_start_from(
            load_checkpoint(checkpoint).card.hparams, build_model(config).hparams(), checkpoint
        )
    checked = check_training_config(config)
    return _Prepared(config, config_updates, files, runs_dir, name, checked)


def run_training(
    config_updates: dict[str, Any],
    files: Sequence[str],
    *,
    name: str | None = None,
    start_from: Sequence[str] | None = None,
    continue_run: str | None = None,
    mongodb: str | None = None,
    started: dict[str, Path] | None = None,
) -> TrainingRun:
    """Check the configuration, then train as a Sacred run (what ``scripts/train.py`` and
    ``incasem train`` do after parsing their flags).

    Args:
        config_updates: the ``with`` clause's ``key=value`` updates, nested.
        files: YAML/JSON config files, in order (later ones win; updates win over all).
        name: the run's name.
        start_from: ``[CHECKPOINT]`` or ``[RUN_ID]`` or ``[RUN_ID, ITERATION|best]``.
        continue_run: a run id to resume.
        mongodb: also record in MongoDB (``mongodb://HOST[:PORT][/DB]``).
        started: receives ``run_dir`` as soon as the run folder exists.

    Raises:
        IncasemError: bad configuration or data (one line; no run is recorded).
        TrainingInterrupted: SIGTERM/SIGINT stopped training (checkpoint saved).
    """
    prepared = _prepare(dict(config_updates), files, name, start_from, continue_run)
    started = {} if started is None else started
    experiment = build_training_experiment(
        prepared.runs_dir, mongodb, started, prepared.checked, continue_run
    )
    run = run_experiment(
        experiment,
        prepared.config_updates,
        prepared.files,
        name=prepared.name,
        run_id=continue_run,
    )
    run_dir = started["run_dir"]
    best = read_best(run_dir)
    checkpoints = list_checkpoints(run_dir)
    if best is not None:
        checkpoint = run_dir / best["checkpoint"]
    else:
        checkpoint = checkpoints[max(checkpoints)] if checkpoints else None
    return TrainingRun(str(run._id), run_dir, checkpoint, run.result)


def run_arguments(args: argparse.Namespace, prog: str) -> int:
    """Train as the parsed ``args`` say; errors are one line prefixed with ``prog``. Returns the
    exit code: 0, 2 for bad input, 128 + signal for a run stopped by a signal."""
    if args.start_from and "with" in args.start_from:  # '--start_from 3 with ...'
        split = args.start_from.index("with")
        args.updates = [*args.start_from[split:], *args.updates]
        args.start_from = args.start_from[:split]
    started: dict[str, Path] = {}
    try:
        config_updates, files = with_clause(args.updates)
        if args.print_config:
            prepared = _prepare(
                config_updates, files, args.name, args.start_from, args.continue_run
            )
            print(json.dumps(prepared.config.model_dump(), indent=2))
            return 0
        run = run_training(
            config_updates,
            files,
            name=args.name,
            start_from=args.start_from,
            continue_run=args.continue_run,
            mongodb=args.mongodb,
            started=started,
        )
    except IncasemError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(
            f"{prog}: stopped by {signal.Signals(e.signum).name} at iteration {e.iteration} "
            f"(checkpoint saved; run recorded as INTERRUPTED); resume with --continue_run "
            f"{started['run_dir'].name}",
            file=sys.stderr,
        )
        return 128 + e.signum
    print(json.dumps(run.result, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training command line (``scripts/train.py``); returns the exit code.

    From the command line (``argv`` None) the process first re-executes itself with the
    allocator settings of `incasem.training.allocator` (``INCASEM_ALLOCATOR=system``: not).
    """
    if argv is None:
        try:
            exec_with_allocator_settings()
        except IncasemError as e:
            print(f"train.py: error: {e}", file=sys.stderr)
            return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    # Split at 'with' ourselves: argparse would let '--start_from RUN_ID [ITERATION]' swallow it.
    split = argv.index("with") if "with" in argv else len(argv)
    args = _parser().parse_args(argv[:split])
    args.updates = [*args.updates, *argv[split:]]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_arguments(args, "train.py")
