"""``incasem phantom``: write the synthetic FIB-SEM cell used by the demo and the tests."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="generate a synthetic FIB-SEM cell with one label dataset per organelle",
        description="Generate a deterministic synthetic FIB-SEM cell (uint8 raw at "
        "'volumes/raw', binary labels at 'volumes/labels/<organelle>' for mitochondria, ER, "
        "Golgi, vesicles, nucleus, nuclear pores and plasma membrane, and a cell mask at "
        "'volumes/mask') in a new zarr container.",
    )
    parser.add_argument("--out", required=True, help="zarr container to create")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=[256, 256, 256],
        metavar=("Z", "Y", "X"),
        help="volume shape in voxels (default: 256 256 256)",
    )
    parser.add_argument(
        "--voxel-size",
        type=int,
        nargs=3,
        default=[5, 5, 5],
        metavar=("Z", "Y", "X"),
        help="voxel size in nm (default: 5 5 5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing container")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.phantom import write_cell

    fractions = write_cell(
        args.out,
        shape=tuple(args.shape),
        voxel_size=tuple(args.voxel_size),
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.out}: raw {tuple(args.shape)} voxels at {tuple(args.voxel_size)} nm")
    for name, fraction in fractions.items():
        print(f"  volumes/labels/{name}: {100 * fraction:.2f} % of voxels")
    return 0
