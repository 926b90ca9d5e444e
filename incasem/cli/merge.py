"""``incasem merge``: one label per voxel from several single-organelle probability maps."""

from __future__ import annotations

import argparse
import json

from incasem.cli.segment import DATASET_HELP, add_postprocess_arguments
from incasem.errors import IncasemError


def _named(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge single-organelle predictions into one label volume",
        description="Give every voxel at most one class: among the --input probability maps "
        "whose p >= their --threshold, the highest p wins (ties: the input given first), or the "
        "first in --priority. Labels are 1.. in --input order (0: none). Inputs on different "
        "voxel grids of one volume are resampled by nearest neighbour to the finest grid (voxel "
        "sizes must be whole multiples of it); the output covers the intersection of their "
        "ROIs. Reports voxels claimed by several classes per pair. " + DATASET_HELP + ".",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument(
        "--input",
        type=_named,
        action="append",
        required=True,
        metavar="NAME=DATASET",
        help="one class's probability map (repeat for each class)",
    )
    parser.add_argument("--out-dataset", required=True, help="uint8 label dataset to write")
    parser.add_argument(
        "--threshold",
        type=_named,
        action="append",
        default=[],
        metavar="NAME=T",
        help="probability a class needs (default: --default-threshold)",
    )
    parser.add_argument("--default-threshold", type=float, default=0.5, help="default: 0.5")
    parser.add_argument(
        "--priority", help="comma-separated class names, most important first (all classes)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    add_postprocess_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.atomic import check_new_file, write_json
    from incasem.postprocess.merge import MergeInput, merge
    from incasem.postprocess.sources import parse_dataset

    names = [name for name, _ in args.input]
    thresholds: dict[str, float] = {}
    for name, value in args.threshold:
        if name not in names:
            raise IncasemError(f"--threshold {name}={value}: no --input named '{name}'")
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise IncasemError(f"--threshold {name}={value}: not a number") from None
    if args.json:
        check_new_file(args.json, args.overwrite)
    report = merge(
        [
            MergeInput(
                name,
                parse_dataset(dataset, args.container),
                thresholds.get(name, args.default_threshold),
            )
            for name, dataset in args.input
        ],  # fmt: skip
        args.container,
        args.out_dataset,
        priority=args.priority.split(",") if args.priority else None,
        masks=tuple(parse_dataset(m, args.container) for m in args.mask),
        block_edge=args.block_size,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {report['output']} ({report['rule']})")
    for name, count in report["assigned_voxels"].items():
        print(f"  {name}: {count} voxels")
    print(f"contested voxels: {report['contested_voxels']}")
    for pair, count in report["contested_pairs"].items():
        print(f"  {pair}: {count}")
    if args.json:
        print(f"wrote {write_json(args.json, report, args.overwrite)}")
    else:
        print(json.dumps({"contested_pairs": report["contested_pairs"]}))
    return 0
