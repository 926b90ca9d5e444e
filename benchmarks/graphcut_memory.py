"""Peak memory and time of graph-cut annotation on a 512³ ROI (voxel cut, blockwise).

The 512³ volume is the 256³ synthetic cell mirrored once along each axis (raw and mitochondria
label), so generating it takes seconds; strokes are simulated on 3 planes per axis. The cut runs
as ``incasem annotate graphcut`` in a subprocess while this script samples, from /proc every
50 ms, the resident memory of the driver process and of its whole process tree (driver plus
daisy workers), so the numbers are the command's own, not this script's. Linux only.

    python benchmarks/graphcut_memory.py --out benchmarks/results/graphcut_memory.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from incasem.annotate import simulate_strokes
from incasem.atomic import write_atomic
from incasem.io import create_array, open_array
from incasem.metrics import scores
from incasem.phantom import generate_cell


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        pending += children
    return found


def _measure(command: list[str]) -> tuple[float, float, float]:
    """Peak RSS (MB) of the driver and of the process tree, and wall time (s)."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    driver = tree = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal driver, tree
        while not done.is_set():
            own = _rss_mb(process.pid)
            driver = max(driver, own)
            tree = max(tree, own + sum(_rss_mb(p) for p in _descendants(process.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(output.decode(errors="replace"))
    return driver, tree, time.monotonic() - start


def _mirror(data: np.ndarray) -> np.ndarray:
    return np.pad(data, [(0, s) for s in data.shape], mode="symmetric")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="phantom edge before mirroring")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, help="markdown file for the result")
    args = parser.parse_args()

    cell = generate_cell((args.size,) * 3)
    raw, truth = _mirror(cell.raw), _mirror(cell.labels["mito"])
    del cell
    seeds = simulate_strokes(truth, 3)
    seed_voxels = int(np.count_nonzero(seeds))
    with tempfile.TemporaryDirectory() as tmp:
        container = Path(tmp) / "big.zarr"
        for name, data in (("volumes/raw", raw), ("volumes/seeds/mito", seeds)):
            array = create_array(container, name, data.shape, (5, 5, 5))
            array[array.roi] = data
        del raw, seeds
        driver, tree, seconds = _measure(
            [sys.executable, "-m", "incasem.cli.main", "annotate", "graphcut", "-f",
             str(container), "--seeds", "volumes/seeds/mito", "-o", "volumes/labels/mito",
             "--workers", str(args.workers), "--no-progress"]
        )  # fmt: skip
        labels = open_array(container, "volumes/labels/mito")[:] != 0
    truth = truth != 0
    # Counts of booleans, not ConfusionCounts: its int64 copies of a 512³ ROI cost gigabytes.
    tp = int(np.count_nonzero(labels & truth))
    f1 = scores(tp, int(np.count_nonzero(labels)) - tp, int(np.count_nonzero(truth)) - tp)["f1"]
    edge = 2 * args.size
    text = (
        f"# Graph-cut annotation: memory and time on a {edge}³ ROI\n\n"
        f"ROI {edge}³ voxels (the {args.size}³ synthetic cell mirrored along each axis), "
        f"strokes on 3 planes per axis ({seed_voxels} seed voxels, "
        f"{100 * seed_voxels / edge**3:.3f} %), default settings, `--workers {args.workers}`, "
        "2-core machine shared with other jobs (times are indicative).\n\n"
        f"- wall time: {seconds:.0f} s\n"
        f"- peak RSS of the driver process: {driver:.0f} MB\n"
        f"- peak RSS of driver and workers together: {tree:.0f} MB\n"
        f"- F1 against the mirrored mitochondria label: {f1:.3f}\n"
    )
    print(text)
    if args.out:
        write_atomic(args.out, lambda tmp: tmp.write_text(text), overwrite=True)


if __name__ == "__main__":
    main()
