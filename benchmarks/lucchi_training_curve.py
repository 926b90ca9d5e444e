"""Validation F1 over training iterations for a training run, as a table and a PNG.

Evaluates every checkpoint of a run (and the untrained network, rebuilt exactly as training
builds it from the config's seed) on a validation data config with the same code path training
uses to validate (`incasem.predict.evaluate_entry`). Useful for runs trained without
``validation.data`` (e.g. to keep CPU time for training) and to re-score a run on other data.

    python benchmarks/lucchi_training_curve.py RUN_DIR \\
        --validation configs/data/lucchi_mito_validation.json --data-root ../shared/data

Writes ``RUN_DIR/validation_curve.json`` and ``RUN_DIR/validation_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from incasem.io.data_config import check_data_config  # noqa: E402
from incasem.predict import evaluate_entry  # noqa: E402
from incasem.torch.checkpoint import DEFAULT_NORMALISATION, load_checkpoint  # noqa: E402
from incasem.tracking.run_folder import list_checkpoints  # noqa: E402
from incasem.training.config import parse_config  # noqa: E402
from incasem.training.loop import build_model, seed_everything  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--validation", required=True, help="validation data config JSON")
    parser.add_argument("--data-root", default=".")
    parser.add_argument(
        "--input-size", type=int, nargs=3, default=[132, 244, 244], help="block input, voxels"
    )
    parser.add_argument(
        "--every", type=int, default=1, help="score only checkpoints whose iteration is a multiple"
    )
    args = parser.parse_args()

    config = parse_config(json.loads((args.run_dir / "config.json").read_text()))
    data = check_data_config(args.validation, data_root=args.data_root, num_classes=2)
    torch.set_num_threads(2)

    def score(model: torch.nn.Module) -> dict[str, float]:
        results = [
            evaluate_entry(
                model,
                entry,
                args.data_root,
                input_size_voxels=args.input_size,
                voxel_size=config.data.voxel_size,
                normalisation=DEFAULT_NORMALISATION,
                class_names=config.class_names,
            )
            for entry in data
        ]
        return {k: sum(r[k] for r in results) / len(results) for k in results[0]}

    seed_everything(config.training.seed)
    untrained = build_model(config)
    # Scores already computed are kept, so the script can be rerun while training goes on.
    cache = args.run_dir / "validation_curve.json"
    curve = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.is_file() else {}
    checkpoints = [(0, None), *list_checkpoints(args.run_dir).items()]
    for iteration, path in checkpoints:
        if iteration in curve or iteration % args.every:
            continue
        start = time.time()
        model = untrained if path is None else load_checkpoint(path).model
        curve[iteration] = score(model)
        print(
            f"iteration {iteration:6d}: f1 {curve[iteration]['f1']:.3f} "
            f"precision {curve[iteration]['precision']:.3f} "
            f"recall {curve[iteration]['recall']:.3f} iou {curve[iteration]['iou']:.3f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
        cache.write_text(json.dumps(dict(sorted(curve.items())), indent=2))

    iterations = sorted(curve)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for key in ("f1", "iou", "precision", "recall"):
        ax.plot(iterations, [curve[i][key] for i in iterations], marker="o", label=key)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("score on validation ROI (threshold 0.5)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(f"{args.run_dir}: mitochondria, {Path(args.validation).name}")
    ax.legend()
    fig.savefig(args.run_dir / "validation_curve.png", dpi=100)
    print(f"wrote {args.run_dir / 'validation_curve.png'}")


if __name__ == "__main__":
    main()
