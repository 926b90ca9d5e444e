"""``incasem plan``: the network's downsampling and training sizes for a data config."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="downsampling factors and training sizes for the voxel size and ROIs of a config",
        description="Plan the U-Net for a training data config: per-axis downsampling from "
        "the voxel size (an axis is halved only while its voxel size is at most twice the "
        "finest, so coarse levels become nearly isotropic), a training output of about 550 nm "
        "per axis that fits the smallest annotated ROI, the input that gives it, and the "
        "context in voxels and nm. Prints the config keys to use; scripts/train.py plans the "
        "same when they say auto. Sizes are voxels (z y x), voxel sizes nm.",
    )
    parser.add_argument("config", help="training data config JSON; several comma-separated")
    parser.add_argument(
        "--num-fmaps", type=int, default=32, help="feature maps at the top level (default: 32)"
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        help="memory for one training step, GiB (default: half this machine's RAM)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.predict.block_size import memory_budget
    from incasem.training.plan import plan_for_config

    memory = memory_budget("cpu", 1) if args.memory_gb is None else int(args.memory_gb * 2**30)
    config = {"training": {"data": args.config}, "model": {"num_fmaps": args.num_fmaps}}
    plan = plan_for_config(config, memory)
    if args.json:
        print(json.dumps(plan.config_updates() | {"context_nm": plan.context_nm}, indent=2))
    else:
        print(plan.describe())
    return 0
