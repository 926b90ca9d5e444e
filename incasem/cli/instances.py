"""``incasem instances``: connected components over the whole volume into a uint64 dataset."""

from __future__ import annotations

import argparse

from incasem.cli.segment import DATASET_HELP, add_postprocess_arguments, binary_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "instances",
        help="connected components (consistent ids across blocks), size filter",
        description="Label the 6-connected objects of a probability map (p >= --threshold) or of "
        "a label dataset (nonzero, or == --class-id) inside every --mask into a uint64 dataset: "
        "objects get ids 1..N in the z, y, x raster order of their first voxel, exactly as "
        "scipy.ndimage.label on the whole volume, also for objects crossing block faces. "
        "--min-size/--max-size drop objects by size (--size-unit voxels or nm3); --split-depth "
        "splits touching objects (new ids after N). " + DATASET_HELP + ".",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument("-d", "--dataset", required=True, help="probability or label dataset")
    parser.add_argument("--out-dataset", required=True, help="uint64 instance dataset")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--threshold",
        type=float,
        help="the dataset holds probabilities; foreground is p >= this (in [0, 1]); default for "
        "a prediction's probabilities: the threshold it recorded (the model's calibrated one)",
    )
    how.add_argument(
        "--class-id", type=int, help="the dataset holds labels; foreground is == this id"
    )
    parser.add_argument("--min-size", type=float, help="drop objects smaller than this")
    parser.add_argument("--max-size", type=float, help="drop objects larger than this")
    parser.add_argument(
        "--size-unit",
        choices=("voxels", "nm3"),
        default="voxels",
        help="unit of --min-size/--max-size (default: voxels)",
    )
    parser.add_argument(
        "--split-depth",
        type=float,
        metavar="NM",
        help="split touching objects (seeded watershed of each object's distance transform) "
        "where the neck is at least NM nm thinner in radius than both parts",
    )
    parser.add_argument(
        "--split-max-voxels",
        type=int,
        default=512**3 // 2,
        help="objects with a larger bounding box are not split (default: 67108864)",
    )
    add_postprocess_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.postprocess.components import connected_components

    result = connected_components(
        binary_source(args, class_id=args.class_id),
        args.container,
        args.out_dataset,
        min_size=args.min_size,
        max_size=args.max_size,
        size_unit=args.size_unit,
        split_depth_nm=args.split_depth,
        split_max_voxels=args.split_max_voxels,
        block_edge=args.block_size,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(
        f"wrote {result.dataset}: {result.num_objects} objects"
        + (f" ({result.removed} removed by the size filter)" if result.removed else "")
        + (f"; {result.too_large_to_split} too large to split" if result.too_large_to_split else "")
    )
    return 0
