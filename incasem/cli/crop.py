"""``incasem crop``: copy a box of some datasets into another container, keeping positions."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "crop",
        help="copy a box of datasets into another container (world positions kept)",
        description="Copy the box --offset/--shape of each dataset into a container of its own, "
        "under the same dataset names. The box is given like a data config ROI: in voxels of "
        "the first dataset (offset = world position in nm / voxel size), axis order z y x. "
        "Crops keep their world offset (nm), so they line up with the source and with each "
        "other; parts of the box outside a dataset are filled with zeros.",
    )
    parser.add_argument("container", help="source .zarr (or .n5) container")
    parser.add_argument(
        "-d", "--dataset", nargs="+", required=True, help="datasets to crop (same box for all)"
    )
    parser.add_argument("-o", "--output", required=True, help="zarr container to write to")
    parser.add_argument(
        "--offset",
        type=int,
        nargs=3,
        required=True,
        metavar=("Z", "Y", "X"),
        help="box start in voxels (z y x)",
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        required=True,
        metavar=("Z", "Y", "X"),
        help="box size in voxels (z y x)",
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.prepare.crop import crop

    for path in crop(
        args.container,
        args.dataset,
        args.output,
        offset=args.offset,
        shape=args.shape,
        num_workers=args.workers,
        overwrite=args.overwrite,
    ):
        print(f"wrote {path}")
    return 0
