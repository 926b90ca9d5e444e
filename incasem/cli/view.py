"""``incasem view``: look at datasets of a container in a local neuroglancer viewer.

See `incasem.viz.neuroglancer` for how layers are built and served. The viewer lives as long
as this command runs; ``--screenshot`` renders one PNG headless and exits.
"""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incasem view``."""
    parser = subparsers.add_parser(
        "view",
        help="show datasets in a local neuroglancer viewer (127.0.0.1), or save a screenshot",
        description="Serve datasets of a zarr container to neuroglancer from this process and "
        "print the viewer URL. Raw and probabilities become image layers; labels, "
        "segmentations and instances segmentation layers. Positions are in nm (z y x).",
    )
    parser.add_argument("container", help="zarr container")
    parser.add_argument(
        "-d", "--datasets", nargs="+", required=True, metavar="DATASET",
        help="datasets to show, e.g. volumes/raw volumes/labels/mito",
    )  # fmt: skip
    parser.add_argument("--rois", help="data config JSON: draw its entries' ROIs as boxes")
    parser.add_argument(
        "--data_root", "--data-root", dest="data_root",
        help="folder that relative files in --rois are joined to (default: its folder)",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=0, help="server port (default: any free)")
    parser.add_argument(
        "--bind", default="127.0.0.1",
        help="server address (default 127.0.0.1; anything else exposes the data)",
    )  # fmt: skip
    parser.add_argument("--screenshot", metavar="PNG", help="save a headless screenshot, exit")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(1200, 900), metavar=("W", "H"),
        help="screenshot size in pixels",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the viewer; print its URL; serve until interrupted (or take the screenshot)."""
    from pathlib import Path

    from incasem.errors import IncasemError
    from incasem.viz.neuroglancer import build_viewer, screenshot

    if args.screenshot and Path(args.screenshot).exists() and not args.overwrite:
        raise IncasemError(f"{args.screenshot} already exists; pass --overwrite to replace it")
    viewer = build_viewer(
        args.container,
        args.datasets,
        rois=args.rois,
        data_root=args.data_root,
        bind_address=args.bind,
        port=args.port,
    )
    if args.screenshot:
        print(screenshot(viewer, args.screenshot, tuple(args.size)))
        return 0
    print(viewer.get_viewer_url(), flush=True)
    print("serving; press Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
