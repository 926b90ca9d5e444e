"""``incasem predict`` and ``scripts/predict.py``: blockwise prediction, recorded as a Sacred run.

Both take the same flags and Sacred's ``with`` clause, so the original's command lines keep
working (``with prediction.data=... prediction.checkpoint=... prediction.num_workers=4``) next to
plain flags (``--checkpoint``, ``--run_id``, ``--input``, ``--num_workers``, ...); flags win over
``with`` updates, which win over YAML files named in the ``with`` clause and the defaults. Every
run is recorded under ``<directories.runs>/predictions/<id>/`` (config, metrics, output, result)
by Sacred's file observer, plus MongoDB with ``--mongodb``; with metrics, a PNG per entry
(sections raw | probability | segmentation | labels, and the threshold sweep) is added to the
run as ``<entry>_report.png``. The experiment is built when the command runs, not at import.

The settings flags are generated from `incasem.predict.settings.PredictionSettings`
(`incasem.settings.add_flags`); what the words mean (Sacred keys, the resolved configuration) is
worked out in `incasem.predict.configure`. This module parses, runs and prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from incasem.errors import INTERRUPTED_EXIT_CODE, IncasemError, interruption_line
from incasem.predict.configure import config_updates, resolve_config
from incasem.predict.settings import PredictionSettings
from incasem.settings import add_flags

logger = logging.getLogger("incasem.predict")

#: The flags by group, generated from `PredictionSettings` (names, types, defaults, help).
_FLAG_GROUPS = {
    "model": ["checkpoint", "run_id", "iteration", "runs_dir"],
    "data": ["data", "data_root", "input", "dataset", "roi"],
    "output": ["output", "output_group", "output_voxel_size", "resume", "overwrite",
               "probability_dtype", "threshold", "post_processing", "log_metrics"],
    "execution": ["num_workers", "gpus", "workers_per_gpu", "precision", "device",
                  "worker_command", "scheduler_host", "input_size_voxels", "output_size_voxels",
                  "deterministic", "flips", "block_timeout", "max_retries"],
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the prediction flags, one per `PredictionSettings` field (all optional: unset flags
    leave the configuration alone), and the run's own (name, MongoDB, progress, JSON)."""
    for title, names in _FLAG_GROUPS.items():
        add_flags(parser.add_argument_group(title), PredictionSettings, names, leave_unset=True)
    track = parser.add_argument_group("tracking")
    add_flags(track, PredictionSettings, ["progress"])
    track.add_argument("--name", default=None, help="name of the Sacred run")
    track.add_argument("--mongodb", default=None, help="also record in MongoDB (mongodb://...)")
    track.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "updates", nargs="*", metavar="with ...",
        help="Sacred: 'with' followed by key=value updates and YAML files",
    )  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="predict organelles blockwise with daisy (many workers, resumable)",
        description="Predict a data config's ROIs (or one container) blockwise: every ROI "
        "whole, seam-free, with N daisy workers, resumable. Sizes are in voxels (z y x).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _config_updates(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The ``with`` clause (optional ``with``), then every flag given, by its Sacred key."""
    return config_updates(vars(args), args.updates)


def _log_scores(run: Any, result: Any) -> None:
    """Log every entry's scores as Sacred metrics ``<entry>/<score>``."""
    for entry in result.entries:
        for key, value in entry.scores.items():
            run.log_scalar(f"{entry.name}/{key}", value)


def _add_reports(run: Any, result: Any) -> None:
    """A PNG per scored entry (sections and threshold sweep) as a run artifact."""
    import tempfile

    from incasem.viz.prediction import write_prediction_report

    scored = [entry for entry in result.entries if entry.scores and entry.ok]
    if not scored:
        return
    with tempfile.TemporaryDirectory() as folder:
        for entry in scored:
            png = Path(folder) / f"{entry.name}_report.png"
            write_prediction_report(entry.container, entry.group, png)
            run.add_artifact(str(png), png.name)


def build_experiment(
    runs_dir: str | Path, mongodb: str | None = None, progress: bool = True, plan: Any = None
) -> Any:
    """The Sacred experiment of a prediction, observed under ``<runs_dir>/predictions``.

    ``plan``: the prediction already planned from the same configuration (`plan_prediction`),
    so that the run does not load and hash the checkpoint and open every dataset again.
    """
    from incasem.predict.run import PredictionFailed, execute_plan, predict, result_as_json
    from incasem.predict.settings import default_config
    from incasem.tracking.experiment import new_experiment

    def main(_config: dict[str, Any], _run: Any) -> dict[str, Any]:
        """Predict with the run's configuration; the result (JSON) is the run's result."""
        settings = PredictionSettings.from_config(
            _config, sacred_run_id=_run._id, progress=progress
        )
        try:
            result = predict(settings) if plan is None else execute_plan(plan, settings)
        except PredictionFailed as e:
            _log_scores(_run, e.result)
            _run.info["result"] = json.loads(result_as_json(e.result))
            raise
        _log_scores(_run, result)
        _add_reports(_run, result)
        return json.loads(result_as_json(result))

    return new_experiment(
        "incasem_prediction", default_config(), Path(runs_dir) / "predictions", main, mongodb
    )


def run_prediction(
    config_updates: dict[str, Any],
    named_configs: Sequence[str],
    *,
    name: str | None = None,
    mongodb: str | None = None,
    progress: bool = True,
) -> Any:
    """Plan, then predict as a Sacred run; returns Sacred's run (its ``result`` is the JSON of
    `incasem.predict.run.result_as_json`, its first observer's ``dir`` the run's record).

    Args:
        config_updates: Sacred updates (nested; ``prediction.checkpoint``, ...).
        named_configs: YAML/JSON config files, in order.
        name: the Sacred run's name.
        mongodb: also record in MongoDB (``mongodb://HOST[:PORT][/DB]``).
        progress: show a progress bar.

    Raises `IncasemError` (nothing recorded or written) for a bad request, `PredictionFailed`
    when blocks failed.
    """
    from incasem.predict.run import plan_prediction
    from incasem.tracking.experiment import run_experiment

    config = resolve_config(config_updates, named_configs)
    plan = plan_prediction(PredictionSettings.from_config(config, progress=progress))
    experiment = build_experiment(
        config["directories"].get("runs") or "runs", mongodb, progress, plan
    )
    # Unknown keys (e.g. the original's prediction.pipeline) were already reported by
    # resolve_config; force stops Sacred from refusing them.
    return run_experiment(
        experiment, config_updates, named_configs, name=name, capture="sys", force=True
    )


def run(args: argparse.Namespace) -> int:
    """Run a prediction from parsed arguments; returns the exit code (0: every block done)."""
    config_updates, named_configs = _config_updates(args)
    sacred_run = run_prediction(
        config_updates, named_configs, name=args.name, mongodb=args.mongodb, progress=args.progress
    )
    if args.json:
        print(json.dumps(sacred_run.result, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/predict.py``: the same command as ``incasem predict``."""
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Blockwise prediction with daisy (see 'incasem predict --help').",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except IncasemError as e:
        print(f"predict: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"predict: {interruption_line(e)}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
