"""``incasem validate``: check a data config against the data on disk before any work."""

from __future__ import annotations

import argparse
import sys

from incasem.io.data_config import DataConfigError, load_data_config, validate_against_data


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a data config (JSON) against the datasets on disk",
        description="Check one or more data configs: JSON syntax, keys and types, that each "
        "container and dataset exists, that each ROI (offset/shape in voxels, z y x) lies "
        "inside every dataset, that voxel sizes (nm) agree and that class ids fit the model. "
        "Prints every problem, one per line, and exits 1 if there is any.",
    )
    parser.add_argument("config", help="data config JSON; several as a comma-separated list")
    parser.add_argument(
        "--data-root", help="directory that relative 'file' paths are joined to (default: cwd)"
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        help="number of classes of the model, background included (class ids must be smaller)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_data_config(args.config, data_root=args.data_root)
        validate_against_data(config, num_classes=args.num_classes)
    except DataConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found in {args.config}", file=sys.stderr)
        return 1
    for entry in config:
        labels = ", ".join(f"{d} -> {c}" for d, c in entry.labels.items()) or "none"
        print(f"{entry.name}: {entry.file} ROI {entry.roi_voxels} (voxels) labels: {labels}")
    print(f"{args.config}: {len(config)} entries OK")
    return 0
