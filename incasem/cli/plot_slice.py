"""``incasem plot-slice``: a PNG of one section with label outlines overlaid."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot-slice",
        help="write a PNG of one z section with label outlines",
        description="Write a PNG of one z section of a raw dataset, with the outline of each "
        "given label dataset overlaid in its own colour. Positions are world voxels (world nm / "
        "voxel size, z y x), as in data configs: a crop keeps the section numbers of its cell.",
    )
    parser.add_argument("file", help="zarr container")
    parser.add_argument("--raw", default="volumes/raw", help="raw dataset (default: volumes/raw)")
    parser.add_argument("--labels", nargs="*", default=[], help="label datasets to outline")
    parser.add_argument(
        "--z", type=int, help="world section index in voxels (default: the middle of --roi)"
    )
    parser.add_argument(
        "--roi", type=int, nargs=6, metavar=("Z", "Y", "X", "DZ", "DY", "DX"),
        help="world offset and shape in voxels of the part to draw (default: the whole raw)",
    )  # fmt: skip
    parser.add_argument("--probabilities", help="probability dataset to show in its own panel")
    parser.add_argument("-o", "--out", required=True, help="PNG file to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.io.arrays import open_array
    from incasem.io.roi import roi_from_voxels
    from incasem.viz.slices import plot_slice

    roi = None
    if args.roi:
        voxel_size = open_array(args.file, args.raw).voxel_size
        roi = roi_from_voxels(args.roi[:3], args.roi[3:], voxel_size)
    path = plot_slice(
        args.file,
        args.raw,
        args.labels,
        args.out,
        z=args.z,
        probabilities=args.probabilities,
        roi=roi,
    )
    print(f"wrote {path}")
    return 0
