"""Entry point of the ``incasem`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func(args)`` does the work. Commands are listed here explicitly (not discovered), and
command modules import their heavy dependencies (torch, gunpowder, matplotlib) inside ``run``, so
that ``incasem --help`` starts fast and one command's import problem cannot break the others.

User errors (`IncasemError`) are printed as one line on stderr with exit code 2; everything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from incasem import __version__
from incasem.errors import INTERRUPTED_EXIT_CODE, IncasemError, interruption_line
from incasem.launch import worker_command_scope

_COMMANDS = (
    "incasem.cli.validate",
    "incasem.cli.plan",
    "incasem.cli.phantom",
    "incasem.cli.plot_slice",
    "incasem.cli.convert",
    "incasem.cli.equalize",
    "incasem.cli.mask",
    "incasem.cli.metric_mask",
    "incasem.cli.pyramid",
    "incasem.cli.crop",
    "incasem.cli.relabel",
    "incasem.cli.train",
    "incasem.cli.predict",
    "incasem.cli.segment",
    "incasem.cli.evaluate",
    "incasem.cli.instances",
    "incasem.cli.measure",
    "incasem.cli.merge",
    "incasem.cli.runs",
    "incasem.cli.board",
    "incasem.cli.view",
    "incasem.cli.export",
    "incasem.cli.models",
    "incasem.cli.annotate",
    "incasem.cli.proofread",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="incasem",
        description="Organelle segmentation in FIB-SEM volumes (ASEM). "
        "Sizes are in voxels and world positions in nm, axis order z, y, x.",
    )
    parser.add_argument("--version", action="version", version=f"incasem {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``incasem`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if argv is None and args.command == "train":  # see incasem.training.allocator
            from incasem.training.allocator import exec_with_allocator_settings

            exec_with_allocator_settings()
        with worker_command_scope(getattr(args, "worker_command", None)):
            return int(args.func(args) or 0)
    except IncasemError as e:
        print(f"incasem {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C: one line, no traceback
        print(f"incasem {args.command}: {interruption_line(e)}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
