"""``incasem runs list|show|plot``: browse the run store without a database.

Reads the Sacred file-observer folders under ``directories.runs`` (see
`incasem.tracking.runs`); the same runs are in MongoDB when they were started with
``--mongodb``, for Omniboard.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from incasem.errors import IncasemError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem runs`` with its ``list``, ``show`` and ``plot`` actions."""
    parser = subparsers.add_parser(
        "runs",
        help="list, show and plot training and prediction runs",
        description="Browse the runs folder: training runs are N, predictions pN.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(action: argparse.ArgumentParser) -> None:
        action.add_argument(
            "--runs-dir", "--runs_dir", dest="runs_dir", default="runs",
            help="runs folder (directories.runs, default: runs)",
        )  # fmt: skip

    listing = actions.add_parser("list", help="one line per run")
    common(listing)
    listing.add_argument("--kind", choices=("training", "prediction"), help="only this kind")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument(
        "--mongodb", metavar="URL",
        help="list the runs recorded in this MongoDB database instead (mongodb://HOST[:PORT][/DB])",
    )  # fmt: skip
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", help="one run with its metric curves summarised")
    common(show)
    show.add_argument("run_id", metavar="ID", help="N (training) or pN (prediction)")
    show.add_argument("--config", action="store_true", help="also print the full config")
    show.set_defaults(func=run_show)

    plot = actions.add_parser(
        "plot", help="PNG of training loss and validation F1/IoU (with its continuations)"
    )
    common(plot)
    plot.add_argument("run_id", metavar="ID", help="training run N")
    plot.add_argument("-o", "--out", help="PNG to write (default: run_<ID>_curves.png)")
    plot.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    plot.set_defaults(func=run_plot)


def run_list(args: argparse.Namespace) -> int:
    """Print the table of runs (or JSON)."""
    from incasem.tracking.runs import format_table, list_database_runs, list_runs

    records = list_database_runs(args.mongodb) if args.mongodb else list_runs(args.runs_dir)
    if args.kind:
        records = [r for r in records if r.kind == args.kind]
    if args.json:
        fields = ("id", "name", "kind", "status", "start", "iterations", "best_f1")
        rows = [
            {**{f: getattr(r, f) for f in fields}, "best_iteration": r.best_iteration,
             "class_f1": r.class_f1, "data": r.data, "path": str(r.path)}
            for r in records
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
    elif records:
        print(format_table(records))
    else:
        print(f"no runs in {args.mongodb or args.runs_dir}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one run."""
    from incasem.tracking.runs import find_run, format_run

    record = find_run(args.runs_dir, args.run_id)
    print(format_run(record))
    if args.config:
        print(json.dumps(record.config, indent=2))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """Write the training-curve PNG of a run (with the runs that continued it)."""
    from incasem.tracking.runs import find_run, training_history
    from incasem.viz.curves import plot_training_curves

    record = find_run(args.runs_dir, args.run_id)
    if record.kind != "training":
        raise IncasemError(f"run {record.id} is a prediction; its report PNGs are in {record.path}")
    out = Path(args.out or f"run_{record.id}_curves.png")
    if out.exists() and not args.overwrite:
        raise IncasemError(f"{out} already exists; pass --overwrite to replace it")
    history = training_history(args.runs_dir, record)
    curves = {name: (c.steps, c.values) for name, c in history.items()}
    if "loss" not in curves and not any(n.startswith("validation/") for n in curves):
        raise IncasemError(f"{record.path}/metrics.json: no loss or validation logged yet")
    title = f"run {record.id} {record.name}".strip()
    print(plot_training_curves(curves, out, title))
    return 0
