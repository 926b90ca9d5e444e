"""Peak memory and speed of ``incasem convert tiff-to-zarr`` on a generated TIFF stack.

The claim to check is that conversion memory depends on the block size (``--block-mb``) and the
number of workers, not on the stack: run it on stacks of different sizes and compare. The
command runs as a subprocess while this script samples the resident memory of its whole process
tree (driver and daisy workers) from /proc every 20 ms, so workers are counted too.

    python benchmarks/convert_memory.py --sections 512 --size 2048 --block-mb 64 --workers 1 2

prints one line per run: stack size, peak tree RSS, wall time and throughput (stack MB / s).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def _tree_rss_mb(pid: int) -> float:
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
        except (OSError, StopIteration):
            continue
        pending.extend(_children(current))
    return total


def _write_stack(directory: Path, sections: int, size: int) -> float:
    """A gray stack with texture (compresses like EM data, not like zeros); returns its MB."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for z in range(sections):
        section = ((xx + yy + 3 * z) % 256).astype(np.uint8)
        section ^= rng.integers(0, 16, (size, size), dtype=np.uint8)
        tifffile.imwrite(directory / f"s_{z}.tif", section)
    return sections * size * size / 2**20


def _measure(command: list[str]) -> tuple[float, float]:
    """Peak resident MB of the command's process tree, and its wall time in s."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_mb(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(err.decode()[-2000:])
    return peak, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=256, help="z sections")
    parser.add_argument("--size", type=int, default=2048, help="section edge, voxels")
    parser.add_argument("--block-mb", type=float, default=64, help="--block-mb of the command")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="runs to make")
    parser.add_argument("--scratch", help="folder for the stack and outputs (default: a temp dir)")
    args = parser.parse_args()

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="incasem-convert-bench-"))
    stack_mb = _write_stack(scratch / "stack", args.sections, args.size)
    idle_mb, _ = _measure([sys.executable, "-c", "import incasem.prepare.convert, time"])
    print(f"stack {stack_mb:.0f} MB ({args.sections} x {args.size} x {args.size} uint8); "
          f"a Python process with incasem's imports: {idle_mb:.0f} MB")  # fmt: skip
    for workers in args.workers:
        output = scratch / f"out_{workers}.zarr"
        shutil.rmtree(output, ignore_errors=True)
        command = [sys.executable, "-m", "incasem.cli.main", "convert", "tiff-to-zarr"]
        command += [str(scratch / "stack"), "-o", str(output), "-d", "volumes/raw"]
        command += ["--resolution", "5", "5", "5", "--block-mb", str(args.block_mb)]
        command += ["--workers", str(workers)]
        peak_mb, seconds = _measure(command)
        print(
            f"workers {workers}: peak RSS of all processes {peak_mb:.0f} MB, "
            f"{seconds:.1f} s, {stack_mb / seconds:.0f} MB/s"
        )
    if not args.scratch:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
