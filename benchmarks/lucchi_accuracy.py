"""Time to accuracy on EPFL Lucchi mitochondria, on the whole held-out slab: U-Net against forest.

Data: ``../shared/data/epfl_lucchi_train.zarr`` (FIB-SEM of mouse CA1 hippocampus, 5 nm;
Lucchi, Smith, Achanta, Knott, Fua, IEEE TMI 2012). Train on z < 130
(``configs/data/lucchi_mito_train.json``); validate, pick checkpoints and thresholds, and score
on the whole slab z >= 130 (``configs/data/lucchi_mito_slab.json``, 12 mitochondria), with the
earlier 35x384x512 crop at its centre (``lucchi_mito_validation.json``) as a second column.
Every method runs once per seed of ``--seeds`` and the tables give mean ± sample sd.

The parts:

* `lucchi_scoring`: the boxes and the one scoring code (`BoxScores`);
* `lucchi_forest` (``--method forest``): the annotator's forest
  (`incasem.annotate.unary.fit_forest`) on class-balanced voxels of the training labels;
* `lucchi_unet` (``--method unet``): a training recipe for ``--minutes``, validated on the slab,
  ``--scale 2`` for the 10 nm recipe, its checkpoints scored at 5 nm;
* `lucchi_report`: ``<out>.json`` (merged: a run replaces only its own method/label and its
  own seeds, so ``--seeds 0`` and later ``--seeds 1`` under one label make a two-seed row),
  ``<out>.md`` and ``<out>.png``.

Run from anywhere::

    python benchmarks/lucchi_accuracy.py --method forest --seeds 0 1 \\
        --out benchmarks/results/lucchi_slab
    python benchmarks/lucchi_accuracy.py --method unet --recipe configs/lucchi_cpu.yaml \\
        --scale 2 --minutes 60 --validate-minutes 5 --seeds 0 --label cpu_10nm \\
        --run-dir runs/lucchi --out benchmarks/results/lucchi_slab
    # later, the second seed joins the same row
    python benchmarks/lucchi_accuracy.py ... --seeds 1 --label cpu_10nm ...
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lucchi_forest import forest_row, run_forest_seed  # noqa: E402
from lucchi_report import merge_seeds, write_report  # noqa: E402
from lucchi_scoring import DATA_ROOT, REPO  # noqa: E402
from lucchi_unet import run_unet  # noqa: E402

from incasem.annotate.features import DEFAULT_SIGMAS  # noqa: E402
from incasem.training.allocator import exec_with_allocator_settings  # noqa: E402


def _run_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "affinity_cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "processor": platform.processor(),
            # Other work on the machine inflates timings: the load when this run finished.
            "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
        },
        "seeds": list(args.seeds),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=("unet", "forest", "both"), default="both")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="one run per seed (default 0 1)"
    )
    parser.add_argument("--recipe", default="configs/lucchi_cpu.yaml", help="training YAML")
    parser.add_argument("--minutes", type=float, default=60, help="U-Net training minutes")
    parser.add_argument(
        "--validate-minutes", type=float, default=5, help="U-Net validation about this often"
    )
    parser.add_argument(
        "--validate-every",
        type=int,
        default=None,
        help="validate every this many iterations instead of timing the first iterations",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "lucchi_slab",
        help="output prefix: writes <out>.json, <out>.png, <out>.md",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="recipe overrides, e.g. model.num_fmaps=4 (values parsed as YAML)",
    )
    parser.add_argument("--label", default=None, help="name of the U-Net row (default recipe)")
    parser.add_argument("--start-from", default=None, help="checkpoint to fine-tune from")
    parser.add_argument(
        "--run-dir", default=None, help="U-Net runs go to <run-dir>/seed<N> (default: /tmp)"
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="U-Net: train and validate at this many times the voxel size (2: 10 nm), its "
        "checkpoints scored at 5 nm at the end",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "incasem_lucchi_accuracy",
        help="where --scale writes its coarse level and data configs",
    )
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS))
    parser.add_argument(
        "--forest-samples", type=int, default=200_000, help="training voxels, half per class"
    )
    parser.add_argument("--forest-trees", type=int, default=100)
    parser.add_argument("--forest-jobs", type=int, default=2, help="forest threads")
    parser.add_argument(
        "--forest-tiles", type=int, default=8, help="training tiles the voxels are drawn from"
    )
    parser.add_argument(
        "--forest-block-shape",
        type=int,
        nargs=3,
        default=[35, 192, 256],
        help="slab prediction blocks, voxels z y x",
    )
    args = parser.parse_args(argv)
    if args.label is None:
        args.label = Path(args.recipe).stem
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen methods and merge their rows into the report."""
    args = parse_args(argv)
    if args.method in ("unet", "both"):
        # Train as `incasem train` does: glibc keeps freed step buffers (no page-fault churn).
        exec_with_allocator_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.method in ("forest", "both"):
        runs: list[dict[str, Any]] = []
        for seed in args.seeds:  # the report is rewritten after each seed
            runs.append(run_forest_seed(args, seed))
            forest = {**forest_row(args, runs), **_run_info(args)}
            write_report(
                args.out,
                lambda results, row=forest: results.__setitem__(
                    "forest", merge_seeds(results.get("forest"), row)
                ),
            )
    if args.method in ("unet", "both"):
        unet = {**run_unet(args), **_run_info(args)}

        def add_unet(results: dict[str, Any]) -> None:
            rows = results.setdefault("unet", {})
            rows[args.label] = merge_seeds(rows.get(args.label), unet)

        write_report(args.out, add_unet)


if __name__ == "__main__":
    main()
