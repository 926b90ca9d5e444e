"""Test-time levers on the Lucchi slab: flips and the card's post-processing, one at a time.

Takes finished runs of the yardstick (`lucchi_accuracy.py --method unet --run-dir D`, one folder
per seed) and scores a checkpoint of each at the data's 5 nm on the slab and the crop, four ways:

* ``plain``: one forward pass per block, no post-processing (the yardstick's own row);
* ``flips``: the mean over the 8 flips of each block's input (`incasem.predict.block.flip_axes`,
  what ``incasem predict --flips`` does);
* ``post-processing``: the card's choice (hole filling and a minimum object size in nm³, picked
  by validation on the slab at the model's voxel size) applied at 5 nm after thresholding;
* ``flips + post-processing``.

Probability levers are scored by `lucchi_scoring.BoxScores` (IoU at the best threshold, at the
card's threshold); post-processing acts on a thresholded mask, so those rows give IoU at the
card's threshold only, counted by `incasem.metrics.ConfusionCounts` over the whole slab and the
crop. Nothing here is picked on the score it reports beyond what the yardstick picks on the
slab (threshold, checkpoint, post-processing: all on validation on the slab).

Run from anywhere::

    python benchmarks/lucchi_test_time.py /work/runs/unet/seed0 --scale 2 \\
        --out benchmarks/results/lucchi_slab_test_time
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lucchi_report import write_text  # noqa: E402
from lucchi_scoring import (  # noqa: E402
    DATA_ROOT,
    FOREGROUND,
    SLAB_DATA,
    BoxScores,
    box_entries,
)
from lucchi_unet import (  # noqa: E402
    chosen_checkpoints,
    coarse_probabilities,
    scaled_data,
    upsample,
)

from incasem.io.data_config import check_data_config  # noqa: E402
from incasem.metrics import ConfusionCounts, quantise  # noqa: E402
from incasem.metrics.histograms import level_for_threshold  # noqa: E402
from incasem.postprocess.cleanup import PostProcessing  # noqa: E402
from incasem.predict.block import flip_axes  # noqa: E402
from incasem.predict.truth import EntryTruth  # noqa: E402

logger = logging.getLogger("lucchi_test_time")


def _mask_scores(
    foreground: np.ndarray, truth: tuple[np.ndarray, np.ndarray], cuts: dict[str, Any]
) -> dict[str, float]:
    """IoU of class 1 in each box (``cuts``: slices of the slab's array) of a bool mask."""
    class_ids, region = truth
    return {
        name: ConfusionCounts.from_arrays(
            foreground[cut], class_ids[cut] == FOREGROUND, region[cut], num_classes=2
        ).class_scores(1)["iou"]
        for name, cut in cuts.items()
    }


def score_run(
    run_dir: Path, which: str, scale: int, data_root: Path, cache: Path
) -> dict[str, Any]:
    """The four ways of one run's ``which`` (``final`` or ``best``) checkpoint."""
    from incasem.torch.checkpoint import load_checkpoint

    coarse_root, coarse_slab = data_root, SLAB_DATA
    if scale > 1:  # the level and data configs the run validated on (written once, then reused)
        coarse_root, configs = scaled_data(scale, cache, data_root)
        coarse_slab = configs["slab"]
    coarse = check_data_config(coarse_slab, data_root=coarse_root, num_classes=2).entries[0]
    fine = box_entries(data_root)
    voxel_size = Coordinate(fine["slab"].voxel_size)
    truth = EntryTruth(fine["slab"], data_root).read(coarse.roi)
    cuts = {
        name: tuple(
            slice(b, b + n)
            for b, n in zip(
                (entry.roi.intersect(coarse.roi).offset - coarse.roi.offset) / voxel_size,
                entry.roi.intersect(coarse.roi).shape / voxel_size,
                strict=True,
            )
        )
        for name, entry in fine.items()
    }
    path = chosen_checkpoints(run_dir)[which]
    checkpoint = load_checkpoint(path)
    card = checkpoint.card
    threshold, _ = card.decision_threshold()
    post = PostProcessing(card.fill_holes, card.min_object_nm3)
    record: dict[str, Any] = {
        "checkpoint": str(path),
        "iteration": card.iteration,
        "threshold": threshold,
        "post_processing": post.describe(),
        "ways": {},
    }
    for name, flips in (("plain", [()]), ("flips", flip_axes(coarse.voxel_size))):
        start = time.perf_counter()
        p = coarse_probabilities(checkpoint, coarse, coarse_root, flips)
        seconds = time.perf_counter() - start
        p = upsample(p, scale)
        boxes = BoxScores({n: e.roi for n, e in fine.items()}, voxel_size)
        boxes.add(coarse.roi, p, *truth)
        at_card = boxes.scores(threshold)
        foreground = quantise(p) >= level_for_threshold(threshold)
        record["ways"][name] = {
            "flips": len(flips),
            "predict_s": seconds,
            "slab_best_iou": at_card["slab"]["best_iou"],
            "iou_at_card_threshold": _mask_scores(foreground, truth, cuts),
        }
        if post.active:
            record["ways"][f"{name} + post-processing"] = {
                "flips": len(flips),
                "iou_at_card_threshold": _mask_scores(
                    post.apply(foreground, voxel_size), truth, cuts
                ),
            }
        logger.info("%s %s: %s", run_dir.name, name, record["ways"][name])
    return record


def markdown(records: list[dict[str, Any]]) -> str:
    """One table: every run and way, IoU at 5 nm on slab and crop."""
    lines = [
        "# Lucchi mitochondria: test-time levers on the whole slab",
        "",
        "Each run's checkpoint (picked by validation on the slab) scored at 5 nm four ways: "
        "plain, averaged over 8 flips, with the card's post-processing, with both. IoU at the "
        "card's threshold (slab / crop) and, for probabilities, at the slab's best threshold.",
        "",
        "| run | checkpoint (iteration) | way | card's post-processing | slab IoU at the card's "
        "threshold | crop IoU at the card's threshold | slab IoU, best threshold | "
        "prediction s (model voxels) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        for way, w in r["ways"].items():
            best = f"{w['slab_best_iou']:.3f}" if "slab_best_iou" in w else "—"
            seconds = f"{w['predict_s']:.0f}" if "predict_s" in w else "—"
            lines.append(
                f"| `{r['run']}` | {r['which']} ({r['iteration']}) | {way} | "
                f"{r['post_processing']} | {w['iou_at_card_threshold']['slab']:.3f} | "
                f"{w['iou_at_card_threshold']['crop']:.3f} | {best} | {seconds} |"
            )
    lines += ["", "Command:", "", f"- `{' '.join(sys.argv)}`"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Score every run folder given and write ``<out>.json`` and ``<out>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (one per seed)")
    parser.add_argument("--which", choices=("final", "best"), default="best")
    parser.add_argument("--scale", type=int, default=2, help="the runs' voxel size / 5 nm")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "incasem_lucchi_accuracy",
        help="the coarse level, as lucchi_accuracy.py --cache",
    )
    parser.add_argument("--out", type=Path, required=True, help="writes <out>.json, <out>.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    records = []
    for run_dir in args.runs:
        record = score_run(run_dir, args.which, args.scale, args.data_root, args.cache)
        records.append({"run": str(run_dir), "which": args.which, **record})
    write_text(args.out.with_name(args.out.name + ".json"), json.dumps(records, indent=2) + "\n")
    write_text(args.out.with_name(args.out.name + ".md"), markdown(records))


if __name__ == "__main__":
    main()
