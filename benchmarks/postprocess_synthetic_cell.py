"""Timings and checks of the post-processing commands on the synthetic cell (the README example).

    python benchmarks/postprocess_synthetic_cell.py --shape 256 256 256 --workers 2

generates a synthetic cell (``incasem phantom``) in a temporary folder and writes *stand-in*
probability maps for mitochondria and ER into it: each organelle's label smoothed with a Gaussian
of 3 voxels plus uniform noise of ±0.15, stored as uint8 (p * 255) like a prediction. They are
not network outputs (no ER model is trained in this repository); they have blurred boundaries
and noise like one, which is what thresholds, components and the merge have to cope with. It
then runs ``segment``, ``evaluate`` (with sweep and object scores), ``instances``, ``measure``
and ``merge`` as the user would (subprocesses of the ``incasem`` command), prints each command's
wall time, and checks the results against whole-volume NumPy/SciPy references: voxel counts of
the evaluation, the number of instances against ``scipy.ndimage.label``, and the merge's
contested-voxel counts. A JSON summary goes to ``--json`` if given; ``--out cell.zarr`` keeps
the container with the stand-ins and every output (the README's worked example).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from incasem.io import create_array, open_array

BIN = Path(sys.executable).parent


def _stand_in(labels: np.ndarray, seed: int) -> np.ndarray:
    smooth = ndimage.gaussian_filter(labels.astype(np.float32), 3.0)
    noise = np.random.default_rng(seed).uniform(-0.15, 0.15, labels.shape).astype(np.float32)
    return np.rint(np.clip(smooth + noise, 0, 1) * 255).astype(np.uint8)


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(
        [str(BIN / "incasem"), *command], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"failed: incasem {' '.join(command)}\n{result.stderr}")
    return time.monotonic() - start, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 256])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument(
        "--out", help="keep the cell with all outputs here (a new .zarr path; default: deleted)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        cell = Path(args.out) if args.out else Path(folder) / "cell.zarr"
        cell_s, _ = _timed(["phantom", "--out", str(cell), "--shape", *map(str, args.shape)])
        labels = {n: open_array(cell, f"volumes/labels/{n}")[:] for n in ("mito", "er")}
        mask = open_array(cell, "volumes/mask")[:] != 0
        stand_ins = {}
        for k, (name, data) in enumerate(labels.items()):
            stand_ins[name] = _stand_in(data, seed=k)
            array = create_array(
                cell, f"volumes/stand_in/{name}", data.shape, (5, 5, 5), attrs={"class_name": name}
            )
            array[array.roi] = stand_ins[name]
        run = ["--workers", str(args.workers), "--no-progress"]
        times = {"phantom": cell_s}
        times["segment"], _ = _timed(
            ["segment", str(cell), "-d", "volumes/stand_in/mito", "--out-dataset",
             "volumes/segmentation/mito", "--threshold", "0.5", "--mask", "volumes/mask", *run]
        )  # fmt: skip
        report_path = Path(folder) / "evaluate.json"
        times["evaluate"], _ = _timed(
            ["evaluate", str(cell), "--prediction", "volumes/stand_in/mito", "--truth",
             "volumes/labels/mito", "--mask", "volumes/mask", "--threshold", "0.5",
             "--sweep", "0.1", "0.9", "0.05", "--objects", "--json", str(report_path), *run]
        )  # fmt: skip
        report = json.loads(report_path.read_text())
        times["instances"], out = _timed(
            ["instances", str(cell), "-d", "volumes/stand_in/mito", "--threshold", "0.5",
             "--mask", "volumes/mask", "--min-size", "1e6", "--size-unit", "nm3",
             "--out-dataset", "volumes/instances/mito", *run]
        )  # fmt: skip
        table = Path(folder) / "mito.csv"
        times["measure"], _ = _timed(
            ["measure", str(cell), "-d", "volumes/instances/mito", "--probabilities",
             "volumes/stand_in/mito", "-o", str(table), *run]
        )  # fmt: skip
        merge_path = Path(folder) / "merge.json"
        times["merge"], _ = _timed(
            ["merge", str(cell), "--input", "mito=volumes/stand_in/mito", "--input",
             "er=volumes/stand_in/er", "--mask", "volumes/mask", "--out-dataset",
             "volumes/merged", "--threshold", "er=0.3", "--json", str(merge_path), *run]
        )  # fmt: skip
        merged = json.loads(merge_path.read_text())

        predicted = (stand_ins["mito"] >= 128) & mask
        truth = (labels["mito"] != 0) & mask
        expected_counts = {
            "tp": int((predicted & truth).sum()),
            "fp": int((predicted & ~truth).sum()),
            "fn": int((~predicted & truth).sum()),
        }
        got = report["classes"]["mito"]
        instances = open_array(cell, "volumes/instances/mito")[:]
        claims = [(stand_ins["mito"] >= 128) & mask, (stand_ins["er"] >= 77) & mask]
        components, _ = ndimage.label(predicted)
        big = np.flatnonzero(np.bincount(components.ravel())[1:] * 125 >= 1e6) + 1
        rows = list(Path(table).read_text().splitlines())
        volumes = sorted(float(r.split(",")[2]) for r in rows[1:])
        summary = {
            "shape": args.shape,
            "workers": args.workers,
            "seconds": {k: round(v, 2) for k, v in times.items()},
            "evaluate_counts_equal_numpy": {k: got[k] for k in expected_counts} == expected_counts,
            "mito_f1_at_0.5": got["f1"],
            "best_threshold": report["best"]["threshold"],
            "best_f1": report["best"]["f1"],
            "objects": report["objects"]["mito"],
            "instances_at_least_1e6_nm3": int(instances.max()),
            "scipy_label_objects": int(components.max()),
            "scipy_label_objects_at_least_1e6_nm3": len(big),
            "instance_voxels_equal_scipy": bool(
                np.array_equal(instances != 0, np.isin(components, big))
            ),
            "table_rows": len(rows) - 1,
            "mito_volumes_um3": [round(v / 1e9, 4) for v in volumes],
            "merge_contested": merged["contested_pairs"],
            "merge_contested_reference": int((claims[0] & claims[1]).sum()),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
