"""The flags of the training command, shared by ``scripts/train.py`` and ``incasem train``.

Kept apart from `incasem.training.cli` (which imports torch and gunpowder) so that registering
``incasem train`` costs nothing when another command runs.
"""

from __future__ import annotations

import argparse

#: What the command does, for ``--help`` of ``scripts/train.py`` and ``incasem train``.
DESCRIPTION = (
    "Train a 3D U-Net for one organelle, recorded as a Sacred run. Config: configs/training.yaml "
    "documents every key; override with 'with FILE.yaml|FILE.json key=value ...'. Sizes are "
    "voxels (z, y, x), voxel sizes nm."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training flags and the ``with`` clause to ``parser``."""
    parser.add_argument("--name", help="run name shown in listings")
    parser.add_argument(
        "--start_from",
        "--start-from",
        dest="start_from",
        nargs="+",
        metavar="CHECKPOINT | RUN_ID [ITERATION]",
        help="fine-tune from a checkpoint file, or from run RUN_ID at ITERATION (a number or "
        "best; default: best if the run validated, else its latest checkpoint)",
    )
    parser.add_argument(
        "--continue_run",
        "--continue-run",
        dest="continue_run",
        metavar="RUN_ID",
        help="resume a stopped run at its last checkpoint",
    )
    parser.add_argument("--mongodb", help="also record runs in MongoDB: mongodb://HOST[:PORT][/DB]")
    parser.add_argument(
        "--print_config",
        "--print-config",
        dest="print_config",
        action="store_true",
        help="print the resolved config and exit",
    )
    parser.add_argument(
        "updates", nargs="*", help="'with' followed by YAML/JSON files and key=value updates"
    )
