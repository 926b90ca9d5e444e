"""``incasem plot-slice``: a PNG of one section with label outlines overlaid."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot-slice",
        help="write a PNG of one z section with label outlines",
        description="Write a PNG of one z section (index in voxels) of a raw dataset, with the "
        "outline of each given label dataset overlaid in its own colour.",
    )
    parser.add_argument("file", help="zarr container")
    parser.add_argument("--raw", default="volumes/raw", help="raw dataset (default: volumes/raw)")
    parser.add_argument("--labels", nargs="*", default=[], help="label datasets to outline")
    parser.add_argument("--z", type=int, help="section index in voxels (default: middle)")
    parser.add_argument("--probabilities", help="probability dataset to show in its own panel")
    parser.add_argument("-o", "--out", required=True, help="PNG file to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.viz.slices import plot_slice

    path = plot_slice(
        args.file, args.raw, args.labels, args.out, z=args.z, probabilities=args.probabilities
    )
    print(f"wrote {path}")
    return 0
