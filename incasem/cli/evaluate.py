"""``incasem evaluate``: voxel and object scores of a prediction, with a threshold sweep."""

from __future__ import annotations

import argparse
import json
from typing import Any

from incasem.cli.common import add_roi_argument
from incasem.cli.segment import DATASET_HELP, add_postprocess_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="F1/precision/recall/IoU/Dice, threshold sweep, object scores",
        description="Score a prediction against labels over the prediction's ROI (or --roi), "
        "counting only voxels where every --mask is nonzero (cell mask and metric mask): "
        "F1 (= Dice), precision, recall and IoU (= Jaccard) per class; with --threshold the "
        "prediction is a "
        "probability map (p >= threshold is positive), else class ids are compared. --sweep "
        "START STOP STEP scores every threshold and reports the best F1; --objects adds object "
        "precision/recall/F1 (6-connected objects matched one to one at IoU >= 0.5). Blockwise "
        "and exact. Results go to stdout and, with --json, to a file. " + DATASET_HELP + ".",
    )
    parser.add_argument("container", help="the .zarr container holding the datasets")
    parser.add_argument("--prediction", required=True, help="probability or class-id dataset")
    parser.add_argument("--truth", required=True, help="label dataset (class ids)")
    parser.add_argument("--threshold", type=float, help="the prediction is a probability map")
    parser.add_argument(
        "--sweep",
        type=float,
        nargs=3,
        metavar=("START", "STOP", "STEP"),
        help="also score thresholds START..STOP (inclusive) in steps of STEP",
    )
    parser.add_argument(
        "--truth-class",
        type=int,
        help="score this truth id against all others (default: nonzero truth for probabilities, "
        "every id for labels)",
    )
    parser.add_argument("--objects", action="store_true", help="also compute object scores")
    add_roi_argument(parser, "the prediction's whole ROI")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="write the full report as JSON to PATH ('-': to stdout instead of the text)",
    )
    add_postprocess_arguments(parser)
    parser.set_defaults(func=run)


def _line(name: str, values: dict[str, Any], keys: tuple[str, ...]) -> str:
    return f"{name:<16}" + "  ".join(f"{k} {values[k]:.4f}" for k in keys)


def format_report(report: dict[str, Any]) -> str:
    """Human-readable lines of an `incasem.postprocess.evaluate.evaluate` report."""
    keys = ("f1", "precision", "recall", "iou")
    lines = []
    if report.get("threshold") is not None:
        lines.append(f"threshold {report['threshold']}")
    for name, values in report["classes"].items():
        lines.append(_line(name, values, keys) + f"  (tp {values['tp']}, fp {values['fp']}, "
                     f"fn {values['fn']})")  # fmt: skip
    if "sweep" in report:
        lines.append("sweep:")
        lines += [_line(f"  p >= {s['threshold']:g}", s, keys) for s in report["sweep"]]
        best = report["best"]
        lines.append(f"best threshold {best['threshold']:g}: F1 {best['f1']:.4f}")
    for name, values in report.get("objects", {}).items():
        lines.append(
            f"objects {name}: {values['matched']} of {values['predicted']} predicted matched "
            f"{values['true']} true at IoU >= {values['iou_threshold']}: precision "
            f"{values['precision']:.4f}, recall {values['recall']:.4f}, F1 {values['f1']:.4f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from incasem.atomic import check_new_file, write_json
    from incasem.postprocess.evaluate import evaluate, sweep_thresholds
    from incasem.postprocess.sources import parse_dataset

    if args.json and args.json != "-":
        check_new_file(args.json, args.overwrite)
    report = evaluate(
        parse_dataset(args.prediction, args.container),
        parse_dataset(args.truth, args.container),
        masks=tuple(parse_dataset(m, args.container) for m in args.mask),
        threshold=args.threshold,
        sweep=sweep_thresholds(*args.sweep) if args.sweep else None,
        truth_class=args.truth_class,
        objects=args.objects,
        roi_voxels=args.roi,
        block_edge=args.block_size,
        num_workers=args.workers,
        progress=args.progress,
    )
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    if args.json:
        print(f"wrote {write_json(args.json, report, args.overwrite)}")
    return 0
