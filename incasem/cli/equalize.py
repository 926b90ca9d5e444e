"""``incasem equalize``: CLAHE of a raw dataset, blockwise and seam-free (the networks' input)."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "equalize",
        help="contrast-limited adaptive histogram equalisation (CLAHE) of a raw dataset",
        description="Equalise a uint8/uint16 raw dataset with 3D CLAHE (scikit-image's "
        "algorithm; the original's kernel of 128 voxels and clip limit 0.02 by default) into a "
        "new uint8 dataset with the same ROI, voxel size and chunks. Runs in two blockwise "
        "passes (tile histograms, then per-voxel interpolation), so the result has no block "
        "seams and does not depend on --workers. Sizes are in voxels, axis order z y x.",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument("-d", "--dataset", default="volumes/raw", help="raw dataset")
    parser.add_argument(
        "--out-dataset",
        help="output dataset (default: <dataset>_equalized_<clip limit>, e.g. "
        "volumes/raw_equalized_0.02)",
    )
    parser.add_argument(
        "--kernel-size",
        type=int,
        nargs="+",
        default=[128],
        metavar="VOXELS",
        help="CLAHE tile edge in voxels: one number or z y x (default: 128)",
    )
    parser.add_argument(
        "--clip-limit",
        type=float,
        default=0.02,
        help="normalised clip limit in [0, 1], higher = more contrast (default: 0.02)",
    )
    parser.add_argument("--bins", type=int, default=256, help="histogram bins (default: 256)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.prepare.equalize import equalize

    kernel = args.kernel_size[0] if len(args.kernel_size) == 1 else args.kernel_size
    path = equalize(
        args.container,
        args.dataset,
        out_dataset=args.out_dataset,
        kernel_size=kernel,
        clip_limit=args.clip_limit,
        nbins=args.bins,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {path}")
    return 0
