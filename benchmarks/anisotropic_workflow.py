"""The serial-section workflow of the README, timed on the whole CDeep3M volume.

``../shared/data/cdeep3m_mito_train.zarr`` (SBEM of brain, 20 sections of 1024 x 1024 at
40 x 5.9 x 5.9 nm, mitochondria labelled) is written as a stack of unpadded TIFF names, as a
microscope gives it, and taken through every step with no hand-set sizes or factors:
convert -> equalize -> mask -> metric-mask -> plan -> train (``--minutes``) -> predict with auto
blocks -> evaluate. Training uses sections 0-13, validation and scoring sections 14-19.

Writes ``<out>.json`` and ``<out>.md`` (step, command, seconds, what it printed that matters).
Run from the repository root on an otherwise idle machine::

    python benchmarks/anisotropic_workflow.py --minutes 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cdeep3m_mito_train.zarr"


def _run(step: str, command: list[str], cwd: Path, log: list[dict]) -> str:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{step} failed:\n{result.stderr[-3000:]}")
    shown = " ".join(Path(c).name if os.sep in c else c for c in command)
    log.append({"step": step, "command": shown, "seconds": round(seconds, 1)})
    print(f"{step}: {seconds:.1f} s", flush=True)
    return result.stdout + "\n" + result.stderr


def _write_stack(folder: Path, volume: np.ndarray) -> None:
    folder.mkdir()
    for index, section in enumerate(volume, start=1):
        tifffile.imwrite(folder / f"slice_{index}.tif", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="training budget")
    parser.add_argument("--out", default="benchmarks/results/anisotropic_workflow")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="incasem_sbem_"))
    incasem = [sys.executable, "-m", "incasem.cli.main"]
    log: list[dict] = []
    notes: dict[str, str] = {}
    source = zarr.open(str(DATA), mode="r")
    _write_stack(work / "raw", source["volumes/raw"][:])
    _write_stack(work / "labels", source["volumes/labels/mitochondria"][:])

    _run("convert", [*incasem, "convert", "tiff-to-zarr", "raw", "labels", "-o", "cell.zarr",
                     "-d", "volumes/raw", "volumes/labels/mito", "--resolution", "40", "5.9",
                     "5.9", "--workers", "2"], work, log)  # fmt: skip
    _run("equalize", [*incasem, "equalize", "cell.zarr", "--workers", "2", "--no-progress"],
         work, log)  # fmt: skip
    said = _run("mask (default bounds)", [*incasem, "mask", "cell.zarr", "-d",
                "volumes/raw_equalized_0.02", "--workers", "2"], work, log)  # fmt: skip
    notes["mask (default bounds)"] = next(line for line in said.splitlines() if "keeps" in line)
    said = _run("mask (--max 256)", [*incasem, "mask", "cell.zarr", "-d",
                "volumes/raw_equalized_0.02", "--workers", "2", "--max", "256", "--overwrite"],
                work, log)  # fmt: skip
    notes["mask (--max 256)"] = next(line for line in said.splitlines() if "keeps" in line)
    _run("metric-mask", [*incasem, "metric-mask", "cell.zarr", "-d", "volumes/labels/mito",
                         "--organelle", "mito", "--workers", "2"], work, log)  # fmt: skip
    entry = {"file": "cell.zarr", "voxel_size": [40, 6, 6], "raw": "volumes/raw_equalized_0.02",
             "labels": {"volumes/labels/mito": 1}, "mask": "volumes/mask"}  # fmt: skip
    (work / "train.json").write_text(
        json.dumps({"train": {**entry, "offset": [0, 0, 0], "shape": [14, 1024, 1024]}})
    )
    validation = {**entry, "offset": [14, 0, 0], "shape": [6, 1024, 1024],
                  "metric_masks": ["volumes/metric_masks/mito"]}  # fmt: skip
    (work / "validation.json").write_text(json.dumps({"val": validation}))
    notes["plan"] = _run("plan", [*incasem, "plan", "train.json", "--num-fmaps", "8"], work, log)
    _run("train", [sys.executable, str(REPO / "scripts" / "train.py"), "with",
                   "training.data=train.json", "validation.data=validation.json",
                   "directories.data=.", "directories.runs=runs", "data.voxel_size=[40,6,6]",
                   "model.num_fmaps=8", "model.downsample_factors=auto",
                   "training.input_size_voxels=auto", "training.output_size_voxels=auto",
                   "training.iterations=100000", f"training.max_minutes={args.minutes}",
                   "training.optimizer.lr=5e-4", "training.optimizer.schedule=cosine",
                   "training.optimizer.warmup_iterations=50", "training.save_every=100",
                   "validation.validate_every=100"], work, log)  # fmt: skip
    best = json.loads((work / "runs" / "1" / "best.json").read_text())
    notes["train"] = f"best.json: {best}"
    said = _run("predict (auto blocks)", [*incasem, "predict", "--run_id", "1", "--data",
                "validation.json", "--data_root", ".", "--input_size", "auto", "--device", "cpu",
                "--num_workers", "2", "--no-progress", "--json"], work, log)  # fmt: skip
    result = json.loads(said[said.index("{") : said.rindex("}") + 1])
    layout = zarr.open(str(work / "cell.zarr"), mode="r")[result["group"]].attrs[
        "incasem_prediction"
    ]["layout"]
    notes["predict (auto blocks)"] = f"layout {layout}"
    probabilities = result["entries"][0]["datasets"][1]
    said = _run("evaluate", [*incasem, "evaluate", "cell.zarr", "--prediction", probabilities,
                "--truth", "volumes/labels/mito", "--threshold", str(result["threshold"]),
                "--mask", "volumes/metric_masks/mito", "--no-progress"], work, log)  # fmt: skip
    notes["evaluate"] = said.strip().splitlines()[-1] if said.strip() else ""

    report = {
        "benchmark": "anisotropic_workflow",
        "data": str(DATA.relative_to(REPO.parent)),
        "measured": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "training_minutes": args.minutes,
        "steps": log,
        "notes": notes,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Serial-section workflow on CDeep3M mitochondria (20 x 1024 x 1024, 40 x 5.9 x 5.9 nm)",
        "",
        f"{report['measured']}, {report['cores']} cores, training budget {args.minutes} min. "
        "Command: `python benchmarks/anisotropic_workflow.py --minutes "
        f"{args.minutes:g} --out {args.out}`.",
        "",
        "| step | seconds | command |",
        "|---|---|---|",
        *[f"| {s['step']} | {s['seconds']} | `{s['command']}` |" for s in log],
        "",
        *[f"- **{k}**: {v.strip()}" for k, v in notes.items() if k != "plan"],
        "",
        "```",
        notes["plan"].strip(),
        "```",
    ]
    out.with_name(out.name + ".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json and .md")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
