"""``incasem board``: Omniboard, the Sacred dashboard, on 127.0.0.1 for runs in MongoDB.

Training and prediction runs started with ``--mongodb URL`` are recorded there; see
`incasem.tracking.omniboard`.
"""

from __future__ import annotations

import argparse
import signal


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem board``."""
    parser = subparsers.add_parser(
        "board",
        help="browse the runs recorded with --mongodb in Omniboard (127.0.0.1)",
        description="Start Omniboard (npm package 'omniboard') on 127.0.0.1 for the MongoDB "
        "database that runs were recorded in with --mongodb, with columns for the training "
        "loss and the best validation F1, IoU and threshold. Serves until interrupted.",
    )
    parser.add_argument(
        "--mongodb", required=True, help="the runs' database: mongodb://HOST[:PORT][/DATABASE]"
    )
    parser.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1 (9000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start Omniboard, print its address, serve until interrupted."""
    from incasem.tracking.omniboard import start_omniboard

    process = start_omniboard(args.mongodb, args.port)
    print(f"Omniboard: http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    # Omniboard runs in a session of its own: a terminated board (a scheduler, a test, `kill`)
    # must stop it as Ctrl-C does, or it would keep serving with nobody to stop it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
