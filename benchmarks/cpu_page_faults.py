"""Page faults and kernel CPU time of a training step on a CPU, per memory allocator.

The step is the 10 nm CPU recipe's (``configs/lucchi_cpu.yaml``: 8 fmaps, input 148x164x164,
output 54x70x70 voxels): forward, cross entropy, backward and Adam on random tensors, as
gunpowder's Train node runs it. Each allocator runs in a fresh process (the allocator is chosen
at process start): glibc's default; glibc told to keep freed memory (``MALLOC_MMAP_MAX_=0``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``); jemalloc and tcmalloc from Debian's packages
(``LD_PRELOAD``). The process measures itself with ``getrusage`` over the steps after the
warm-up: minor page faults per step, the kernel (system) share of its CPU time and seconds per
step (wall; other work on the machine inflates it, the fault counts much less).

    python benchmarks/cpu_page_faults.py --steps 10 --out benchmarks/results/cpu_page_faults
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = Path("/usr/lib/x86_64-linux-gnu")
#: Allocator name: environment of the process that runs the steps.
VARIANTS = {
    "glibc (default)": {"INCASEM_ALLOCATOR": "system"},
    "glibc, freed memory kept": {
        "INCASEM_ALLOCATOR": "system",
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(2**40),
        "MALLOC_TOP_PAD_": str(2**28),
    },
    "jemalloc": {"INCASEM_ALLOCATOR": "system", "LD_PRELOAD": str(LIB / "libjemalloc.so.2")},
    "tcmalloc": {"INCASEM_ALLOCATOR": "system", "LD_PRELOAD": str(LIB / "libtcmalloc.so.4")},
}


def _steps(warmup: int, steps: int) -> dict[str, float]:
    """Run the recipe's training step ``warmup + steps`` times; rusage deltas of the last
    ``steps``."""
    import numpy as np
    import torch
    import yaml

    from incasem.torch.loss import MaskedBalancedCrossEntropy
    from incasem.torch.models import place_model
    from incasem.tracking.config_layers import merge_into
    from incasem.training.config import default_config, parse_config
    from incasem.training.loop import build_model, build_optimizer, seed_everything

    recipe = yaml.safe_load((REPO / "configs" / "lucchi_cpu.yaml").read_text())
    config = parse_config(merge_into(default_config(), recipe))
    seed_everything(0)
    model = place_model(build_model(config), "cpu").train()
    optimizer = build_optimizer(config, model)
    loss = MaskedBalancedCrossEntropy(config.loss.weight)
    rng = np.random.default_rng(0)
    raw = torch.as_tensor(
        rng.uniform(-1, 1, config.training.input_size_voxels), dtype=torch.float32
    )
    out = config.training.output_size_voxels
    labels = torch.as_tensor((rng.random(out) > 0.8).astype(np.uint8))
    scales = torch.ones(out)
    for i in range(warmup + steps):
        if i == warmup:
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        optimizer.zero_grad()
        value = loss(model(raw[None, None]), labels[None], scales[None])
        value.backward()
        optimizer.step()
        value.item()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "steps": steps,
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "major_faults_per_step": (after.ru_majflt - before.ru_majflt) / steps,
        "system_share": system / (user + system),
        "user_s_per_step": user / steps,
        "system_s_per_step": system / steps,
        "wall_s_per_step": wall / steps,
        "peak_rss_gb": after.ru_maxrss / 2**20,
        "torch_threads": torch.get_num_threads(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
    }


def main() -> None:
    """Run every variant in its own process and write ``<out>.json`` and ``<out>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/cpu_page_faults")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_steps(args.warmup, args.steps)))
        return
    results = {}
    for name in args.variants:
        env = {**os.environ, **VARIANTS[name]}
        command = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
        command += ["--warmup", str(args.warmup)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[name] = {**json.loads(done.stdout.splitlines()[-1]), "env": VARIANTS[name]}
        r = results[name]
        print(
            f"{name}: {r['minor_faults_per_step']:.0f} minor faults/step, system "
            f"{100 * r['system_share']:.1f} %, {r['wall_s_per_step']:.2f} s/step",
            flush=True,
        )
    report = {
        "benchmark": "cpu_page_faults",
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
        },
        "results": results,
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}.json", flush=True)


if __name__ == "__main__":
    main()
