"""Does a prediction worker overlap reading, computing and writing? Measured with the real worker.

The worker's own `BlockProcessor` (read: zarr + mirror + normalise; write: classify, quantise,
compress, zarr) and its own loop (`incasem.blockwise.worker.serve`) process the blocks of a real
zarr volume, handed out by the engine every blockwise job runs on (`incasem.blockwise.run_job`)
to one worker process (`predict_overlap_worker.py`). Only the network is a stand-in whose
forward pass takes a fixed time (it sleeps, as a GPU's forward does for the host thread that
waits on it), so that compute can be set equal to the I/O, the case where overlap matters most.

Rows: read, compute and write each alone (summed over the blocks of the sequential run, where
nothing overlaps), the blocks strictly one after another (``read_ahead=0, write_behind=0``), and
overlapped (one block read ahead, one written behind, the worker's default). Overlapped should
approach max(read, compute, write) instead of the sum. Sizes are voxels (z, y, x). Example (the
committed result)::

    PYTHONPATH=. python benchmarks/predict_overlap.py --shape 192 384 384 \\
        --out benchmarks/results/predict_overlap.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from incasem.atomic import write_json
from incasem.blockwise import BlockwiseJob, run_job
from incasem.io import create_array, open_array
from incasem.io.data_config import DataEntry
from incasem.launch import ModuleWorker
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import EntryOutputs
from incasem.predict.worker import WorkerSpec
from incasem.torch.checkpoint import DEFAULT_NORMALISATION

HERE = Path(__file__).resolve().parent
VOXEL_SIZE = (5, 5, 5)
FACTORS = [[2, 2, 2]] * 3


def make_spec(folder: Path, shape: Sequence[int], input_size: int) -> WorkerSpec:
    """A new ``shape``-voxel volume in ``folder``, its prediction outputs, and the spec of a
    worker that predicts it."""
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
    return WorkerSpec(
        checkpoint="", checkpoint_sha256="", device="cpu", gpus=None, threads=1,
        deterministic=False, entry=entry.model_dump(), data_root=None,
        layout=layout.describe(), normalisation=dict(DEFAULT_NORMALISATION),
        output_container=str(container), probabilities=list(outputs.probabilities),
        segmentation=outputs.segmentation, probability_dtype="uint8", threshold=0.5,
        metrics_dir=None,
    )  # fmt: skip


def _run(folder: Path, spec: WorkerSpec, compute_s: float, depth: int) -> dict[str, Any]:
    """One job over the whole volume, one worker; returns its stage times (`StageTimes`)."""
    for dataset in [*spec.probabilities, spec.segmentation]:  # empty outputs
        array = open_array(spec.output_container, dataset, "r+")
        array[array.roi] = 0
    spec_path, times = folder / "spec.json", folder / "times.json"
    spec.save(spec_path)
    entry = DataEntry(**spec.entry)
    layout = BlockLayout.from_description(spec.layout)
    job = BlockwiseJob(
        name="overlap",
        total_roi=layout.total_read_roi(entry.roi),
        read_roi=layout.block_read_roi,
        write_roi=layout.block_write_roi,
        fit="overhang",
        num_workers=1,
        timeout_s=3600,
        max_retries=0,
    )
    args = {"spec": str(spec_path), "compute_s": compute_s, "depth": depth, "times": str(times)}
    worker = ModuleWorker("predict_overlap_worker", (json.dumps(args),))
    if str(HERE) not in sys.path:  # the worker imports its module from here (daisy copies it)
        sys.path.insert(0, str(HERE))
    outcome = run_job(job, worker, folder / "logs", progress=False)
    if outcome.error or outcome.state.completed_count != outcome.state.total_block_count:
        raise RuntimeError(f"the benchmark's job failed: {outcome.error} (logs in {folder})")
    return json.loads(times.read_text())


def measure(
    folder: Path, shape: Sequence[int], input_size: int, compute_s: float | None = None
) -> dict[str, Any]:
    """Stage times alone, sequential and overlapped, in seconds over all blocks.

    ``compute_s`` is the stand-in forward time per block; default: the read + write time per
    block of a first run without compute (compute equal to the I/O).
    """
    spec = make_spec(folder, shape, input_size)
    if compute_s is None:
        io = _run(folder, spec, 0.0, 0)
        compute_s = (io["read"] + io["write"]) / io["blocks"]
    sequential = _run(folder, spec, compute_s, 0)
    overlapped = _run(folder, spec, compute_s, 1)
    read, compute, write = (sequential[stage] for stage in ("read", "compute", "write"))
    return {
        "shape_voxels": list(shape),
        "input_size_voxels": [input_size] * 3,
        "write_shape_voxels": list(BlockLayout.from_description(spec.layout).write_shape),
        "blocks": sequential["blocks"],
        "compute_s_per_block": compute_s,
        "alone_s": {"read": read, "compute": compute, "write": write},
        "sum_alone_s": read + compute + write,
        "max_alone_s": max(read, compute, write),
        "sequential_s": sequential["wall"],
        "overlapped_s": overlapped["wall"],
        "overlapped_over_sequential": overlapped["wall"] / sequential["wall"],
        "overlapped_over_max_alone": overlapped["wall"] / max(read, compute, write),
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
