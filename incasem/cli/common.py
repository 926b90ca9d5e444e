"""Command-line arguments shared by several ``incasem`` commands."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--overwrite``, shared by every blockwise command."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: 1; 0 runs every block in this process, for debugging); "
        "each holds about one block in memory",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (the old one is kept until the new one is complete)",
    )
