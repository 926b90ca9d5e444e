"""``incasem models list``: what the model files in a folder are, from their own descriptions."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem models``."""
    parser = subparsers.add_parser(
        "models",
        help="list model files (exported models, checkpoints, ASEM weights) in a folder",
        description="Describe every .pt/.pth file under a folder without running it.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per model file")
    listing.add_argument("folder", nargs="?", default="models", help="folder (default: models)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    """Print the models table (or JSON)."""
    from dataclasses import asdict

    from incasem.torch.export import format_models, list_models

    infos = list_models(args.folder)
    if args.json:
        rows = [
            {
                "path": str(i.path),
                "kind": i.kind,
                "card": asdict(i.card) if i.card else None,
                "export": i.export,
                "size_bytes": i.size_bytes,
                "problem": i.problem,
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2, default=str))
    elif infos:
        print(format_models(infos, args.folder))
    else:
        print(f"no model files (.pt, .pth) in {args.folder}")
    return 0
