"""``incasem mask``: cell (foreground) mask of a raw dataset from gray-value bounds."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mask",
        help="cell (foreground) mask from gray-value bounds",
        description="Write a 0/255 uint8 mask of the voxels whose gray value lies strictly "
        "between --min (default: none, so the darkest voxels, e.g. membranes, are kept; the "
        "original's 2 excludes black margins) and --max (default 180, the original's: excludes "
        "bright resin; 256 keeps everything of uint8 data), cleaned by a binary opening (ball, "
        "--opening-radius voxels) and closing (ball, --closing-radius voxels). Blockwise with "
        "enough context that the result equals a single-block run. Radii are in voxels, axis "
        "order z y x. Prints the share of the volume "
        f"kept and warns when more than {100 * WARN_EXCLUDED:.0f} %% is excluded.",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument("-d", "--dataset", default="volumes/raw", help="raw dataset")
    parser.add_argument(
        "--out-dataset", default="volumes/mask", help="output dataset (default: volumes/mask)"
    )
    parser.add_argument(
        "--min",
        type=float,
        default=None,
        help="gray value must exceed this (default: no lower bound; the original used 2)",
    )
    parser.add_argument(
        "--max", type=float, default=180, help="gray value must be below this (default: 180)"
    )
    parser.add_argument(
        "--opening-radius", type=int, default=3, help="opening ball radius, voxels (default: 3)"
    )
    parser.add_argument(
        "--closing-radius", type=int, default=2, help="closing ball radius, voxels (default: 2)"
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.prepare.masks import create_foreground_mask

    path = create_foreground_mask(
        args.container,
        args.dataset,
        out_dataset=args.out_dataset,
        min_value=args.min,
        max_value=args.max,
        opening_radius=args.opening_radius,
        closing_radius=args.closing_radius,
        num_workers=args.workers,
        overwrite=args.overwrite,
    )
    print(f"wrote {path}")
    _report_fraction(args)
    return 0


#: Above this excluded fraction ``mask`` warns: FIB-SEM blocks of a cell have some resin or
#: black margin, but a quarter of the volume in speckles means bounds made for other data.
WARN_EXCLUDED = 0.10


def _report_fraction(args: argparse.Namespace) -> None:
    """Say what share of the volume the mask keeps (from 64 evenly spread 64³ cubes), and warn
    when the bounds exclude more than `WARN_EXCLUDED` of it: the default bounds assume bright
    resin and black margins, which tissue-only blocks do not have."""
    import sys

    from incasem.io.arrays import open_array
    from incasem.io.intensity import sample_histogram

    counts = sample_histogram(open_array(args.container, args.out_dataset), cubes_per_axis=4)
    excluded = float(counts[0]) / max(int(counts.sum()), 1)
    bounds = f"({'-inf' if args.min is None else f'{args.min:g}'}, {args.max:g})"
    print(
        f"{args.out_dataset} keeps {100 * (1 - excluded):.1f} % of the voxels (sampled); it "
        f"excludes gray values outside {bounds} after opening and closing"
    )
    if excluded > WARN_EXCLUDED:
        print(
            f"warning: {args.container}/{args.out_dataset} excludes {100 * excluded:.0f} % of the "
            f"volume: the bounds {bounds} may not suit this data (the default --max assumes "
            "bright resin); look at it with 'incasem plot-slice "
            f"--labels {args.out_dataset}' and set --min/--max from the raw's histogram",
            file=sys.stderr,
        )
