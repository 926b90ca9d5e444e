"""F1 of graph-cut annotation vs the number of stroke planes, on the synthetic cell and Lucchi.

Strokes are simulated from the ground truth (`incasem.annotate.strokes`: 2D skeletons of the
eroded organelle and background on k evenly spaced planes per axis), the cut runs with the
default settings through `annotate_graphcut` (blockwise, `--workers` processes), and F1 is measured
against the full label over the ROI. Peak resident memory is reported for the driver process and
for the worker (the largest child), from ``getrusage``.

    python benchmarks/graphcut_f1.py --out benchmarks/results/graphcut_f1.md

Data: the 256³ synthetic cell (``incasem.phantom``, seed 0, mitochondria) and a crop of
``../shared/data/epfl_lucchi_train.zarr`` (Lucchi et al., IEEE TMI 2012; labels
``volumes/labels/mitochondria``), read in place.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from incasem.annotate import CutSettings, annotate_graphcut, simulate_strokes
from incasem.atomic import write_atomic
from incasem.io import create_array, open_array
from incasem.metrics import ConfusionCounts
from incasem.phantom import write_cell
from incasem.settings import add_flags

LUCCHI = Path(__file__).resolve().parents[1].parent / "shared/data/epfl_lucchi_train.zarr"


def _f1(prediction: np.ndarray, truth: np.ndarray) -> float:
    return ConfusionCounts.from_arrays(prediction != 0, truth != 0, None, 2).class_scores(1)["f1"]


def _run(
    container: Path, raw: str, truth: np.ndarray, planes: int, settings: CutSettings,
    workers: int = 1,
) -> dict:  # fmt: skip
    seeds = simulate_strokes(truth, planes)
    start = time.monotonic()
    annotate_graphcut(
        container,
        raw,
        seeds,
        "volumes/labels/graphcut",
        settings=settings,
        num_workers=workers,
        overwrite=True,
        progress=False,
    )
    seconds = time.monotonic() - start
    result = open_array(container, "volumes/labels/graphcut")
    return {
        "planes": planes,
        "seed_percent": 100 * float((seeds > 0).mean()),
        "f1": _f1(result[result.roi], truth),
        "seconds": seconds,
    }


def _rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="phantom edge, voxels")
    parser.add_argument("--planes", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument(
        "--lucchi-roi", type=int, nargs=6, default=[32, 512, 0, 128, 256, 256],
        help="offset and shape in voxels (z y x) of the Lucchi crop",
    )  # fmt: skip
    add_flags(parser, CutSettings, ["model", "pairwise_weight", "refine"])
    parser.add_argument(
        "--synthetic-planes", type=int, nargs="*", default=None,
        help="planes per axis on the synthetic cell (default: --planes)",
    )  # fmt: skip
    parser.add_argument(
        "--no-variants", dest="variants", action="store_false",
        help="skip the synthetic cell's rows without clean-up and with supervoxels",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="worker processes per cut")
    parser.add_argument("--out", type=Path, help="markdown file for the table")
    args = parser.parse_args()
    if args.synthetic_planes is None:
        args.synthetic_planes = args.planes
    base = CutSettings(model=args.model, pairwise_weight=args.pairwise_weight, refine=args.refine)

    rows = []

    def record(data: str, cleanup: str, container: Path, truth, planes: int, **changes) -> None:
        settings = CutSettings(**(base.model_dump() | changes))
        rows.append({"data": data, "cleanup": cleanup,
                     **_run(container, "volumes/raw", truth, planes, settings,
                            args.workers)})  # fmt: skip
        print(rows[-1], flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        cell = Path(tmp) / "cell.zarr"
        write_cell(cell, shape=(args.size,) * 3)
        truth = open_array(cell, "volumes/labels/mito")[:]
        name = f"synthetic cell {args.size}³, mito"
        for planes in args.synthetic_planes:
            record(name, "yes", cell, truth, planes)
        if args.variants:
            record(name, "no", cell, truth, 3, keep_unseeded=True)
            record(name, "yes (supervoxels 300)", cell, truth, 3, supervoxels=300)
        cell_rss = _rss_mb()

        if LUCCHI.is_dir():
            offset, shape = args.lucchi_roi[:3], args.lucchi_roi[3:]
            raw = open_array(LUCCHI, "volumes/raw")
            labels = open_array(LUCCHI, "volumes/labels/mitochondria")
            box = tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))
            crop = Path(tmp) / "lucchi.zarr"
            array = create_array(crop, "volumes/raw", shape, raw.voxel_size)
            array[array.roi] = np.asarray(raw.data[box])
            truth = np.asarray(labels.data[box])
            name = f"Lucchi crop z{offset[0]} y{offset[1]} x{offset[2]} {shape}"
            for planes in args.planes:
                record(name, "yes", crop, truth, planes)
    own, workers = _rss_mb()

    lines = [
        "# Graph-cut annotation: F1 vs stroke planes per axis",
        "",
        f"`{shlex.join(sys.argv)}`. Settings: unary {args.model}"
        + (
            " (random forest, 50 trees, filter features at sigmas 0.7-5 voxels, trained on the "
            "seeds)"
            if args.model == "forest"
            else " (3 components, smoothing 3 voxels)"
        )
        + f", lambda {base.pairwise_weight:g}, boundary band {base.refine_width} voxels re-cut "
        "with gray values, sigma 20, edge "
        "smoothing 1 voxel, 128³ "
        "blocks with 16 voxels of context, seeded-object clean-up; "
        f"{args.workers} worker process(es), a "
        "2-core machine shared with other jobs (times are indicative). Strokes: 2D skeletons of "
        "the 3-voxel-eroded label and background on k evenly spaced planes per axis. The "
        "defaults were chosen with strokes on 3 planes per axis on this synthetic cell and on "
        "another Lucchi crop (z 0:64, y 256:512, x 384:640); the Lucchi crop below was not used "
        "for tuning.",
        "",
        "| data | planes/axis | seeds (% voxels) | clean-up | F1 | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data']} | {r['planes']} | {r['seed_percent']:.3f} | {r['cleanup']} | "
        f"{r['f1']:.3f} | {r['seconds']:.0f} |"
        for r in rows
    ]
    lines += [
        "",
        f"Peak RSS: driver {cell_rss[0]:.0f} MB after the synthetic cell runs ({own:.0f} MB at the "
        f"end), largest worker {workers:.0f} MB (one 160³ voxel graph: block plus context).",
        "",
        "Data: synthetic cell from `incasem.phantom` (seed 0); EPFL hippocampus, Lucchi et al., "
        "IEEE TMI 2012 (`../shared/data/epfl_lucchi_train.zarr`).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, lambda tmp: tmp.write_text(text), overwrite=True)


if __name__ == "__main__":
    main()
