"""``incasem annotate``: ground truth from sparse brush strokes by a graph cut.

``graphcut`` is the annotation itself; ``strokes`` draws simulated strokes from an existing label
(for trying the method, tests and benchmarks). No sub-command needs a GUI.
"""

from __future__ import annotations

import argparse
import json

from incasem.cli.common import add_run_arguments
from incasem.settings import add_flags


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="graph-cut annotation from a few brush strokes",
        description="Fill in a 3D organelle label from sparse seeds (0 unmarked, 1 organelle, "
        "2 background) by a graph cut. Sizes in voxels, axis order z y x.",
    )
    commands = parser.add_subparsers(dest="annotate_command", metavar="STEP", required=True)
    _register_graphcut(commands)
    _register_paint(commands)
    _register_strokes(commands)


def _register_graphcut(commands: argparse._SubParsersAction) -> None:
    cut = commands.add_parser(
        "graphcut",
        help="label an ROI from seeds and print its data-config entry",
        description="Graph cut of an ROI: unary terms from a pixel classifier trained on the "
        "seeded voxels (--model forest; its objects' boundaries re-cut with gray values, "
        "--refine) or from gray-value models fitted to them (--model gmm, histogram), "
        "contrast-sensitive Potts pairwise terms "
        "(--pairwise-weight, --contrast), seeds as hard constraints, max-flow per 128³ block with "
        "--context voxels of overlap; then only objects holding an organelle seed are kept. "
        "Writes a uint8 0/1 label dataset over the ROI and a mask (1 in the ROI) and prints "
        "the data-config entry to paste. Seeds: a dataset in the container, or a folder of 2D "
        "masks named <axis>_<index>.png/.tif (e.g. z_0040.png; index in voxels, each image a "
        "whole plane of the raw dataset, values 0/1/2).",
    )
    cut.add_argument("-f", "--file", required=True, help="the .zarr container (outputs go in it)")
    cut.add_argument("--raw", default="volumes/raw", help="raw dataset (default: volumes/raw)")
    cut.add_argument(
        "--seeds", required=True, help="seeds dataset in --file, or a folder of 2D seed masks"
    )
    cut.add_argument(
        "-o", "--output", required=True, help="label dataset to write, e.g. volumes/labels/golgi"
    )
    cut.add_argument(
        "--mask", help="mask dataset to write (default: volumes/masks/<last name of --output>)"
    )
    add_roi_argument(cut)
    _add_energy_arguments(cut)
    cut.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    add_run_arguments(cut)
    cut.set_defaults(func=run_graphcut)


def _add_energy_arguments(cut: argparse.ArgumentParser) -> None:
    """The energy's options, one per `incasem.annotate.settings.CutSettings` field."""
    add_flags(cut.add_argument_group("energy"), _cut_settings())


def _cut_settings() -> type:
    """`incasem.annotate.settings.CutSettings` (imported when a parser is built)."""
    from incasem.annotate.settings import CutSettings

    return CutSettings


def _register_paint(commands: argparse._SubParsersAction) -> None:
    paint = commands.add_parser(
        "paint",
        help="napari painter: paint seeds on an ROI, save and resume them, segment",
        description="Open napari on an ROI of the raw data with a seeds layer to paint "
        "(1 organelle, 2 background, eraser; brush size and any of the three axes with napari's "
        "own controls), Save seeds (into --seeds in the container, resumed when the painter "
        "opens again) and Segment (saves, runs the graph cut of 'annotate graphcut' on the ROI "
        "with the painted seeds and the lambda in the panel, shows the result as a layer). An "
        "earlier result (--result, or --output if it exists) is shown to refine. Needs the gui "
        'extra: pip install -e ".[gui]".',
    )
    paint.add_argument("container", help="the .zarr container (seeds and outputs go in it)")
    paint.add_argument("--raw", default="volumes/raw", help="raw dataset (default: volumes/raw)")
    paint.add_argument("--seeds", required=True, help="seeds dataset to resume from and save to")
    paint.add_argument(
        "-o", "--output", help="label dataset Segment writes (default: volumes/labels/<seeds name>)"
    )
    paint.add_argument("--result", help="an earlier label dataset to show (default: --output)")
    add_roi_argument(paint)
    add_flags(paint, _cut_settings(), ["model"])
    paint.add_argument(
        "--overwrite", action="store_true", help="let Segment replace an existing --output"
    )
    paint.set_defaults(func=run_paint)


def _register_strokes(commands: argparse._SubParsersAction) -> None:
    strokes = commands.add_parser(
        "strokes",
        help="simulated brush strokes drawn from an existing label (for trying the method)",
        description="Write a seeds dataset (0/1/2) with the 2D skeletons of the eroded label "
        "(organelle, 1) and of the eroded background (2) on --planes evenly spaced planes per "
        "axis, over the label dataset's extent.",
    )
    strokes.add_argument("-f", "--file", required=True, help="the .zarr container")
    strokes.add_argument("--labels", required=True, help="label dataset; nonzero = organelle")
    strokes.add_argument("-o", "--output", required=True, help="seeds dataset to write")
    strokes.add_argument("--planes", type=int, default=3, help="planes per axis (default: 3)")
    strokes.add_argument(
        "--erosion", type=int, default=3, help="distance of strokes from boundaries (default: 3)"
    )
    strokes.add_argument(
        "--overwrite", action="store_true", help="replace an existing seeds dataset"
    )
    strokes.set_defaults(func=run_strokes)


def add_roi_argument(parser: argparse.ArgumentParser) -> None:
    """``--roi Z Y X DZ DY DX``: the annotated box in voxels."""
    parser.add_argument(
        "--roi",
        type=int,
        nargs=6,
        metavar=("Z", "Y", "X", "DZ", "DY", "DX"),
        help="offset and shape in voxels (offset = world nm / voxel size; default: whole raw)",
    )


def cut_settings(args: argparse.Namespace):
    """The `incasem.annotate.CutSettings` of parsed ``annotate graphcut`` arguments."""
    from incasem.annotate.settings import CutSettings

    return CutSettings(**{name: getattr(args, name) for name in CutSettings.model_fields})


def run_graphcut(args: argparse.Namespace) -> int:
    from incasem.annotate import annotate_graphcut

    settings = cut_settings(args)
    result = annotate_graphcut(
        args.file,
        args.raw,
        args.seeds,
        args.output,
        mask=args.mask,
        roi_offset=args.roi[:3] if args.roi else None,
        roi_shape=args.roi[3:] if args.roi else None,
        settings=settings,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    organelle, background = result.seed_counts
    print(
        f"wrote {result.labels} ({100 * result.organelle_fraction:.2f} % organelle, from "
        f"{organelle} organelle and {background} background seed voxels) and {result.mask}"
    )
    print("data-config entry:")
    print(json.dumps(result.entry, indent=2))
    return 0


def run_paint(args: argparse.Namespace) -> int:
    from incasem.annotate.paint import import_napari, open_painter
    from incasem.annotate.settings import CutSettings

    napari = import_napari()
    painter = open_painter(
        args.container,
        args.raw,
        args.seeds,
        roi_offset=args.roi[:3] if args.roi else None,
        roi_shape=args.roi[3:] if args.roi else None,
        output=args.output,
        result=args.result,
        settings=CutSettings(model=args.model),
        overwrite=args.overwrite,
    )
    print(
        f"painting {painter.container}/{painter.seeds} on {painter.container}/{painter.raw}; "
        f"Segment writes {painter.container}/{painter.output}"
    )
    napari.run()
    return 0


def run_strokes(args: argparse.Namespace) -> int:
    import numpy as np

    from incasem.annotate import simulate_strokes
    from incasem.errors import IncasemError
    from incasem.io import open_array
    from incasem.io.budget import check_memory
    from incasem.io.staging import staged_dataset

    if args.planes < 1 or args.erosion < 0:
        raise IncasemError(f"--planes {args.planes} must be >= 1 and --erosion {args.erosion} >= 0")
    labels = open_array(args.file, args.labels)
    check_memory(f"{args.file}/{args.labels}", labels.shape, labels.dtype)  # read whole
    seeds = simulate_strokes(np.asarray(labels[labels.roi]), args.planes, args.erosion)
    with staged_dataset(
        args.file,
        args.output,
        seeds.shape,
        labels.voxel_size,
        labels.roi.offset,
        np.uint8,
        overwrite=args.overwrite,
        attrs={"incasem_strokes": {"labels": args.labels, "planes_per_axis": args.planes}},
    ) as staged:
        staged.array[staged.array.roi] = seeds
    print(
        f"wrote {args.file}/{args.output}: {int((seeds == 1).sum())} organelle and "
        f"{int((seeds == 2).sum())} background seed voxels "
        f"({100 * float((seeds > 0).mean()):.3f} % of the volume)"
    )
    return 0
