"""``incasem validate``: check a data config against the data on disk before any work."""

from __future__ import annotations

import argparse
import sys

from incasem.io.data_config import DataConfigError, load_data_config, validate_against_data
from incasem.predict.truth import EntryTruth


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
    num_classes = args.num_classes or 1 + max(
        (c for entry in config for c in entry.labels.values()), default=0
    )
    empty = []
    for entry in config:
        labels = ", ".join(f"{d} -> {c}" for d, c in entry.labels.items()) or "none"
        print(f"{entry.name}: {entry.file} ROI {entry.roi_voxels} (voxels) labels: {labels}")
        counts = EntryTruth(entry, args.data_root).class_counts(entry.roi, max(num_classes, 1))
        known = counts.sum()
        shares = ", ".join(
            f"class {c} {n} ({100 * n / max(known, 1):.1f} %)" for c, n in enumerate(counts)
        )
        print(f"  voxels inside ROI and mask: {shares}")
        for c in range(1, num_classes):
            if counts[c] == 0:
                print(f"  {entry.name}: no voxel of class {c}")
        empty += [c for c in range(1, num_classes) if counts[c] == 0]
    missing = sorted(c for c in set(empty) if empty.count(c) == len(config))
    for c in missing:
        print(f"warning: class {c} has no voxel in any entry; training would refuse this config")
    print(f"{args.config}: {len(config)} entries OK" + (" (with warnings)" if missing else ""))
    return 0
