"""Does proofreading the most uncertain blocks teach a model more than proofreading random ones?

One loop of ``incasem proofread`` on Lucchi mitochondria at 10 nm (the data of
``lucchi_accuracy.py --scale 2``), with simulated corrections:

1. **Base model**: the CPU recipe (``configs/lucchi_cpu.yaml``) trained from scratch for
   ``--base-iterations`` on a thin part of the training region only (z < 65, y < 128 at 10 nm).
2. **Pool**: the base model predicts the rest of the training region (y >= 128); its
   foreground probabilities are ranked in blocks of ``--block`` voxels by
   `incasem.postprocess.proofread.rank_blocks`.
3. **Corrections**: the ground truth of the ``--k`` top-ranked blocks, or of ``--k`` random
   blocks of the pool (seeded), is added to the base region as data-config entries (what the
   painter's "Save corrections" writes), and the base model is fine-tuned on each for
   ``--fine-tune-iterations`` (``--start-from``).
4. Validation IoU (foreground, at 0.5 and at the best threshold, z >= 130 at 5 nm) before and
   after, for both.

Budgets are iterations, not minutes, so the comparison does not depend on what else runs on
the machine. Writes ``<out>.json``, ``<out>.md`` and ``<out>.png``::

    python benchmarks/proofread_lucchi.py --out benchmarks/results/proofread_lucchi
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
import zarr  # noqa: E402
from funlib.geometry import Coordinate, Roi  # noqa: E402

from incasem.atomic import write_atomic, write_json  # noqa: E402
from incasem.io import create_array, open_array  # noqa: E402
from incasem.postprocess.proofread import rank_blocks  # noqa: E402
from incasem.postprocess.sources import DatasetRef  # noqa: E402
from incasem.predict.block import predict_block  # noqa: E402
from incasem.predict.evaluate import layout_for_model  # noqa: E402
from incasem.torch.checkpoint import load_checkpoint  # noqa: E402
from incasem.tracking.config_layers import merge_into  # noqa: E402
from incasem.training.config import default_config, parse_config  # noqa: E402
from incasem.training.loop import train  # noqa: E402

logger = logging.getLogger("proofread_lucchi")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from lucchi_scoring import DATA_ROOT  # noqa: E402
from lucchi_unet import scaled_data  # noqa: E402

BASE_SHAPE = (65, 128, 512)  # voxels at 10 nm: z < 130 and y < 256 at 5 nm
POOL_OFFSET, POOL_SHAPE = (0, 128, 0), (65, 256, 512)


def _entry(name: str, offset, shape) -> dict[str, Any]:
    return {
        name: {
            "file": "epfl_lucchi_train.zarr",
            "offset": list(offset),
            "shape": list(shape),
            "voxel_size": [10, 10, 10],
            "raw": "volumes/raw_s1",
            "labels": {"volumes/labels/mitochondria_s1": 1},
        }
    }


def _config(root: Path, train_json: Path, validation_json: Path, iterations: int, lr_warmup: int):
    recipe = yaml.safe_load((REPO / "configs" / "lucchi_cpu.yaml").read_text())
    config = merge_into(default_config(), recipe)
    config["directories"]["data"] = str(root)
    config["training"].update(
        data=str(train_json), iterations=iterations, max_minutes=None, save_every=iterations
    )
    config["training"]["optimizer"]["warmup_iterations"] = lr_warmup
    config["validation"].update(data=str(validation_json), validate_every=10**9)
    return parse_config(config)


class _Scores:
    def __init__(self) -> None:
        self.by_iteration: dict[int, dict[str, float]] = {}

    def __call__(self, name: str, value: float, iteration: int) -> None:
        if name.startswith("validation/") and "/" not in name.removeprefix("validation/"):
            self.by_iteration.setdefault(iteration, {})[name.split("/")[-1]] = float(value)

    def last(self) -> dict[str, float]:
        return self.by_iteration[max(self.by_iteration)]


def _train(config, run_dir: Path, start_from: Path | None = None) -> tuple[Path, dict, dict]:
    scores = _Scores()
    train(config, run_dir, log_scalar=scores, start_from=start_from, progress=False)
    checkpoint = max(
        (run_dir / "checkpoints").glob("model_checkpoint_*.pt"),
        key=lambda p: int(p.stem.rsplit("_", 1)[1]),
    )
    return checkpoint, scores.by_iteration.get(0, {}), scores.last()


def _predict_pool(checkpoint: Path, container: Path, out: Path) -> DatasetRef:
    """Foreground probabilities (uint8) of the pool, in ``out``, with the model's threshold."""
    loaded = load_checkpoint(checkpoint)
    model, card = loaded.model.eval(), loaded.card
    raw = open_array(container, "volumes/raw_s1")
    voxel_size = raw.voxel_size
    roi = Roi(Coordinate(POOL_OFFSET) * voxel_size, Coordinate(POOL_SHAPE) * voxel_size)
    layout = layout_for_model(model, card.input_size_voxels, voxel_size)
    array = create_array(out, "pool/class_1", POOL_SHAPE, voxel_size, roi.offset)
    with torch.no_grad():
        for write_roi in layout.write_rois(roi):
            p = predict_block(model, raw, write_roi, layout, card.normalisation)[1]
            array[write_roi] = np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)
    threshold, _ = card.decision_threshold()
    zarr.open(str(out), "r+")["pool/class_1"].attrs["threshold"] = threshold
    return DatasetRef(str(out), "pool/class_1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-iterations", type=int, default=100)
    parser.add_argument("--fine-tune-iterations", type=int, default=60)
    parser.add_argument(
        "--block", type=int, default=96,
        help="block edge, voxels (10 nm); blocks must hold half a training window (64 did not)",
    )  # fmt: skip
    parser.add_argument("--k", type=int, default=3, help="blocks corrected")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: /tmp)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/proofread_lucchi")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="proofread_lucchi_"))
    cache = Path(tempfile.gettempdir()) / "incasem_lucchi_accuracy"
    root, configs = scaled_data(2, cache, DATA_ROOT)
    validation_json = configs["crop"]
    container = root / "epfl_lucchi_train.zarr"

    base_json = work / "base.json"
    write_json(base_json, _entry("base", (0, 0, 0), BASE_SHAPE))
    base_config = _config(root, base_json, validation_json, args.base_iterations, 50)
    base, _, base_scores = _train(base_config, work / "base")
    logger.info("base model: %s", base_scores)

    pool = _predict_pool(base, container, work / "pool.zarr")
    ranked, threshold = rank_blocks(pool, (args.block,) * 3, top=None, progress=False)
    full = [b for b in ranked if b.shape == (min(args.block, 65), args.block, args.block)]
    rng = np.random.default_rng(args.seed)
    choices = {
        "most uncertain": full[: args.k],
        "random": [full[i] for i in sorted(rng.choice(len(full), args.k, replace=False))],
    }
    results: dict[str, Any] = {}
    for label, blocks in choices.items():
        entries = _entry("base", (0, 0, 0), BASE_SHAPE)
        for b in blocks:
            entries |= _entry(f"block_{'_'.join(map(str, b.offset))}", b.offset, b.shape)
        data = work / f"{label.replace(' ', '_')}.json"
        write_json(data, entries)
        config = _config(root, data, validation_json, args.fine_tune_iterations, 10)
        _, before, after = _train(config, work / label.replace(" ", "_"), start_from=base)
        results[label] = {
            "blocks": [b.as_dict() for b in blocks],
            "labelled_voxels_added": int(sum(np.prod(b.shape) for b in blocks)),
            "before": before,
            "after": after,
        }
        logger.info("%s: before %s, after %s", label, before, after)

    report = {
        "benchmark": "proofread_lucchi",
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": vars(args) | {"work": str(work), "out": str(args.out)},
        "base": {"iterations": args.base_iterations, "scores": base_scores, "region": BASE_SHAPE},
        "pool": {"offset": POOL_OFFSET, "shape": POOL_SHAPE, "blocks": len(full),
                 "threshold": threshold, "ranking": [b.as_dict() for b in full]},
        "results": results,
    }  # fmt: skip
    write_json(args.out.with_suffix(".json"), report)
    lines = [
        "# Proofreading: the most uncertain blocks against random blocks",
        "",
        f"`{report['command']}` ({report['date']}). Lucchi mitochondria at 10 nm; base model: "
        f"{args.base_iterations} iterations of `configs/lucchi_cpu.yaml` on z < 65, y < 128 "
        f"(10 nm voxels); pool: the rest of the training region in {len(full)} blocks of "
        f"{args.block}³ voxels ranked by `incasem proofread`; {args.k} blocks' ground truth "
        f"added; fine-tuned {args.fine_tune_iterations} iterations from the base model. "
        "Foreground IoU on the validation crop (z >= 130 at 5 nm, scored at 10 nm), at the best "
        "threshold / at 0.5.",
        "",
        "| corrected blocks | labelled voxels added | before | after |",
        "|---|---|---|---|",
    ]
    for label, r in results.items():
        b, a = r["before"], r["after"]
        lines.append(
            f"| {args.k} {label} | {r['labelled_voxels_added']:,} | {b['best_iou']:.3f} / "
            f"{b['iou']:.3f} | {a['best_iou']:.3f} / {a['iou']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    write_atomic(args.out.with_suffix(".md"), lambda t: t.write_text(text), overwrite=True)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for i, (label, r) in enumerate(results.items()):
        ax.plot([0, 1], [r["before"]["best_iou"], r["after"]["best_iou"]], "-o", color=f"C{i}",
                label=f"{args.k} {label} blocks")  # fmt: skip
    ax.set_xticks([0, 1], ["base model", f"+ corrections, {args.fine_tune_iterations} its"])
    ax.set_ylabel("validation IoU (best threshold)")
    ax.set_title("Proofreading loop, Lucchi mitochondria (10 nm)")
    ax.grid(alpha=0.3)
    ax.legend()
    write_atomic(
        args.out.with_suffix(".png"), lambda t: fig.savefig(t, dpi=100, format="png"),
        overwrite=True,
    )  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
