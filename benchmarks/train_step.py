"""Seconds per training iteration: the full gunpowder pipeline vs the bare model step.

The pipeline (reading, sampling, augmentation, balancing, PreCache) must not be the bottleneck:
its time per iteration should be close to that of the same model's forward + backward + Adam step
on random tensors of the same shapes (target ratio <= 1.05). Runs on the synthetic cell (made if
missing) or any data config.

Also measured: the CPU seconds one process spends preparing a batch (`batch_pipeline` alone, no
model). Batches are prepared in ``precache.num_workers`` processes while the model trains, so
on a GPU the pipeline keeps up when ``num_workers >= preparation CPU s / GPU step s``; on a
CPU-only machine preparation competes with the model for the same cores and adds its CPU time
divided by the core count.

    python benchmarks/train_step.py --fmaps 8 --input 124 --iterations 20

On a GPU, give the device and the worker counts to compare:

    python benchmarks/train_step.py --device cuda --fmaps 32 --input 204 \
        --precache-workers 1 4 8 12

Prints a table and writes it as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gunpowder as gp
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from incasem.gunpowder import threads_per_worker
from incasem.phantom import write_cell
from incasem.torch.loss import MaskedBalancedCrossEntropy
from incasem.torch.models import output_shape, place_model
from incasem.training.config import parse_config
from incasem.training.loop import (
    build_model,
    build_optimizer,
    check_training_config,
    configure_device,
    seed_everything,
)


def _pure_step_seconds(config, iterations: int, warmup: int, raw_dtype) -> list[float]:
    """The model step alone, doing what gunpowder's Train node does per batch: NumPy arrays (raw
    in the pipeline's dtype) to tensors on the device, forward, loss, backward, optimizer step,
    loss back to the host."""
    seed_everything(0)
    device = config.torch.device
    configure_device(device)
    model = place_model(build_model(config), device).train()
    optimizer = build_optimizer(config, model)
    loss = MaskedBalancedCrossEntropy(config.loss.weight)
    shape = config.training.input_size_voxels
    out = config.training.output_size_voxels
    rng = np.random.default_rng(0)
    batches = [
        (
            rng.uniform(-1, 1, shape).astype(raw_dtype),
            (rng.random(out) > 0.8).astype(np.uint8),
            np.ones(out, np.float32),
        )
        for _ in range(2)
    ]
    times = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        raw, labels, scales = (torch.as_tensor(a, device=device) for a in batches[i % 2])
        optimizer.zero_grad()
        value = loss(model(raw[None, None]), labels[None], scales[None])
        value.backward()
        optimizer.step()
        value.item()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _batch_seconds(pipeline, request, iterations: int, warmup: int, clock, waited=None):
    """Seconds (by ``clock``) of each of ``iterations`` batches after ``warmup`` batches, the
    seconds of each spent waiting for a prepared batch (by the ``waited`` counter, a callable
    returning seconds so far; zeros without it), and the last batch."""
    times, waits = [], []
    with gp.build(pipeline):
        for i in range(warmup + iterations):
            start, waited_before = clock(), waited() if waited else 0.0
            batch = pipeline.request_batch(request)
            if i >= warmup:
                times.append(clock() - start)
                waits.append((waited() if waited else 0.0) - waited_before)
    return times, waits, batch


def _preparation_cpu_seconds(config, iterations: int, warmup: int, threads: int):
    """CPU seconds per batch of `batch_pipeline` in this process, limited to ``threads`` as a
    PreCache worker is; and the dtype of raw in the batch."""
    from incasem.pipeline import TrainingKeys, batch_pipeline, training_request

    data = check_training_config(config)
    seed_everything(0)
    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline = batch_pipeline(config, data.train, keys, data_root=config.directories.data)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            times, _, batch = _batch_seconds(
                pipeline, request, iterations, warmup, time.process_time
            )
    finally:
        torch.set_num_threads(before)
    return times, batch[keys.raw].data.dtype


def _pipeline_seconds(config, run_dir: Path, iterations: int, warmup: int):
    """Seconds per training iteration of the whole pipeline, and the seconds of each spent
    waiting for the prepared batch (in `Prefetch`; zero without it)."""
    from incasem.pipeline import TrainingKeys, training_pipeline, training_request

    data = check_training_config(config)
    seed_everything(0)
    configure_device(config.torch.device)
    model = place_model(build_model(config), config.torch.device).train()
    optimizer = build_optimizer(config, model)
    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline, _, prefetch = training_pipeline(
        config,
        data.train,
        model,
        MaskedBalancedCrossEntropy(config.loss.weight),
        optimizer,
        keys,
        request,
        run_dir,
        data_root=config.directories.data,
    )
    waited = (lambda: prefetch.waited_s) if prefetch else None
    times, waits, _ = _batch_seconds(
        pipeline, request, iterations, warmup, time.perf_counter, waited
    )
    return times, waits


def _report(stage: str, times: list[float]) -> None:
    """One line per finished stage on stderr, so a long run shows where it is."""
    print(
        f"{time.strftime('%H:%M:%S')} {stage}: median {statistics.median(times):.3f} s "
        f"over {len(times)}",
        file=sys.stderr,
        flush=True,
    )


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmaps", type=int, default=8)
    parser.add_argument("--input", type=int, default=124, help="input edge, voxels")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--precache-workers",
        type=int,
        nargs="+",
        default=[1],
        help="batch-preparing processes; several values time the pipeline once for each",
    )
    parser.add_argument(
        "--prefetch",
        choices=["on", "off", "both"],
        default="on",
        help="time the pipeline with the Prefetch node, without it, or both (default on)",
    )
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=None,
        help="torch/BLAS threads per batch-preparing process (default: its share of the cores)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or a GPU index")
    parser.add_argument(
        "--prep-iterations",
        type=int,
        default=None,
        help="batches timed for the preparation CPU time (default: --iterations)",
    )
    parser.add_argument("--data", help="training data config (default: the synthetic cell)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/train_step.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="incasem_train_step_"))
    data, data_root = args.data, args.data_root
    if data is None:
        write_cell(work / "synthetic_cell.zarr", shape=(192, 192, 192))
        data = work / "synthetic_bench.json"
        data.write_text(
            json.dumps(
                {
                    "synthetic_bench": {
                        "file": "synthetic_cell.zarr",
                        "offset": [0, 0, 0],
                        "shape": [192, 192, 192],
                        "voxel_size": [5, 5, 5],
                        "raw": "volumes/raw",
                        "labels": {"volumes/labels/mito": 1},
                    }
                }
            )
        )
        data_root = work
    edge = args.input
    out = list(output_shape((edge, edge, edge)))
    config = parse_config(
        {
            "directories": {"data": str(data_root or "."), "runs": str(work / "runs")},
            "training": {
                "data": str(data),
                "input_size_voxels": [edge] * 3,
                "output_size_voxels": out,
                "snapshot": {"every": 10**9},
                "profiling_stats": {"every": 10**9},
            },
            "model": {"num_fmaps": args.fmaps},
            "torch": {"device": args.device},
        }
    )
    worker_threads = args.worker_threads or threads_per_worker(max(args.precache_workers))
    preparation, raw_dtype = _preparation_cpu_seconds(
        config, args.prep_iterations or args.iterations, args.warmup, worker_threads
    )
    _report(f"preparation CPU s ({worker_threads} threads)", preparation)
    pure = _pure_step_seconds(config, args.iterations, args.warmup, raw_dtype)
    _report("pure step", pure)
    pipelines, handovers = {}, {}
    prefetch_values = {"on": [True], "off": [False], "both": [False, True]}[args.prefetch]
    for workers in args.precache_workers:
        for prefetch in prefetch_values:
            precache = config.training.precache.model_copy(
                update={
                    "num_workers": workers,
                    "prefetch": prefetch,
                    "num_threads": args.worker_threads,
                }
            )
            variant = config.model_copy(
                update={"training": config.training.model_copy(update={"precache": precache})}
            )
            pipelines[workers, prefetch], handovers[workers, prefetch] = _pipeline_seconds(
                variant, work / f"run_{workers}_{prefetch}", args.iterations, args.warmup
            )
            _report(
                f"pipeline, {workers} workers, prefetch {prefetch}", pipelines[workers, prefetch]
            )
    best = min(pipelines, key=lambda variant: statistics.median(pipelines[variant]))
    result = {
        "fmaps": args.fmaps,
        "input_voxels": [edge] * 3,
        "output_voxels": out,
        "iterations": args.iterations,
        "device": _device_name(config.torch.device),
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "worker_threads": worker_threads,
        "raw_dtype": str(np.dtype(raw_dtype)),
        "preparation_cpu_s_median": statistics.median(preparation),
        "pure_step_s_median": statistics.median(pure),
        "pure_step_s_mean": statistics.mean(pure),
        "pipelines": [
            {
                "precache_workers": workers,
                "prefetch": prefetch,
                "pipeline_s_median": statistics.median(times),
                "pipeline_s_mean": statistics.mean(times),
                "handover_s_median": statistics.median(handovers[workers, prefetch]),
                "ratio_median": statistics.median(times) / statistics.median(pure),
                "ratio_mean": statistics.mean(times) / statistics.mean(pure),
            }
            for (workers, prefetch), times in pipelines.items()
        ],
        "precache_workers": best[0],
        "prefetch": best[1],
        "pipeline_s_median": statistics.median(pipelines[best]),
        "ratio_median": statistics.median(pipelines[best]) / statistics.median(pure),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
