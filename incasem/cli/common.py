"""Command-line arguments shared by several ``incasem`` commands."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--worker-command`` and ``--overwrite``, shared by every blockwise
    command (`incasem.cli.main` applies ``--worker-command`` to the whole command)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: 1; 0 runs every block in this process, for debugging); "
        "each holds about one block in memory",
    )
    parser.add_argument(
        "--worker-command",
        metavar="TEMPLATE",
        help="start each worker through this shell command, {command} standing for the "
        'worker\'s own, e.g. "srun --mem=8G {command}" (default: local processes)',
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (the old one is kept until the new one is complete)",
    )


def add_roi_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--roi Z Y X DZ DY DX``: a box in voxels, offset (world nm / voxel size) and shape,
    z, y, x; ``default`` says what is used without it."""
    parser.add_argument(
        "--roi",
        type=int,
        nargs=6,
        metavar=("Z", "Y", "X", "DZ", "DY", "DX"),
        help=f"offset and shape in voxels (offset = world nm / voxel size; default: {default})",
    )
