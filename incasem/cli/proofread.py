"""``incasem proofread``: rank a prediction's blocks by uncertainty, correct one in napari."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "proofread",
        help="rank a prediction's blocks by uncertainty; correct one in the painter",
        description="Score every block of a foreground probability map by the mean of "
        "H(p)*p (H: binary entropy in bits; uncertain where the model half-sees the organelle) "
        "and list the --top blocks, most uncertain first, as ROIs in voxels (z y x). With "
        "--open RANK, napari opens that block with the prediction (at its recorded threshold) "
        "as labels to correct; 'Save corrections' writes them (-o, uint8 0/1 over the block) "
        "and a mask, and adds the block's data-config entry to --entries, ready for "
        "fine-tuning with scripts/train.py --start_from. --open needs the gui extra.",
    )
    parser.add_argument("container", help="the .zarr container with the prediction and raw")
    parser.add_argument(
        "-p", "--probabilities", required=True,
        help="foreground probabilities, e.g. volumes/predictions/model/predict_3/class_1",
    )  # fmt: skip
    parser.add_argument(
        "--block-size", type=int, nargs=3, default=[64, 64, 64], metavar=("Z", "Y", "X"),
        help="block shape in voxels (default: 64 64 64)",
    )  # fmt: skip
    parser.add_argument("--top", type=int, default=10, help="blocks to list (default: 10)")
    parser.add_argument("--threshold", type=float, help="default: the prediction's recorded one")
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    correct = parser.add_argument_group("correct a block (--open)")
    correct.add_argument("--open", type=int, metavar="RANK", help="open this block in napari")
    correct.add_argument("--raw", default="volumes/raw", help="raw dataset (default: volumes/raw)")
    correct.add_argument(
        "-o", "--output", help="label dataset for the corrections (default: "
        "volumes/labels/proofread_<z>_<y>_<x>, the block's offset)",
    )  # fmt: skip
    correct.add_argument("--entries", help="data-config JSON to add the block's entry to")
    correct.add_argument(
        "--overwrite", action="store_true", help="replace existing correction datasets"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.errors import IncasemError
    from incasem.postprocess.proofread import rank_blocks
    from incasem.postprocess.sources import DatasetRef, check_threshold

    if args.threshold is not None:
        check_threshold(args.threshold)
    if args.top < 1:
        raise IncasemError(f"--top {args.top} must be >= 1")
    top = max(args.top, args.open or 0)
    ref = DatasetRef(args.container, args.probabilities.strip("/"))
    blocks, threshold = rank_blocks(ref, args.block_size, top, args.threshold, args.progress)
    if args.json:
        print(json.dumps({"threshold": threshold, "blocks": [b.as_dict() for b in blocks]}))
    else:
        print(f"{'rank':>4}  {'block (voxels, z y x)':<36} {'score':>7} {'foreground':>10}")
        for b in blocks[: args.top]:
            print(f"{b.rank:>4}  {b.roi_text():<36} {b.score:7.4f} {100 * b.foreground:9.1f}%")
    if args.open is None:
        return 0
    if not 1 <= args.open <= len(blocks):
        raise IncasemError(f"--open {args.open}: the ranking has {len(blocks)} blocks")
    return _open(args, blocks[args.open - 1], threshold)


def _open(args: argparse.Namespace, block, threshold: float) -> int:
    from incasem.annotate.paint import import_napari, open_corrector

    napari = import_napari()
    output = args.output or "volumes/labels/proofread_{}_{}_{}".format(*block.offset)
    open_corrector(
        args.container, args.raw, args.probabilities, block.offset, block.shape, output,
        entries=args.entries, threshold=threshold, overwrite=args.overwrite,
    )  # fmt: skip
    where = f"{args.container}/{output}"
    print(f"correcting block {block.rank} {block.roi_text()}: saves go to {where}")
    napari.run()
    return 0
