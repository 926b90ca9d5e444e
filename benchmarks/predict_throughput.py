"""Throughput and memory of incasem's blockwise prediction, against the model's own forward pass
and MONAI's ``sliding_window_inference``.

Why these three: the forward pass on an in-memory tensor is the ceiling (no I/O, no context
recomputed between blocks beyond what one block needs); MONAI is what most people reach for;
incasem's daisy prediction should approach the ceiling with workers and, unlike an in-memory
sliding window, keep its memory flat however large the volume. Peak memory is the resident set
of the whole process tree (workers included), sampled from /proc every 0.2 s.

The volume is generated (smooth noise, uint8) and the model has random weights: throughput does
not depend on either. Sizes are voxels (z, y, x). Example (the measured configuration)::

    PYTHONPATH=. python benchmarks/predict_throughput.py --shape 512 512 512 --fmaps 4 \\
        --input-size auto --workers 1 2 --skip monai --out bench.json

The limit is the forward pass of the largest block that fits in memory for one process (the
size ``input_size_voxels: auto`` picks for one worker), counting the voxels a block writes (its
output rounded down to the network's grid), as the daisy rows do; each daisy row reports its
fraction of it. ``--device cuda`` runs everything on GPU 0 (the daisy workers share it, so
``--workers 1 2 4`` are workers per GPU) and ``--precision`` sets the autocast of both.

MONAI is optional (``pip install .[benchmark]``); without it that row is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from funlib.geometry import Roi

from incasem.io import create_array, open_array
from incasem.predict import predict
from incasem.predict.block import forward_block, normalise
from incasem.predict.block_size import default_input_size, largest_input_shape, memory_budget
from incasem.predict.geometry import BlockLayout
from incasem.predict.settings import PRECISIONS
from incasem.torch.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from incasem.torch.models import ASEMUNet, shapes


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


class PeakTreeRSS:
    """Samples the summed RSS of this process and all its descendants; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(os.getpid())))
            time.sleep(self.interval)

    def __enter__(self) -> PeakTreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def make_volume(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A uint8 volume of smooth noise (nm voxel size 5), written slab by slab (z)."""
    array = create_array(path, "volumes/raw", shape, (5, 5, 5), (0, 0, 0), chunks=(64, 64, 64))
    rng = np.random.default_rng(seed)
    for z in range(0, shape[0], 64):
        depth = min(64, shape[0] - z)
        coarse = rng.normal(size=(depth // 8 + 1, shape[1] // 8 + 1, shape[2] // 8 + 1))
        slab = np.kron(coarse, np.ones((8, 8, 8)))[:depth, : shape[1], : shape[2]]
        slab = np.clip(128 + 40 * slab + rng.normal(0, 10, slab.shape), 0, 255)
        array[Roi((z * 5, 0, 0), (depth * 5, shape[1] * 5, shape[2] * 5))] = slab.astype(np.uint8)
    return path


def make_checkpoint(path: Path, fmaps: int, input_size: int) -> Path:
    """A checkpoint of a randomly initialised incasem U-Net with ``fmaps`` feature maps."""
    torch.manual_seed(0)
    model = ASEMUNet(num_fmaps=fmaps)
    card = ModelCard(
        hparams=model.hparams(),
        input_size_voxels=[input_size] * 3,
        output_size_voxels=list(model.output_shape([input_size] * 3)),
        voxel_size=[5, 5, 5],
        class_names=["background", "foreground"],
    )
    return save_checkpoint(path, model, card)


def auto_input_size(
    checkpoint: Path, workers: int, volume_shape: Sequence[int], device: str = "cpu"
) -> list[int]:
    """The block input (voxels) ``input_size_voxels: auto`` picks for a prediction with
    ``checkpoint`` on ``device`` ("cpu" or "cuda"): the same computation as
    `incasem.predict.plan.plan_prediction`."""
    loaded = load_checkpoint(checkpoint)
    network = loaded.model
    factors, head = network.downsample_factors, network.head_kernel_size
    minimum = default_input_size(loaded.card.output_size_voxels, factors, head)
    budget = memory_budget(device, workers)
    return largest_input_shape(budget, network.num_fmaps, factors, head, [volume_shape], minimum)


def bench_daisy(
    volume: Path,
    checkpoint: Path,
    workers: int,
    input_size: int | str,
    out: Path,
    device: str = "cpu",
    precision: str = "float32",
) -> dict:
    """Our daisy prediction of the whole volume; voxels/s over the wall time (startup included).
    On a GPU all workers share GPU 0 (``workers`` per GPU)."""
    shape = open_array(volume, "volumes/raw").shape
    label = input_size
    if input_size == "auto":
        label = f"auto ({auto_input_size(checkpoint, workers, shape, device)})"
    with PeakTreeRSS() as rss:
        started = time.monotonic()
        result = predict(
            checkpoint=str(checkpoint),
            input=str(volume),
            input_size_voxels="auto" if input_size == "auto" else [int(input_size)] * 3,
            num_workers=workers,
            device=device,
            precision=precision,
            progress=False,
            output=str(out),
        )
        wall = time.monotonic() - started
    (entry,) = result.entries
    return {
        "method": f"incasem daisy, {workers} worker(s), input {label}, {precision}",
        "voxels": int(np.prod(shape)),
        "wall_s": wall,
        "voxels_per_s": float(np.prod(shape)) / wall,
        "blocks": entry.blocks,
        "peak_rss_gb": rss.peak / 1e9,
    }


def bench_forward(
    fmaps: int,
    sizes: list[int],
    memory_fraction: float = 0.5,
    device: str = "cpu",
    precision: str = "float32",
) -> list[dict]:
    """Forward passes on in-memory tensors (`forward_block`, as the workers run them), growing
    the block while it is predicted to fit in ``memory_fraction`` of the available memory (the
    GPU's on a GPU); output voxels/s per size (GPU time synchronised)."""
    torch.manual_seed(0)
    model = ASEMUNet(num_fmaps=fmaps).to(device).eval()
    cuda = device.startswith("cuda")
    available = torch.cuda.mem_get_info()[0] if cuda else _mem_available()
    rows, bytes_per_voxel = [], None
    for size in sizes:
        if bytes_per_voxel is not None and bytes_per_voxel * size**3 > memory_fraction * available:
            break
        layout = BlockLayout.for_network([size] * 3, (5, 5, 5))
        x = torch.randn(size, size, size)
        warm = BlockLayout.for_network([108] * 3, (5, 5, 5))
        with PeakTreeRSS(0.05) as rss:
            base = _rss(os.getpid())
            forward_block(model, x[:108, :108, :108], warm.block_write_roi, warm, device, precision)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.monotonic()
            y = forward_block(model, x, layout.block_write_roi, layout, device, precision)
            seconds = time.monotonic() - started  # forward_block returns on the host: synced
        peak = torch.cuda.max_memory_allocated() if cuda else rss.peak - base
        bytes_per_voxel = max(peak, 1) / size**3
        out = int(np.prod(y.shape[1:]))
        rows.append({
            "method": f"pure forward {size}^3 -> {y.shape[1]}^3 (written), {precision}",
            "voxels": out,
            "wall_s": seconds,
            "voxels_per_s": out / seconds,
            "peak_rss_gb": rss.peak / 1e9,
            "peak_device_gb": peak / 1e9 if cuda else None,
        })  # fmt: skip
        del x, y
    return rows


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 << 30


def bench_monai(volume: Path, fmaps: int, input_size: int, overlap: float) -> dict | None:
    """MONAI sliding_window_inference over the in-memory volume.

    MONAI expects a window's output to be as large as the window, so the valid U-Net is wrapped:
    each window is mirror-padded by the network's context, then predicted (the usual way to use
    a valid-convolution network with MONAI; context comes from the mirror, not the neighbours).
    """
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        return None
    torch.manual_seed(0)
    model = ASEMUNet(num_fmaps=fmaps).eval()
    context = shapes.context()
    window = input_size - 2 * context[0]

    def predictor(x: torch.Tensor) -> torch.Tensor:
        """Probabilities of one window (batch, classes, z, y, x), the window mirror-padded."""
        padded = torch.nn.functional.pad(x, (context[0],) * 6, mode="reflect")
        return torch.softmax(model(padded), dim=1)

    array = open_array(volume, "volumes/raw")
    with PeakTreeRSS() as rss:
        started = time.monotonic()
        raw = normalise(array[array.roi], {"input_range": [0, 255], "output_range": [-1, 1]})
        with torch.no_grad():
            result = sliding_window_inference(
                torch.from_numpy(raw)[None, None], (window,) * 3, 1, predictor, overlap=overlap
            )
        wall = time.monotonic() - started
    return {
        "method": f"MONAI sliding_window_inference {window}^3, overlap {overlap}",
        "voxels": int(np.prod(result.shape[2:])),
        "wall_s": wall,
        "voxels_per_s": float(np.prod(result.shape[2:])) / wall,
        "peak_rss_gb": rss.peak / 1e9,
    }


def main() -> None:
    """Run the benchmarks given on the command line and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 512])
    parser.add_argument(
        "--memory-shape", type=int, nargs=3, default=None,
        help="a second volume (e.g. 8x larger) for the memory comparison",
    )  # fmt: skip
    parser.add_argument("--fmaps", type=int, default=12)
    parser.add_argument(
        "--input-size", default="auto", help="daisy block input edge (voxels) or 'auto'"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--forward-sizes", type=int, nargs="*", default=[],
        help="block edges for the in-memory forward pass; always also the largest that fits",
    )  # fmt: skip
    parser.add_argument("--overlap", type=float, default=0.25, help="MONAI window overlap")
    parser.add_argument("--monai-input-size", type=int, default=244, help="MONAI window + context")
    parser.add_argument("--skip", nargs="*", default=[], choices=["daisy", "forward", "monai"])
    parser.add_argument("--workdir", default=None, help="where volumes go (default: a temp dir)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (daisy workers share GPU 0)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--out", default=None, help="write the results as JSON")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="incasem-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = make_checkpoint(workdir / f"f{args.fmaps}.pt", args.fmaps, 204)
    shapes_to_run = [tuple(args.shape)] + ([tuple(args.memory_shape)] if args.memory_shape else [])
    rows: list[dict] = []
    print(f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}", flush=True)
    if args.device.startswith("cuda"):
        print(f"GPU {torch.cuda.get_device_name()}", flush=True)
    for shape in shapes_to_run:
        name = "x".join(map(str, shape))
        volume = workdir / f"volume_{name}.zarr"
        if not volume.exists():
            make_volume(volume, shape)
        for workers in args.workers if "daisy" not in args.skip else []:
            row = bench_daisy(volume, checkpoint, workers, args.input_size,
                              workdir / f"out_{name}_{workers}.zarr", args.device,
                              args.precision)  # fmt: skip
            rows.append({"shape": name, **row})
            print(json.dumps(rows[-1]), flush=True)
        if "monai" not in args.skip:
            row = bench_monai(volume, args.fmaps, args.monai_input_size, args.overlap)
            if row is not None:
                rows.append({"shape": name, **row})
                print(json.dumps(rows[-1]), flush=True)
    if "forward" not in args.skip:
        largest = auto_input_size(checkpoint, 1, [10**6] * 3, args.device)[0]
        sizes = sorted(set(args.forward_sizes) | {largest})
        for row in bench_forward(args.fmaps, sizes, 0.5, args.device, args.precision):
            rows.append({"shape": "in memory", **row})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| volume | method | voxels/s | wall s | peak RSS (tree) GB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['method']} | {r['voxels_per_s']:,.0f} | {r['wall_s']:.1f} | "
              f"{r['peak_rss_gb']:.2f} |")  # fmt: skip
    forward = [r for r in rows if r["method"].startswith("pure forward")]
    if forward:
        limit = max(forward, key=lambda r: r["voxels_per_s"])
        print(f"\nlimit: {limit['method']}, {limit['voxels_per_s']:,.0f} voxels/s")
        for r in rows:
            if r["method"].startswith("incasem"):
                r["fraction_of_limit"] = r["voxels_per_s"] / limit["voxels_per_s"]
                print(f"{r['shape']} {r['method']}: {r['fraction_of_limit']:.2f} of the limit")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
