"""Where a Lucchi run's errors on the slab are: boundaries, false objects, missed objects.

Takes finished runs of the yardstick (`lucchi_accuracy.py --method unet --run-dir D`, one folder
per seed), predicts the slab with a checkpoint of each exactly as the yardstick scores it (blocks
of the training input at the model's voxel size, probabilities upsampled linearly to 5 nm) and
splits its errors at the card's threshold (all counts in 5 nm voxels):

* false negatives within ``--boundary`` voxels of a true mitochondrion's boundary, and false
  positives within as many voxels outside one: a boundary drawn a little off;
* predicted objects (26-connected) that touch no mitochondrion: whole false objects;
* the recall of every mitochondrion of ``volumes/labels/mitochondria_instances`` on the slab;
* what a one-voxel shift of the mask along each axis or a one-voxel dilation would score: a
  systematic offset or a too thin mask shows there;
* what the mask would score without its false objects, and without them and its boundary
  misses: which kind of error stands between a run and a target;
* the ceiling of the model's voxel size: the labels averaged to it and upsampled the same way.

Why: the slab score alone does not say which lever could still pay (a finer voxel for the
boundaries, more training for false objects). ``--box train`` splits the errors on the training
half (z < 130) instead: what the run still gets wrong on the data it trained on is a matter of
fitting, not of generalising. Run from anywhere::

    python benchmarks/lucchi_errors.py /work/runs/lever_cpu_10nm_noaug_60min/seed0 \\
        /work/runs/lever_cpu_10nm_noaug_60min/seed1 --scale 2 \\
        --out benchmarks/results/lucchi_slab_errors
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lucchi_report import write_text  # noqa: E402
from lucchi_scoring import DATA_ROOT, FOREGROUND, SLAB_DATA, TRAIN_DATA  # noqa: E402
from lucchi_unet import (  # noqa: E402
    chosen_checkpoints,
    coarse_probabilities,
    scaled_data,
    upsample,
)

from incasem.io import open_array  # noqa: E402
from incasem.io.data_config import DataEntry, check_data_config  # noqa: E402
from incasem.metrics import ConfusionCounts  # noqa: E402
from incasem.predict.truth import EntryTruth  # noqa: E402
from incasem.prepare.pyramid import downsample  # noqa: E402

logger = logging.getLogger("lucchi_errors")
INSTANCES = "volumes/labels/mitochondria_instances"
#: The boxes a run's errors can be split on (5 nm data configs): the held-out slab, and the
#: training half, where the errors say how well the hour fitted the data it saw.
BOXES = {"slab": SLAB_DATA, "train": TRAIN_DATA}


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """Foreground IoU of two bool arrays of one shape, by the metrics' own counts."""
    return ConfusionCounts.from_arrays(mask, truth, None, num_classes=2).class_scores(1)["iou"]


def ceiling(truth: np.ndarray, scale: int) -> float:
    """IoU of the labels averaged over ``scale``³ voxels, upsampled back and cut at 0.5: the
    best a perfect model at ``scale`` times the voxel size scores (edges that do not fill a
    coarse voxel are left out)."""
    shape = [n // scale * scale for n in truth.shape]
    cut = truth[tuple(slice(0, n) for n in shape)]
    coarse = downsample(cut.astype(np.float32), (scale,) * 3, "mean")
    return iou(upsample(coarse, scale) >= 0.5, cut)


def error_split(mask: np.ndarray, truth: np.ndarray, boundary: int) -> dict[str, Any]:
    """The errors of ``mask`` against ``truth`` by kind (5 nm voxel counts)."""
    from scipy import ndimage

    inner = truth & ~ndimage.binary_erosion(truth, iterations=boundary)
    outer = ndimage.binary_dilation(truth, iterations=boundary) & ~truth
    false_negative, false_positive = truth & ~mask, mask & ~truth
    objects, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    touching = np.unique(objects[truth])
    alone = np.setdiff1d(np.arange(1, count + 1), touching)
    kept = mask & ~np.isin(objects, alone)  # the mask without its false objects
    return {
        "iou": iou(mask, truth),
        "false_negatives": int(false_negative.sum()),
        "false_negatives_at_boundary": int((false_negative & inner).sum()),
        "false_positives": int(false_positive.sum()),
        "false_positives_at_boundary": int((false_positive & outer).sum()),
        "predicted_objects": int(count),
        "false_objects": int(alone.size),
        "false_object_voxels": int(mask.sum() - kept.sum()),
        "shifted_iou": {
            f"axis {axis} by {step:+d}": iou(np.roll(mask, step, axis=axis), truth)
            for axis in range(3)
            for step in (-1, 1)
        },
        "dilated_iou": iou(ndimage.binary_dilation(mask), truth),
        # What the mask would score with errors of one kind, then of both, taken away: which
        # kind stands between the run and a target.
        "iou_without_false_objects": iou(kept, truth),
        "iou_without_false_objects_or_boundary_misses": iou(kept | (false_negative & inner), truth),
    }


def object_recall(mask: np.ndarray, instances: np.ndarray) -> dict[str, Any]:
    """Voxels and recall of every labelled object in ``instances`` (ids as strings)."""
    ids, counts = np.unique(instances[instances > 0], return_counts=True)
    hits = np.bincount(instances[mask & (instances > 0)], minlength=int(ids.max(initial=0)) + 1)
    return {
        str(i): {"voxels": int(n), "recall": float(hits[i] / n)}
        for i, n in zip(ids, counts, strict=True)
    }


class Box(NamedTuple):
    """The box (``--box``) as every run is scored on it, read once."""

    root: Path  #: data root of the model's voxel size
    coarse: DataEntry  #: the box at the model's voxel size
    truth: np.ndarray  #: mitochondria at 5 nm, bool (z, y, x) over ``coarse``'s ROI
    instances: np.ndarray  #: their object ids, same shape


def read_box(args: argparse.Namespace) -> Box:
    """The labels of ``--box`` at 5 nm over the ROI the runs predict at ``--scale``."""
    root, configs = scaled_data(args.scale, args.cache, args.data_root)
    coarse = check_data_config(configs[args.box], data_root=root, num_classes=2).entries[0]
    fine = check_data_config(BOXES[args.box], data_root=args.data_root, num_classes=2).entries[0]
    class_ids, region = EntryTruth(fine, args.data_root).read(coarse.roi)
    if not region.all():
        raise SystemExit(
            f"{fine.raw}: the {args.box} box has unlabelled voxels; this split needs dense labels"
        )
    instances = open_array(fine.path(args.data_root), INSTANCES)[coarse.roi]
    return Box(root, coarse, class_ids == FOREGROUND, np.asarray(instances))


def analyse_run(run_dir: Path, box: Box, args: argparse.Namespace) -> dict[str, Any]:
    """The error split of one run's ``--checkpoint`` on ``--box`` at 5 nm."""
    from incasem.torch.checkpoint import load_checkpoint

    path = chosen_checkpoints(run_dir)[args.checkpoint]
    checkpoint = load_checkpoint(path)
    threshold, _ = checkpoint.card.decision_threshold()
    logger.info("%s: predicting the %s box with %s", run_dir, args.box, path.name)
    p = upsample(coarse_probabilities(checkpoint, box.coarse, box.root), args.scale)
    mask = p >= threshold
    return {
        "checkpoint": str(path),
        "iteration": checkpoint.card.iteration,
        "threshold": threshold,
        "voxels": list(mask.shape),
        "errors": error_split(mask, box.truth, args.boundary),
        "at_0.5": iou(p >= 0.5, box.truth),
        "objects": object_recall(mask, box.instances),
    }


def markdown(report: dict[str, Any]) -> str:
    """One table row per run, then every mitochondrion's recall."""
    rows = [
        f"# Lucchi {report['box']}: where the errors are",
        "",
        f"{report['command']}",
        "",
        f"Counts of 5 nm voxels at the card's threshold; 'at boundary' is within "
        f"{report['boundary']} voxels of a true boundary (inside for false negatives, outside "
        "for false positives); false objects are predicted 26-connected objects that touch no "
        "mitochondrion. 'Without': the mask with its false objects removed, then also with "
        "its false negatives at the boundary filled in. Ceiling: the labels averaged to the "
        "model's voxel size and upsampled the same way.",
        "",
        "| run | iteration | threshold | IoU | false negatives (at boundary) | false positives "
        "(at boundary) | false objects (voxels) | best shifted IoU | dilated IoU | IoU without "
        "false objects | ... and without boundary misses | ceiling |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in report["runs"].items():
        e = run["errors"]
        shift = max(e["shifted_iou"].items(), key=lambda kv: kv[1])
        rows.append(
            f"| {name} | {run['iteration']} | {run['threshold']:.3f} | {e['iou']:.3f} | "
            f"{e['false_negatives']:,} ({e['false_negatives_at_boundary']:,}) | "
            f"{e['false_positives']:,} ({e['false_positives_at_boundary']:,}) | "
            f"{e['false_objects']} of {e['predicted_objects']} ({e['false_object_voxels']:,}) | "
            f"{shift[1]:.3f} ({shift[0]}) | {e['dilated_iou']:.3f} | "
            f"{e['iou_without_false_objects']:.3f} | "
            f"{e['iou_without_false_objects_or_boundary_misses']:.3f} | {report['ceiling']:.3f} |"
        )
    rows += ["", "Recall of each mitochondrion (id: voxels, recall per run):", ""]
    names = list(report["runs"])
    first = report["runs"][names[0]]["objects"]
    for object_id, record in sorted(first.items(), key=lambda kv: -kv[1]["voxels"]):
        recalls = ", ".join(
            f"{report['runs'][n]['objects'][object_id]['recall']:.2f}" for n in names
        )
        rows.append(f"- {object_id}: {record['voxels']:,} voxels, recall {recalls}")
    return "\n".join(rows) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The script's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="yardstick run folders (seed<N>)")
    parser.add_argument("--checkpoint", choices=("final", "best"), default="final")
    parser.add_argument("--scale", type=int, default=2, help="the runs' --scale (2: 10 nm)")
    parser.add_argument("--boundary", type=int, default=2, help="boundary band, 5 nm voxels")
    parser.add_argument(
        "--box", choices=tuple(BOXES), default="slab", help="held-out slab or training half"
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "incasem_lucchi_accuracy"
    )
    parser.add_argument("--out", type=Path, required=True, help="writes <out>.json and <out>.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Analyse every run and write the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    box = read_box(args)
    report = {
        "command": "python benchmarks/lucchi_errors.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "box": args.box,
        "boundary": args.boundary,
        "ceiling": ceiling(box.truth, args.scale),
        "runs": {f"{run.parent.name}/{run.name}": analyse_run(run, box, args) for run in args.runs},
    }
    write_text(args.out.with_name(args.out.name + ".json"), json.dumps(report, indent=2) + "\n")
    write_text(args.out.with_name(args.out.name + ".md"), markdown(report))
    logger.info("wrote %s (.json, .md)", args.out)


if __name__ == "__main__":
    main()
