"""What 16-bit inference (``--precision``) changes: probabilities, F1 and speed against float32.

Runs the real prediction (`incasem.predict.predict`, daisy workers, float32 probabilities
stored) of one checkpoint on one data config once per precision, then compares each with
float32 voxel by voxel: the largest |Δp| of the foreground probability, the fraction of voxels
whose class changes at the model's threshold, and F1 at that threshold against the labels.
Example (the committed result: a 10 nm Lucchi model on its validation crop)::

    PYTHONPATH=. python benchmarks/predict_precision.py --run-id 1 --runs-dir runs \\
        --data configs/data/lucchi_mito_validation_10nm.json --data-root data \\
        --precisions float32 bfloat16 --out benchmarks/results/predict_precision_cpu.json

Speed is the median forward pass of one block of the training input size on all cores. On this
2-core CPU bfloat16 autocast is 1.5-1.8x faster than float32 (148x164x164 and 196^3 blocks);
float16 has no fast 3D convolutions on CPUs (a 108^3 block: 4.8 s against 0.25 s) and did not
finish the crop in 5 minutes, so the committed CPU run leaves it out
(``--precisions float32 bfloat16``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from incasem.io import open_array
from incasem.predict import predict
from incasem.predict.settings import PRECISIONS


def _run(args: argparse.Namespace, precision: str, output: Path) -> dict[str, Any]:
    model = (
        {"checkpoint": args.checkpoint}
        if args.checkpoint
        else {"run_id": args.run_id, "runs_dir": args.runs_dir, "iteration": "best"}
    )
    result = predict(
        **model, data=args.data, data_root=args.data_root,
        output=str(output), probabilities="float32", precision=precision,
        num_workers=args.workers, log_metrics=True, progress=False, device=args.device,
    )  # fmt: skip
    entry = result.entries[0]
    probabilities = open_array(entry.container, entry.datasets[1])
    return {
        "probabilities": probabilities[probabilities.roi],
        "f1": entry.scores["f1"],
        "iou": entry.scores["iou"],
        "threshold": result.threshold,
        "seconds": entry.seconds,
        "voxels_per_second": entry.voxels_per_second,
    }


def _forward_seconds(model: Any, card: Any, device: str, precision: str, repeats: int = 3) -> float:
    """Median seconds of one forward pass (`forward_block`) of a block of the training input
    size, on all cores: the network's own speed, without worker start-up."""
    import torch

    from incasem.predict.block import forward_block
    from incasem.predict.geometry import BlockLayout

    size = card.input_size_voxels
    layout = BlockLayout.for_network(size, card.voxel_size, model.downsample_factors)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size).astype(np.float32))
    times = []
    for _ in range(repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        forward_block(model, x, layout.block_write_roi, layout, device, precision)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def _load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    from incasem.predict.checkpoints import resolve_checkpoint
    from incasem.torch.checkpoint import load_checkpoint

    loaded = load_checkpoint(
        resolve_checkpoint(args.checkpoint, args.run_id, "best", args.runs_dir).path
    )
    return loaded.model.to(args.device).eval(), loaded.card


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One row per precision: Δp and class changes against float32, F1, speed."""
    rows: dict[str, Any] = {}
    model, card = _load_model(args)
    with tempfile.TemporaryDirectory() as folder:
        reference = None
        for precision in args.precisions:
            run = _run(args, precision, Path(folder) / f"{precision}.zarr")
            if reference is None:
                reference = run
            p, p32 = run["probabilities"], reference["probabilities"]
            threshold = reference["threshold"]
            rows[precision] = {
                "max_abs_dp": float(np.abs(p - p32).max()),
                "mean_abs_dp": float(np.abs(p - p32).mean()),
                "class_changed_fraction": float(((p >= threshold) != (p32 >= threshold)).mean()),
                "f1": run["f1"],
                "delta_f1": run["f1"] - reference["f1"],
                "iou": run["iou"],
                "seconds": run["seconds"],
                "forward_s": _forward_seconds(model, card, args.device, precision),
                "voxels_per_second": run["voxels_per_second"],
            }
    return {
        "checkpoint": args.checkpoint or f"{args.runs_dir}/{args.run_id} (best)",
        "data": args.data,
        "device": args.device,
        "workers": args.workers,
        "threshold": reference["threshold"] if reference else None,
        "rows": rows,
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| precision | max \\|Δp\\| | mean \\|Δp\\| | class changed | F1 | ΔF1 | forward s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['max_abs_dp']:.4f} | {r['mean_abs_dp']:.5f} | "
            f"{100 * r['class_changed_fraction']:.3f} % | {r['f1']:.4f} | {r['delta_f1']:+.4f} | "
            f"{r['forward_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="checkpoint file (.pt)")
    model.add_argument("--run-id", type=int, help="training run whose best checkpoint to use")
    parser.add_argument("--runs-dir", default="runs", help="with --run-id: the runs folder")
    parser.add_argument("--data", required=True, help="data config with labels")
    parser.add_argument("--data-root", default=None, help="folder data-config paths are under")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--workers", type=int, default=1, help="prediction workers")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="float32 first (the reference)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON result (and .md table)")
    args = parser.parse_args(argv)
    result = measure(args)
    print(_table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(_table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
