"""``incasem relabel``: binarize a label dataset or map its ids, into a new dataset."""

from __future__ import annotations

import argparse

from incasem.cli.common import add_run_arguments
from incasem.errors import IncasemError


def _pair(text: str) -> tuple[int, int]:
    old, sep, new = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(old), int(new)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not OLD:NEW (two integers)") from None


def _others(text: str) -> int | None:
    if text == "keep":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'keep' nor an integer") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relabel",
        help="binarize a label dataset or map its ids (e.g. COSEM classes -> one organelle)",
        description="Write a relabelled copy of an integer label dataset with the same ROI, "
        "voxel size and chunks: --binarize sets every nonzero voxel to VALUE (default 1); --map "
        "sends each OLD id to NEW and every other id to --others (default 0; 'keep' leaves them). "
        "The output dtype is the smallest that holds the values written unless --dtype is given. "
        "Axis order z y x.",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument("-d", "--dataset", required=True, help="label dataset")
    parser.add_argument("--out-dataset", required=True, help="output dataset")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--binarize",
        type=int,
        nargs="?",
        const=1,
        metavar="VALUE",
        help="nonzero -> VALUE (default 1), zero stays 0",
    )
    how.add_argument(
        "--map", type=_pair, nargs="+", metavar="OLD:NEW", help="id mapping, e.g. 3:1 4:1"
    )
    parser.add_argument(
        "--others",
        type=_others,
        default=0,
        help="value for ids not in --map, or 'keep' (default: 0)",
    )
    parser.add_argument("--dtype", help="output dtype (e.g. uint8, uint32)")
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.prepare.relabel import relabel

    mapping = None
    if args.map is not None:
        mapping = dict(args.map)
        if len(mapping) != len(args.map):
            raise IncasemError("--map names an OLD id twice")
    path = relabel(
        args.container,
        args.dataset,
        args.out_dataset,
        mapping=mapping,
        binarize=args.binarize,
        others=args.others,
        dtype=args.dtype,
        num_workers=args.workers,
        overwrite=args.overwrite,
    )
    print(f"wrote {path}")
    return 0
