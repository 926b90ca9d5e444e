"""Does a prediction worker overlap reading, computing and writing? Measured with the real worker.

The worker's own `BlockProcessor` (read: zarr + mirror + normalise; write: classify, quantise,
compress, zarr) and its own loop (`incasem.predict.overlap.run_blocks`) process real daisy
blocks of a real zarr volume. Only the network is a stand-in whose forward pass takes a fixed
time (it sleeps, as a GPU's forward does for the host thread that waits on it), so that compute
can be set equal to the I/O, the case where overlap matters most.

Rows: read, compute and write each alone (summed over the blocks), the blocks strictly one after
another (``read_ahead=0, write_behind=0``), and overlapped (one block read ahead, one written
behind, the worker's default). Overlapped should approach max(read, compute, write) instead of
the sum. Sizes are voxels (z, y, x). Example (the committed result)::

    PYTHONPATH=. python benchmarks/predict_overlap.py --shape 192 384 384 \\
        --out benchmarks/results/predict_overlap.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import daisy.v2 as daisy
import numpy as np
import torch
from funlib.geometry import Roi

from incasem.atomic import write_json
from incasem.io import create_array
from incasem.io.data_config import DataEntry
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import EntryOutputs
from incasem.predict.overlap import StageTimes, run_blocks
from incasem.predict.worker import BlockProcessor, WorkerSpec
from incasem.torch.checkpoint import DEFAULT_NORMALISATION
from incasem.torch.models import shapes

VOXEL_SIZE = (5, 5, 5)
FACTORS = [[2, 2, 2]] * 3


class FixedTimeNetwork(torch.nn.Module):
    """Sleeps ``seconds``, then returns logits (0, 3 x) where x is the normalised raw at each
    output voxel: real-looking probabilities, which compress like a real prediction's."""

    num_classes = 2

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        out = shapes.output_shape(tuple(x.shape[2:]), FACTORS, 3)
        begin = shapes.context(FACTORS, 3)
        crop = x[(..., *(slice(b, b + o) for b, o in zip(begin, out, strict=True)))]
        return torch.cat([torch.zeros_like(crop), 3 * crop], dim=1)


class _Lease:
    def __init__(self, scheduler: daisy.Scheduler, block: daisy.Block):
        self.scheduler, self.block = scheduler, block

    def release(self, error: BaseException | None) -> None:
        if error is not None:
            raise error
        self.block.status = daisy.BlockStatus.SUCCESS
        self.scheduler.release_block(self.block)


def _blocks(layout: BlockLayout, roi: Roi) -> tuple[daisy.Scheduler, str]:
    task = daisy.Task(
        "overlap",
        total_roi=layout.total_read_roi(roi),
        read_roi=layout.block_read_roi,
        write_roi=layout.block_write_roi,
        process_function=lambda block: None,
        read_write_conflict=False,
        fit="overhang",
    )
    return daisy.Scheduler(task), "overlap"


def _acquire(scheduler: daisy.Scheduler, task_id: str):
    def acquire() -> _Lease | None:
        block = scheduler.acquire_block(task_id)
        return None if block is None else _Lease(scheduler, block)

    return acquire


def make_processor(folder: Path, shape: Sequence[int], input_size: int) -> BlockProcessor:
    """A worker's block processor over a new ``shape``-voxel volume in ``folder``."""
    container = folder / "cell.zarr"
    rng = np.random.default_rng(0)
    noise = rng.normal(size=[s // 8 + 1 for s in shape])
    smooth = np.kron(noise, np.ones((8, 8, 8)))[tuple(slice(0, s) for s in shape)]
    raw = np.clip(128 + 40 * smooth + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)
    create_array(container, "raw", shape, VOXEL_SIZE)[:] = raw
    layout = BlockLayout.for_network([input_size] * 3, VOXEL_SIZE, FACTORS, 3)
    entry = DataEntry(name="cell", file=str(container), raw="raw", offset=[0, 0, 0],
                      shape=list(shape), voxel_size=list(VOXEL_SIZE))  # fmt: skip
    outputs = EntryOutputs.for_entry(container, "prediction", "cell", 2)
    outputs.create(entry.roi, layout, "uint8", ["background", "mito"], {"provenance_hash": ""})
    spec = WorkerSpec(
        checkpoint="", checkpoint_sha256="", device="cpu", gpus=None, threads=1,
        deterministic=False, entry=entry.model_dump(), data_root=None,
        layout=layout.describe(), normalisation=dict(DEFAULT_NORMALISATION),
        output_container=str(container), probabilities=list(outputs.probabilities),
        segmentation=outputs.segmentation, probability_dtype="uint8", threshold=0.5,
        metrics_dir=None,
    )  # fmt: skip
    return BlockProcessor(spec, FixedTimeNetwork(0.0), "cpu")


def _stage_alone(processor: BlockProcessor, stage: str) -> tuple[float, int]:
    scheduler, task_id = _blocks(processor.layout, processor.roi)
    seconds, count = 0.0, 0
    while (block := scheduler.acquire_block(task_id)) is not None:
        x = processor.read(block)
        roi = block.write_roi.intersect(processor.roi)
        result = np.zeros((2, *(roi.shape / processor.layout.voxel_size)), np.float32)
        start = time.perf_counter()
        if stage == "read":
            processor.read(block)
        elif stage == "compute":
            processor.compute(block, x)
        else:
            processor.write(block, result)
        seconds += time.perf_counter() - start
        count += 1
        block.status = daisy.BlockStatus.SUCCESS
        scheduler.release_block(block)
    return seconds, count


def _loop(processor: BlockProcessor, depth: int) -> StageTimes:
    for array in [*processor.store.probabilities, processor.store.segmentation]:  # empty outputs
        array[array.roi] = 0
    scheduler, task_id = _blocks(processor.layout, processor.roi)
    return run_blocks(_acquire(scheduler, task_id), processor.stages(), depth, depth)


def measure(
    folder: Path, shape: Sequence[int], input_size: int, compute_s: float | None = None
) -> dict[str, Any]:
    """Stage times alone, sequential and overlapped, in seconds over all blocks.

    ``compute_s`` is the stand-in forward time per block; default: the measured read + write
    time per block (compute equal to the I/O).
    """
    torch.set_num_threads(1)
    processor = make_processor(folder, shape, input_size)
    read, blocks = _stage_alone(processor, "read")
    write, _ = _stage_alone(processor, "write")
    if compute_s is None:
        compute_s = (read + write) / blocks
    processor.model.seconds = compute_s
    compute, _ = _stage_alone(processor, "compute")
    sequential = _loop(processor, 0)
    overlapped = _loop(processor, 1)
    return {
        "shape_voxels": list(shape),
        "input_size_voxels": [input_size] * 3,
        "write_shape_voxels": list(processor.layout.write_shape),
        "blocks": blocks,
        "compute_s_per_block": compute_s,
        "alone_s": {"read": read, "compute": compute, "write": write},
        "sum_alone_s": read + compute + write,
        "max_alone_s": max(read, compute, write),
        "sequential_s": sequential.wall,
        "overlapped_s": overlapped.wall,
        "overlapped_over_sequential": overlapped.wall / sequential.wall,
        "overlapped_over_max_alone": overlapped.wall / max(read, compute, write),
    }


def _table(result: dict[str, Any]) -> str:
    alone = result["alone_s"]
    rows = [
        ("read alone", alone["read"]),
        ("compute alone (stand-in network)", alone["compute"]),
        ("write alone", alone["write"]),
        ("sequential (read, compute, write per block)", result["sequential_s"]),
        ("overlapped (read ahead 1, write behind 1)", result["overlapped_s"]),
    ]
    lines = ["| | seconds |", "|---|---:|"] + [f"| {name} | {s:.2f} |" for name, s in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[192, 384, 384], help="voxels")
    parser.add_argument("--input-size", type=int, default=180, help="block input edge, voxels")
    parser.add_argument("--compute-s", type=float, default=None,
                        help="stand-in forward time per block (default: read + write)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = measure(Path(folder), args.shape, args.input_size, args.compute_s)
    if args.out:
        write_json(args.out, result)
        args.out.with_suffix(".md").write_text(_table(result) + "\n")
    print(_table(result))
    print(
        f"{result['blocks']} blocks of {result['write_shape_voxels']} voxels; overlapped / "
        f"sequential {result['overlapped_over_sequential']:.2f}, overlapped / max alone "
        f"{result['overlapped_over_max_alone']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
