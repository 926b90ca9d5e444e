"""The demo behind ``make demo``: synthetic cell -> validate -> train -> predict -> F1 -> PNG.

Every step runs the real user entry point (``incasem``, ``scripts/train.py``,
``scripts/predict.py``) as a subprocess and prints the command, so the demo doubles as a
worked example. Steps whose results are already in ``demo_output/`` are not redone: the cell is
generated once, a completed demo training run is reused, and each prediction gets a new id.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path("demo_output")
CELL = OUT / "synthetic_cell.zarr"
RUNS = OUT / "runs"
TRAIN = "configs/data/synthetic_mito_train.json"
VALIDATION = "configs/data/synthetic_mito_validation.json"
BIN = Path(sys.executable).parent


def _run(command: list[str], capture: bool = False) -> str:
    print("$ " + shlex.join(command), flush=True)
    result = subprocess.run(
        command, cwd=REPO, text=True, stdout=subprocess.PIPE if capture else None
    )
    if result.returncode != 0:
        sys.exit(f"demo: step failed (exit {result.returncode}): {shlex.join(command)}")
    return result.stdout or ""


def _completed_demo_run() -> str | None:
    for run in sorted(RUNS.glob("[0-9]*"), key=lambda p: int(p.name)):
        record = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
        if record.get("status") == "COMPLETED" and (run / "best.json").is_file():
            return run.name
    return None


def main() -> int:
    # DEMO_ITERATIONS=4 checks the mechanics in a minute (the model learns little).
    iterations = os.environ.get("DEMO_ITERATIONS")
    os.chdir(REPO)
    incasem = str(BIN / "incasem")
    if not CELL.exists():
        _run([incasem, "phantom", "--out", str(CELL), "--shape", "256", "256", "256"])
    _run(
        [
            incasem,
            "validate",
            f"{TRAIN},{VALIDATION}",
            "--data-root",
            str(OUT),
            "--num-classes",
            "2",
        ]
    )
    _run([incasem, "plot-slice", str(CELL), "--z", "40", "--labels", "volumes/labels/mito",
          "volumes/labels/er", "volumes/labels/golgi", "volumes/labels/nucleus",
          "-o", str(OUT / "synthetic_cell_z40.png")])  # fmt: skip

    run_id = _completed_demo_run()
    if run_id is None:
        overrides = [f"training.iterations={iterations}"] if iterations else []
        train = [sys.executable, "scripts/train.py", "--name", "demo_mito", "with"]
        _run([*train, "configs/demo.yaml", *overrides])
        run_id = _completed_demo_run()
    else:
        print(f"reusing the completed demo training run {RUNS / run_id}")
    best = json.loads((RUNS / run_id / "best.json").read_text())
    print(f"training run {run_id}: best validation F1 {best['value']:.3f} at iteration "
          f"{best['iteration']}, threshold {best.get('threshold') or 0.5:.3f}")  # fmt: skip

    output = _run(
        [sys.executable, "scripts/predict.py", "--run_id", run_id, "--runs_dir", str(RUNS),
         "--data", VALIDATION, "--data_root", str(OUT), "--num_workers", "2", "--log_metrics",
         "--no-progress", "--json"],
        capture=True,
    )  # fmt: skip
    result = json.loads(output[output.index("{") :])
    entry = result["entries"][0]
    scores = entry["scores"]
    probabilities = next(d for d in entry["datasets"] if d.endswith("class_1"))
    segmentation = next(d for d in entry["datasets"] if d.endswith("segmentation"))
    png = OUT / f"prediction_{result['prediction_id']}_z216.png"
    _run([incasem, "plot-slice", str(CELL), "--z", "216", "--probabilities", probabilities,
          "--labels", "volumes/labels/mito", segmentation, "-o", str(png)])  # fmt: skip
    print(
        f"\nheld-out slab {entry['name']} at threshold {result['threshold']:.3f} "
        f"({result['threshold_origin']}): F1 {scores['f1']:.3f}, precision "
        f"{scores['precision']:.3f}, recall {scores['recall']:.3f}, IoU {scores['iou']:.3f} "
        f"({entry['voxels_per_second'] / 1e3:.0f} k voxels/s with 2 workers)\n"
        f"prediction: {CELL}/{entry['group']}\npicture: {png}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
