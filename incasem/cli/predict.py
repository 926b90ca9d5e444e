"""``incasem predict`` and ``scripts/predict.py``: blockwise prediction, recorded as a Sacred run.

Both take the same flags and Sacred's ``with`` clause, so the original's command lines keep
working (``with prediction.data=... prediction.checkpoint=... prediction.num_workers=4``) next to
plain flags (``--checkpoint``, ``--run_id``, ``--input``, ``--num_workers``, ...); flags win over
``with`` updates, which win over YAML files named in the ``with`` clause and the defaults. Every
run is recorded under ``<directories.runs>/predictions/<id>/`` (config, metrics, output, result)
by Sacred's file observer, plus MongoDB with ``--mongodb``; with metrics, a PNG per entry
(sections raw | probability | segmentation | labels, and the threshold sweep) is added to the
run as ``<entry>_report.png``. The experiment is built when the command runs, not at import.
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
from incasem.predict.settings import OUTPUT_VOXEL_SIZES, PRECISIONS, PROBABILITY_DTYPES

logger = logging.getLogger("incasem.predict")

#: Flags whose destination is not the settings field's name (every other flag's is).
_FLAG_FIELDS = {"host": "scheduler_host", "input_size": "input_size_voxels"}


def _resume_value(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a prediction id, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the prediction flags (all optional: unset flags leave the configuration alone)."""
    _add_model_and_data_arguments(parser)
    _add_output_arguments(parser)
    _add_execution_arguments(parser)
    _add_tracking_arguments(parser)


def _add_model_and_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: the checkpoint and the data to predict."""
    s = argparse.SUPPRESS  # an unset flag leaves the configuration alone
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default=s, help="checkpoint file (.pt)")
    model.add_argument(
        "-r", "--run_id", "--run-id", dest="run_id", type=int, default=s,
        help="training run N in the runs folder (uses its best checkpoint, else the latest)",
    )  # fmt: skip
    model.add_argument("--iteration", default=s, help="with --run_id: an iteration K, or 'best'")
    model.add_argument(
        "--runs_dir", "--runs-dir", dest="runs_dir", default=s,
        help="training runs folder (directories.runs, default: runs)",
    )  # fmt: skip
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=s, help="data config JSON (several: comma-separated)")
    data.add_argument(
        "--data_root", "--data-root", dest="data_root", default=s,
        help="folder that relative 'file' paths are joined to (directories.data)",
    )  # fmt: skip
    data.add_argument("--input", default=s, help="container to predict instead of --data")
    data.add_argument("--dataset", default=s, help="raw dataset in --input (volumes/raw)")
    data.add_argument(
        "--roi", type=int, nargs=6, metavar=("Z", "Y", "X", "DZ", "DY", "DX"), default=s,
        help="with --input: offset and shape in voxels (default: the whole dataset)",
    )  # fmt: skip


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: where and how the outputs are written."""
    s = argparse.SUPPRESS  # an unset flag leaves the configuration alone
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output", default=s,
        help="container to write into (default: each entry's input container)",
    )  # fmt: skip
    out.add_argument(
        "--output_group", "--output-group", dest="output_group", default=s,
        help="group for the outputs (default: volumes/predictions/<model>/predict_<new id>)",
    )  # fmt: skip
    out.add_argument(
        "--output_voxel_size", "--output-voxel-size", dest="output_voxel_size",
        choices=OUTPUT_VOXEL_SIZES, default=s,
        help="data finer than the model: write outputs at the data's voxel size (upsampled, "
        "the default) or the model's",
    )  # fmt: skip
    out.add_argument(
        "--resume", nargs="?", const=True, type=_resume_value, default=s, metavar="ID",
        help="continue prediction ID (or --output_group without ID), skipping its done blocks",
    )  # fmt: skip
    out.add_argument("--overwrite", action="store_true", default=s, help="replace outputs")
    out.add_argument(
        "--probabilities", choices=PROBABILITY_DTYPES, default=s,
        help="probability dtype (uint8 = p*255, the default)",
    )  # fmt: skip
    out.add_argument(
        "--threshold", type=float, default=s,
        help="foreground threshold (default: the model's calibrated threshold, else 0.5)",
    )  # fmt: skip
    out.add_argument(
        "--log_metrics", "--log-metrics", dest="log_metrics", action="store_true", default=s,
        help="score against the entries' labels while predicting",
    )  # fmt: skip


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: workers, devices, blocks, resume."""
    s = argparse.SUPPRESS  # an unset flag leaves the configuration alone
    run = parser.add_argument_group("execution")
    run.add_argument(
        "--num_workers", "--num-workers", dest="num_workers", type=int, default=s,
        help="daisy worker processes, each with its own model (default 1)",
    )  # fmt: skip
    run.add_argument("--gpus", default=s, help="GPUs to spread workers over, e.g. 0,1")
    run.add_argument(
        "--workers-per-gpu", "--workers_per_gpu", dest="workers_per_gpu", type=int, default=s,
        help="workers per GPU (sets --num_workers to this times the number of GPUs)",
    )  # fmt: skip
    run.add_argument(
        "--precision", choices=PRECISIONS, default=s,
        help="network arithmetic: float32 (default) or 16-bit autocast (faster on GPUs)",
    )  # fmt: skip
    run.add_argument("--device", default=s, help="auto (default), cpu, cuda, cuda:N or N")
    run.add_argument(
        "--worker-command", "--worker_command", dest="worker_command", default=s,
        help="launch each worker through this template, e.g. 'srun --gpus=1 {command}'",
    )  # fmt: skip
    run.add_argument(
        "--host", default=s, help="scheduler address workers connect to (default 127.0.0.1)"
    )
    run.add_argument(
        "--input_size", "--input-size", dest="input_size", nargs="+", default=s,
        metavar="Z Y X|auto", help="network input per block, voxels; 'auto': the largest block "
        "that fits the memory per worker (fastest)",
    )  # fmt: skip
    run.add_argument(
        "--deterministic", action="store_true", default=s,
        help="bit-identical results for any block layout (CPU: several times slower)",
    )  # fmt: skip
    run.add_argument(
        "--block_timeout", "--block-timeout", dest="block_timeout", type=float, default=s,
        help="seconds before a stuck block is retried (default: derived from the block size)",
    )  # fmt: skip


def _add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: Sacred runs and the configuration."""
    track = parser.add_argument_group("tracking")
    track.add_argument("--name", default=None, help="name of the Sacred run")
    track.add_argument("--mongodb", default=None, help="also record in MongoDB (mongodb://...)")
    track.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
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
    from sacred.utils import set_by_dotted_path

    from incasem.predict.settings import config_key
    from incasem.tracking.experiment import with_clause

    config_updates, named_configs = with_clause(args.updates, required=False)
    for dest, value in vars(args).items():  # unset flags are absent (default SUPPRESS)
        key = config_key(_FLAG_FIELDS.get(dest, dest))
        if key is not None:
            set_by_dotted_path(config_updates, key, value)
    return config_updates, named_configs


def resolve_config(config_updates: dict[str, Any], named_configs: Sequence[str]) -> dict[str, Any]:
    """The configuration Sacred will run with: defaults, then config files, then updates.

    Computed up front so that a bad request fails before Sacred records a run.
    """
    from incasem.predict.settings import default_config
    from incasem.tracking import experiment

    config = experiment.resolve_config(default_config(), config_updates, named_configs)
    unknown = sorted(_dotted_keys(config) - _dotted_keys(default_config()))
    if unknown:
        logger.warning("configuration keys not used by prediction: %s", ", ".join(unknown))
    return config


def _dotted_keys(config: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in config.items():
        if isinstance(value, dict) and value:
            keys |= _dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


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
    from incasem.predict.settings import PredictionSettings, default_config
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
    from incasem.predict.settings import PredictionSettings
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
