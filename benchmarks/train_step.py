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

Prints a table and writes it as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import gunpowder as gp
import torch

from incasem.io.phantom import write_cell
from incasem.torch.loss import MaskedBalancedCrossEntropy
from incasem.torch.models import output_shape
from incasem.training.config import parse_config
from incasem.training.loop import build_model, check_training_config, seed_everything


def _pure_step_seconds(config, iterations: int, warmup: int) -> list[float]:
    seed_everything(0)
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss = MaskedBalancedCrossEntropy()
    shape = config.training.input_size_voxels
    out = config.training.output_size_voxels
    raw = torch.rand(1, 1, *shape) * 2 - 1
    labels = (torch.rand(1, *out) > 0.8).long()
    scales = torch.ones(1, *out)
    times = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        value = loss(model(raw), labels, scales)
        value.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _batch_seconds(pipeline, request, iterations: int, warmup: int, clock) -> list[float]:
    """Seconds (by ``clock``) of each of ``iterations`` batches after ``warmup`` batches."""
    times = []
    with gp.build(pipeline):
        for i in range(warmup + iterations):
            start = clock()
            pipeline.request_batch(request)
            if i >= warmup:
                times.append(clock() - start)
    return times


def _preparation_cpu_seconds(config, iterations: int, warmup: int) -> list[float]:
    from incasem.pipeline import TrainingKeys, batch_pipeline, training_request

    data = check_training_config(config)
    seed_everything(0)
    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline = batch_pipeline(config, data.train, keys, data_root=config.directories.data)
    return _batch_seconds(pipeline, request, iterations, warmup, time.process_time)


def _pipeline_seconds(config, run_dir: Path, iterations: int, warmup: int) -> list[float]:
    from incasem.pipeline import TrainingKeys, training_pipeline, training_request

    data = check_training_config(config)
    seed_everything(0)
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline, _ = training_pipeline(
        config,
        data.train,
        model,
        MaskedBalancedCrossEntropy(),
        optimizer,
        keys,
        request,
        run_dir,
        data_root=config.directories.data,
    )
    return _batch_seconds(pipeline, request, iterations, warmup, time.perf_counter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmaps", type=int, default=8)
    parser.add_argument("--input", type=int, default=124, help="input edge, voxels")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--precache-workers", type=int, default=1, help="batch-preparing processes (default 1)"
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
                "precache": {"num_workers": args.precache_workers},
            },
            "model": {"num_fmaps": args.fmaps},
        }
    )
    preparation = _preparation_cpu_seconds(config, args.iterations, args.warmup)
    pure = _pure_step_seconds(config, args.iterations, args.warmup)
    pipeline = _pipeline_seconds(config, work / "run", args.iterations, args.warmup)
    result = {
        "fmaps": args.fmaps,
        "input_voxels": [edge] * 3,
        "output_voxels": out,
        "iterations": args.iterations,
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "precache_workers": args.precache_workers,
        "preparation_cpu_s_median": statistics.median(preparation),
        "pure_step_s_median": statistics.median(pure),
        "pipeline_s_median": statistics.median(pipeline),
        "pure_step_s_mean": statistics.mean(pure),
        "pipeline_s_mean": statistics.mean(pipeline),
    }
    result["ratio_median"] = result["pipeline_s_median"] / result["pure_step_s_median"]
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
