"""``incasem pyramid``: downsampled copies of a dataset (<dataset>_s1, _s2, ...)."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pyramid",
        help="scale pyramid: downsampled copies of a dataset",
        description="Write --levels downsampled copies of a dataset as new datasets "
        "<dataset>_s1, <dataset>_s2, ... (each from the previous one; the source stays as it is). "
        "Level i has voxel size (nm) = source voxel size x factors^i and covers the source ROI "
        "shrunk to whole coarse voxels. Raw data is averaged; labels take the most frequent id "
        "(mode) or the maximum. Factors are in voxels, axis order z y x.",
    )
    parser.add_argument("container", help="the .zarr container (levels are written into it)")
    parser.add_argument("-d", "--dataset", required=True, help="full-resolution dataset")
    parser.add_argument(
        "--factors",
        type=int,
        nargs=3,
        default=[2, 2, 2],
        metavar=("Z", "Y", "X"),
        help="downsampling factor per level, voxels (default: 2 2 2)",
    )
    parser.add_argument("--levels", type=int, default=3, help="number of levels (default: 3)")
    parser.add_argument(
        "--method",
        choices=("auto", "mean", "mode", "max"),
        default="auto",
        help="reduction: mean (raw), mode or max (labels); auto = mode for integer datasets "
        "whose path contains 'label' or 'mask' and for 32/64-bit integers, else mean",
    )
    parser.add_argument(
        "--out-prefix", help="level i is written to <prefix>i (default: <dataset>_s)"
    )
    parser.add_argument(
        "--out-container",
        help="write the levels into this .zarr container (created if missing) instead of "
        "the source's, e.g. for a shared or read-only dataset",
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.io import open_array
    from incasem.prepare.pyramid import scale_pyramid

    written = scale_pyramid(
        args.container,
        args.dataset,
        factors=args.factors,
        levels=args.levels,
        method=args.method,
        out_prefix=args.out_prefix,
        out_container=args.out_container,
        num_workers=args.workers,
        overwrite=args.overwrite,
    )
    target = args.out_container or args.container
    for dataset in written:
        array = open_array(target, dataset)
        print(f"wrote {target}/{dataset}: voxel size {list(array.voxel_size)} nm")
    return 0
