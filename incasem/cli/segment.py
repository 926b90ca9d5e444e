"""``incasem segment``: probability map → binary segmentation (p >= threshold), masked.

Also holds the arguments every post-processing command shares (masks, block size, progress) so
that ``segment``, ``evaluate``, ``instances``, ``measure`` and ``merge`` read alike.
"""

from __future__ import annotations

import argparse

from incasem.blockwise import BLOCK_EDGE
from incasem.cli.common import add_run_arguments
from incasem.errors import IncasemError

DATASET_HELP = (
    "datasets are DATASET (inside CONTAINER) or OTHER.zarr/DATASET; append @C for channel C of "
    "a channel-first dataset"
)


def add_postprocess_arguments(parser: argparse.ArgumentParser, masks: bool = True) -> None:
    """``--mask``, ``--block-size``, ``--no-progress`` plus ``--workers`` and ``--overwrite``."""
    if masks:
        parser.add_argument(
            "--mask",
            action="append",
            default=[],
            metavar="DATASET",
            help="only voxels where this dataset is nonzero count (repeat for cell mask and "
            "metric mask)",
        )
    parser.add_argument(
        "--block-size",
        type=int,
        default=BLOCK_EDGE,
        metavar="VOXELS",
        help="block edge in voxels (default: %(default)s; rounded up to the output chunks)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    add_run_arguments(parser)


def binary_source(
    args: argparse.Namespace, class_id: int | None = None, threshold_required: bool = False
):
    """The `BinarySource` of ``--dataset`` thresholded at ``--threshold`` inside every ``--mask``
    (datasets resolved against ``container``), as ``segment`` and ``instances`` read it.

    Without ``--threshold`` (and ``class_id``) a prediction's probabilities are thresholded
    where their prediction decided (see `incasem.postprocess.sources.default_threshold`); the
    threshold used is printed.
    """
    from incasem.postprocess.sources import (
        BinarySource,
        default_threshold,
        parse_dataset,
        spatial_array,
    )

    data = parse_dataset(args.dataset, args.container)
    threshold = args.threshold
    if threshold is None and class_id is None:
        spatial_array(data)  # a missing dataset is named before its attributes are read
        threshold, origin = default_threshold(data, threshold_required)
        if threshold is not None:
            print(f"threshold {threshold:g} ({origin}; --threshold overrides)")
    return BinarySource(
        data,
        threshold=threshold,
        class_id=class_id,
        masks=tuple(parse_dataset(m, args.container) for m in args.mask),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="threshold a probability map into a binary segmentation",
        description="Write a uint8 dataset that is --value where the probability p >= "
        "--threshold (a probability in [0, 1] for uint8 p*255 and float maps alike) and every "
        "--mask is nonzero, 0 elsewhere; same ROI and voxel size as the input. Blockwise. "
        + DATASET_HELP
        + ".",
    )
    parser.add_argument("container", help="the .zarr container (output is written into it)")
    parser.add_argument("-d", "--dataset", required=True, help="probability dataset")
    parser.add_argument("--out-dataset", required=True, help="output dataset")
    parser.add_argument(
        "--threshold",
        type=float,
        help="default: the threshold the prediction recorded on the dataset (the model's "
        "calibrated one), else 0.5",
    )
    parser.add_argument("--value", type=int, default=1, help="foreground value (default: 1)")
    parser.add_argument(
        "--fill-holes", action="store_true", help="fill holes in 3D (whole volume, in memory)"
    )
    parser.add_argument(
        "--min-object-nm3",
        type=float,
        default=0.0,
        help="remove 26-connected objects smaller than this volume in nm³ (default: 0, keep all)",
    )
    add_postprocess_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.postprocess.cleanup import PostProcessing
    from incasem.postprocess.segment import segment

    if args.min_object_nm3 < 0:
        raise IncasemError(f"--min-object-nm3 {args.min_object_nm3:g} must be >= 0")

    path = segment(
        binary_source(args, threshold_required=True),
        args.container,
        args.out_dataset,
        value=args.value,
        block_edge=args.block_size,
        num_workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        post_processing=PostProcessing(args.fill_holes, args.min_object_nm3),
    )
    print(f"wrote {path}")
    return 0
