"""``incasem train``: the training command, the same as ``python scripts/train.py``.

Same flags, same ``with`` clause (YAML or JSON config files, ``key=value`` updates), same Sacred
run under ``directories.runs``; see `incasem.training.cli`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem train``."""
    from incasem.training.arguments import DESCRIPTION, add_arguments

    parser = subparsers.add_parser(
        "train",
        help="train a 3D U-Net (a Sacred run, as scripts/train.py)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train as ``scripts/train.py`` does; returns its exit code."""
    from incasem.training.cli import run_arguments

    return run_arguments(args, "incasem train")
