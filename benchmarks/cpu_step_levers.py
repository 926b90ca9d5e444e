"""Memory layout of the 3D U-Net on a CPU: torch's default (contiguous) against channels-last.

The forward pass and the training step (forward, cross entropy, backward, Adam) on random
tensors, in both layouts; `incasem.torch.models.place_model` chooses channels-last
(``torch.channels_last_3d``) on a CPU because of these numbers. The other CPU speed lever found
with it, validating with blocks of the training input's size, is measured in the real training
loop in ``benchmarks/results/lucchi_levers_6min.md`` (3.43 against 2.46 s per iteration).

    python benchmarks/cpu_step_levers.py --out benchmarks/results/cpu_step_levers

Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

#: (fmaps, input edge in voxels, training step?) measured.
CASES = ((8, 164, True), (8, 164, False), (32, 124, False))


def _seconds(fmaps: int, edge: int, channels_last: bool, train: bool, repeats: int) -> float:
    """Median seconds of one forward pass or training step of a batch of one."""
    from incasem.torch.models import ASEMUNet, initialise_weights

    torch.manual_seed(0)
    model = initialise_weights(ASEMUNet(num_fmaps=fmaps))
    if channels_last:
        model.channels_last = True
        model = model.to(memory_format=torch.channels_last_3d)
    x = torch.randn(1, 1, edge, edge, edge)
    target = torch.randint(0, 2, (1, *model.output_shape((edge, edge, edge))))
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> None:
        if train:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)

    step()  # first call: oneDNN picks its kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layouts(repeats: int) -> list[dict]:
    """One row per case: seconds in both layouts and the speed-up."""
    rows = []
    for fmaps, edge, train in CASES:
        row = {"fmaps": fmaps, "input_edge": edge, "step": "train" if train else "forward"}
        for name, channels_last in (("contiguous_s", False), ("channels_last_s", True)):
            row[name] = _seconds(fmaps, edge, channels_last, train, repeats)
        row["speedup"] = row["contiguous_s"] / row["channels_last_s"]
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.machine()


def _markdown(result: dict) -> str:
    lines = [
        "# Memory layout of the U-Net on a CPU",
        "",
        f"{result['cpu']}, {result['torch_threads']} torch threads, torch {result['torch']}; "
        f"measured {result['updated']}. Command: `{result['command']}`. Median seconds over "
        f"{result['repeats']} repeats, random tensors, batch of one.",
        "",
        "| fmaps | input | step | contiguous | channels-last | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["layouts"]:
        lines.append(
            f"| {row['fmaps']} | {row['input_edge']}³ | {row['step']} | "
            f"{row['contiguous_s']:.2f} | {row['channels_last_s']:.2f} | {row['speedup']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("cpu_step_levers"))
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    result = {
        "benchmark": "cpu_step_levers",
        "command": " ".join(["python benchmarks/cpu_step_levers.py", *sys.argv[1:]]),
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "layouts": layouts(args.repeats),
        "updated": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(result))
    print(f"wrote {args.out}.json and .md")


if __name__ == "__main__":
    main()
