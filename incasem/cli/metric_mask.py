"""``incasem metric-mask``: exclusion zones around object boundaries, ignored by the metrics."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments
from incasem.errors import IncasemError

# The numbers of incasem.prepare.masks.EXCLUSION_DEFAULTS, spelled out so that `--help` does not
# import the data stack; tests/prepare check that the two agree.
_DEFAULTS_HELP = (
    "mito 20/20, golgi 10/10, er 10/10, nuclear_pores 5/5, coated_pits 10/10, membrane 0/5"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metric-mask",
        help="metric mask: 0 within a few nm of object boundaries, 255 elsewhere",
        description="Write a 0/255 uint8 metric mask for a label dataset (nonzero = object): "
        "voxels within a band inside (--exclude-inwards-nm) and outside (--exclude-outwards-nm) "
        "an object boundary get 0 and are ignored by the metrics. Widths are city-block "
        "distances in nm (|dz| vz + |dy| vy + |dx| vx), so anisotropic data excludes the same "
        "distance in the cell as isotropic data; --exclude-inwards/--exclude-outwards give "
        "whole voxel steps instead. The volume's faces are not boundaries. Defaults per "
        f"--organelle (inwards/outwards, nm): {_DEFAULTS_HELP}. Axis order z y x.",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument(
        "-d", "--dataset", required=True, help="label dataset, e.g. volumes/labels/mito"
    )
    parser.add_argument(
        "--organelle",
        help="organelle whose default widths to use (mito, golgi, er, nuclear_pores, "
        "coated_pits, membrane); also names the default output",
    )
    parser.add_argument("--exclude-inwards-nm", type=float, help="band width inside objects, nm")
    parser.add_argument("--exclude-outwards-nm", type=float, help="band width outside objects, nm")
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

    voxels = (args.exclude_inwards, args.exclude_outwards)
    nm = (args.exclude_inwards_nm, args.exclude_outwards_nm)
    if any(v is not None for v in voxels) and any(v is not None for v in nm):
        raise IncasemError("give the widths in nm or in voxels, not both")
    units = "voxels" if any(v is not None for v in voxels) else "nm"
    inwards, outwards = voxels if units == "voxels" else nm
    if args.organelle is not None:
        if args.organelle not in EXCLUSION_DEFAULTS:
            raise IncasemError(
                f"--organelle {args.organelle!r}: no defaults; choose one of "
                f"{', '.join(EXCLUSION_DEFAULTS)} or give --exclude-inwards-nm/"
                "--exclude-outwards-nm"
            )
        if units == "voxels" and None in voxels:
            raise IncasemError("with --organelle, give both voxel widths or nm widths")
        default_in, default_out = EXCLUSION_DEFAULTS[args.organelle]
        inwards = default_in if inwards is None else inwards
        outwards = default_out if outwards is None else outwards
    if inwards is None or outwards is None:
        raise IncasemError(
            "give --organelle or both --exclude-inwards-nm and --exclude-outwards-nm (or both "
            "--exclude-inwards and --exclude-outwards in voxels)"
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
        units=units,
    )
    print(f"wrote {path} (excluding {inwards:g} {units} inwards, {outwards:g} {units} outwards)")
    return 0
