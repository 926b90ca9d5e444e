"""``incasem export``: one self-describing model file from a checkpoint or original ASEM weights.

See `incasem.torch.export` for what the file holds and why it keeps the checkpoint layout.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem export``."""
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint (or original ASEM weights) as one self-describing model file",
        description="Export a training checkpoint, or wrap original ASEM weights (--asem), into "
        "a model file that 'incasem predict --checkpoint' reads. Voxel sizes in nm (z y x).",
    )
    parser.add_argument("checkpoint", help="checkpoint .pt (or the ASEM weights with --asem)")
    parser.add_argument("-o", "--out", required=True, help="model file to write (.pt)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--description", default="", help="free text stored in the file")
    asem = parser.add_argument_group("original ASEM weights")
    asem.add_argument("--asem", action="store_true", help="CHECKPOINT is original ASEM weights")
    asem.add_argument(
        "--model-id", "--model_id", dest="model_id", type=int,
        help="published model id (1847, 1837, 1841, 1675, 1669, 1986, 2000)",
    )  # fmt: skip
    asem.add_argument("--organelle", help="class name of channel 1 (default: from --model-id)")
    asem.add_argument(
        "--voxel-size", "--voxel_size", dest="voxel_size", type=int, nargs=3,
        metavar=("Z", "Y", "X"), help="nm the model was trained at (default: from --model-id)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print the written file's description."""
    from incasem.torch.export import describe_model, export_model, format_models, import_asem

    if args.asem:
        out = import_asem(
            args.checkpoint,
            args.out,
            model_id=args.model_id,
            organelle=args.organelle,
            voxel_size=args.voxel_size,
            overwrite=args.overwrite,
        )
    else:
        out = export_model(args.checkpoint, args.out, args.overwrite, args.description)
    print(format_models([describe_model(out)], out.parent))
    return 0
