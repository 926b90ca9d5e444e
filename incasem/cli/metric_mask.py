"""``incasem metric-mask``: exclusion zones around object boundaries, ignored by the metrics."""

from __future__ import annotations

import argparse

from incasem.cli.convert import add_run_arguments
from incasem.errors import IncasemError

# The numbers of incasem.prepare.masks.EXCLUSION_DEFAULTS, spelled out so that `--help` does not
# import the data stack; tests/prepare check that the two agree.
_DEFAULTS_HELP = "mito 4/4, golgi 2/2, er 2/2, nuclear_pores 1/1, coated_pits 2/2"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metric-mask",
        help="metric mask: 0 within a few voxels of object boundaries, 255 elsewhere",
        description="Write a 0/255 uint8 metric mask for a label dataset (nonzero = object): "
        "voxels within --exclude-inwards voxels inside or --exclude-outwards voxels outside an "
        "object boundary (city-block distance, 6-connected) get 0 and are ignored by the "
        "metrics. The volume's faces are not boundaries. Defaults per --organelle "
        f"(inwards/outwards, voxels): {_DEFAULTS_HELP}. Axis order z y x.",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument(
        "-d", "--dataset", required=True, help="label dataset, e.g. volumes/labels/mito"
    )
    parser.add_argument(
        "--organelle",
        help="organelle whose default widths to use (mito, golgi, er, nuclear_pores, "
        "coated_pits); also names the default output",
    )
    parser.add_argument("--exclude-inwards", type=int, help="band width inside objects, voxels")
    parser.add_argument("--exclude-outwards", type=int, help="band width outside objects, voxels")
    parser.add_argument(
        "--out-dataset",
        help="output dataset (default: volumes/metric_masks/<organelle or label dataset name>)",
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.prepare.masks import EXCLUSION_DEFAULTS, create_metric_mask

    inwards, outwards = args.exclude_inwards, args.exclude_outwards
    if args.organelle is not None:
        if args.organelle not in EXCLUSION_DEFAULTS:
            raise IncasemError(
                f"--organelle {args.organelle!r}: no defaults; choose one of "
                f"{', '.join(EXCLUSION_DEFAULTS)} or give --exclude-inwards/--exclude-outwards"
            )
        default_in, default_out = EXCLUSION_DEFAULTS[args.organelle]
        inwards = default_in if inwards is None else inwards
        outwards = default_out if outwards is None else outwards
    if inwards is None or outwards is None:
        raise IncasemError(
            "give --organelle or both --exclude-inwards and --exclude-outwards (voxels)"
        )
    name = args.organelle or args.dataset.rstrip("/").rsplit("/", 1)[-1]
    path = create_metric_mask(
        args.container,
        args.dataset,
        args.out_dataset or f"volumes/metric_masks/{name}",
        inwards=inwards,
        outwards=outwards,
        num_workers=args.workers,
        overwrite=args.overwrite,
    )
    print(f"wrote {path} (excluding {inwards} voxels inwards, {outwards} outwards)")
    return 0
