"""The U-Net of the Lucchi yardstick: a recipe trained for a time budget, validated on the slab.

A training recipe (YAML, merged over the library's defaults, plus ``--set key=value`` overrides)
is trained in process by `incasem.training.loop.train` for ``--minutes`` of training wall time
(``training.max_minutes``; validation time excluded), once per seed of ``--seeds``
(``training.seed``), with the whole held-out slab z >= 130 as its validation data: the loop's
validation picks the best checkpoint and the decision threshold there. Validation runs about every
``--validate-minutes``: unless ``--validate-every`` gives the number of iterations, the benchmark
starts with validation off, times the first iterations of the real run (iterations 10 to 30) and
then sets ``validate_every`` on the live config (the loop reads it every iteration). Each
validation records the iteration, the training minutes (the library's ``time/training_s``) and
every ``validation/*`` score.

Coarser voxels (``--scale N``): the U-Net trains and validates on the same split at N times the
voxel size (10 nm for N = 2). The level is written once with
`incasem.prepare.pyramid.scale_pyramid` (raw averaged, labels by their most frequent value) into
a container of its own under ``--cache`` (the shared data stay untouched), with data configs of
the boxes in whole coarse voxels; the validation curve is then scored at the coarse voxel size.
After training, the final and the best checkpoint are scored at the data's own 5 nm by
`lucchi_scoring.BoxScores`: foreground probabilities over the (coarse) slab, upsampled linearly
(``scipy.ndimage.zoom``, ``order=1``, ``grid_mode=True``), against the 5 nm labels of the same
box (34x768x1024 voxels at scale 2: the 35th plane is not a whole coarse voxel), on the slab and
on the crop. That is the row to compare with the forest.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from funlib.geometry import Coordinate
from lucchi_scoring import BOX_DATA, FOREGROUND, REPO, SLAB_DATA, TRAIN_DATA, BoxScores, box_entries

from incasem.atomic import write_atomic
from incasem.io import open_array
from incasem.io.data_config import DataEntry, check_data_config
from incasem.predict.truth import EntryTruth
from incasem.tracking.config_layers import merge_into

logger = logging.getLogger("lucchi_accuracy.unet")


def peak_rss_gb() -> float:
    """Peak resident memory of this process, GB."""
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _apply_override(config: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` (value parsed as YAML) to a nested config dict."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set expects key=value, got {assignment!r}")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {assignment}: {part} is not a section")
    node[leaf] = yaml.safe_load(text)


def unet_config(args: argparse.Namespace, seed: int) -> tuple[Any, dict[str, Any]]:
    """The validated training config of the U-Net run with ``seed``, and its raw dict."""
    from incasem.training.config import default_config, parse_config

    recipe_path = Path(args.recipe)
    if not recipe_path.is_file() and (REPO / recipe_path).is_file():
        recipe_path = REPO / recipe_path
    recipe = yaml.safe_load(recipe_path.read_text()) or {}
    defaults = default_config()
    config = merge_into(defaults, recipe)
    # Time, not iterations, ends the run (unless --set says otherwise); every scalar reaches the
    # callback, for its timing.
    config["training"]["iterations"] = 10**9
    config["sacred"]["log_every"] = 1
    config["training"]["max_minutes"] = args.minutes
    config["validation"]["validate_every"] = args.validate_every or 10**9
    config["directories"]["data"] = str(args.data_root)
    config["training"]["data"] = str(TRAIN_DATA)
    config["training"]["seed"] = seed
    config["validation"]["data"] = str(SLAB_DATA)
    if args.scale > 1:
        root, scaled = scaled_data(args.scale, args.cache, args.data_root)
        config["directories"]["data"] = str(root)
        config["training"]["data"] = str(scaled["train"])
        config["validation"]["data"] = str(scaled["slab"])
        config["data"]["voxel_size"] = [v * args.scale for v in _VOXEL_SIZE]
    for assignment in args.set:
        _apply_override(config, assignment)
    return parse_config(config), config


class ValidationRecorder:
    """The ``log_scalar`` callback: groups ``validation/*`` and ``time/*`` scalars by iteration.

    Also times the first iterations to set ``validate_every`` (unless it was given), with its
    own clock: wall time since iteration 1 minus the gaps in which validations ran.
    """

    def __init__(
        self,
        config: Any,
        validate_minutes: float,
        adapt: bool,
        timing_window: tuple[int, int] = (10, 30),
    ) -> None:
        self.config = config
        self.validate_minutes = validate_minutes
        self.adapt = adapt
        self.timing_window = timing_window
        self.started = time.perf_counter()
        self.by_iteration: dict[int, dict[str, float]] = {}
        self.wall_s: dict[int, float] = {}
        self.seconds_per_iteration: float | None = None
        self._window_start: tuple[int, float] | None = None
        self._first_step: float | None = None
        self._last_step: float | None = None
        self._validation_s = 0.0
        self._validating_since: float | None = None

    def training_s(self) -> float:
        """The recorder's own training clock, seconds (for timing iterations)."""
        if self._first_step is None:
            return 0.0
        return time.perf_counter() - self._first_step - self._validation_s

    def __call__(self, name: str, value: float, iteration: int) -> None:
        now = time.perf_counter()
        if name.startswith("validation/") or name.startswith("time/"):
            if name.startswith("validation/") and iteration not in self.wall_s:
                self.wall_s[iteration] = now - self.started
                if self._last_step is not None and iteration > 0:
                    # Validation ran between the iteration's last scalar and its first score.
                    self._validation_s += now - self._last_step
            self.by_iteration.setdefault(iteration, {})[name] = float(value)
            self._last_step = now
            return
        if self._first_step is None and iteration >= 1:
            self._first_step = now
        self._last_step = now
        if name == "loss":
            self._time_iterations(iteration)

    def _time_iterations(self, iteration: int) -> None:
        # Training seconds per iteration between the first losses at or after the window's ends
        # (the first iterations also fill the batch cache and are not typical).
        first, last = self.timing_window
        if self.seconds_per_iteration is not None or iteration < first:
            return
        if self._window_start is None:
            self._window_start = (iteration, self.training_s())
        elif iteration >= last:
            start_iteration, start_s = self._window_start
            self.seconds_per_iteration = (self.training_s() - start_s) / (
                iteration - start_iteration
            )
            if self.adapt:
                every = max(1, round(self.validate_minutes * 60 / self.seconds_per_iteration))
                self.config.validation.validate_every = every
                logger.info(
                    "%.2f s per iteration: validating every %d iterations (~%.1f min)",
                    self.seconds_per_iteration,
                    every,
                    every * self.seconds_per_iteration / 60,
                )

    def validations(self) -> list[dict[str, Any]]:
        """One record per validated iteration, in order."""
        records = []
        for iteration in sorted(self.by_iteration):
            logged = self.by_iteration[iteration]
            metrics = {
                k.removeprefix("validation/"): v
                for k, v in logged.items()
                if k.startswith("validation/")
            }
            if not metrics:
                continue
            records.append(
                {
                    "iteration": iteration,
                    "training_minutes": logged.get("time/training_s", 0.0) / 60,
                    "wall_minutes": self.wall_s.get(iteration, float("nan")) / 60,
                    **{k: v for k, v in logged.items() if k.startswith("time/")},
                    **metrics,
                }
            )
        return records


def run_unet_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train the recipe with ``seed`` for ``--minutes`` with validations on the slab; its
    record."""
    import torch

    from incasem.training.loop import train

    config, raw_config = unet_config(args, seed)
    recorder = ValidationRecorder(
        config,
        args.validate_minutes,
        adapt=args.validate_every is None
        and not any(a.startswith("validation.validate_every=") for a in args.set),
    )
    run_dir = (
        Path(args.run_dir) / f"seed{seed}"
        if args.run_dir
        else Path(tempfile.mkdtemp(prefix=f"lucchi_unet_seed{seed}_"))
    )
    print(f"U-Net run folder: {run_dir}", flush=True)
    start = time.perf_counter()
    train(config, run_dir, log_scalar=recorder, start_from=args.start_from, progress=False)
    wall = (time.perf_counter() - start) / 60
    validations = recorder.validations()
    for record in validations:
        print(
            f"seed {seed} iteration {record['iteration']:6d} "
            f"({record['training_minutes']:5.1f} min): slab IoU "
            f"{record.get('iou', float('nan')):.3f} at 0.5, "
            f"{record.get('best_iou', float('nan')):.3f} at best",
            flush=True,
        )
    checkpoints = score_checkpoints(run_dir, config, args.scale, args.data_root)
    for which, record in checkpoints.items():
        slab, crop = record["scores"]["slab"], record["scores"]["crop"]
        print(
            f"seed {seed} {which} checkpoint (iteration {record['iteration']}) at 5 nm: slab "
            f"IoU {slab['iou']:.3f} at 0.5, {record['calibrated']['slab']['iou']:.3f} at its "
            f"threshold {record['threshold']:.3f}, {slab['best_iou']:.3f} at the best; crop "
            f"{crop['at_pick_iou']:.3f} at the slab's best threshold",
            flush=True,
        )
    return {
        "seed": seed,
        "validate_every": config.validation.validate_every,
        "seconds_per_iteration": recorder.seconds_per_iteration,
        "wall_minutes": wall,
        "peak_rss_gb": peak_rss_gb(),
        "torch_threads": torch.get_num_threads(),
        "run_dir": str(run_dir),
        "config": config.model_dump(),
        "config_input": raw_config,
        "validations": validations,
        "checkpoints": checkpoints,
    }


def run_unet(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe for every seed of ``--seeds``; the row's record."""
    return {
        "method": "3D U-Net",
        "recipe": str(args.recipe),
        "scale": args.scale,
        "overrides": list(args.set),
        "start_from": args.start_from,
        "minutes_budget": args.minutes,
        "validate_minutes": args.validate_minutes,
        "runs": [run_unet_seed(args, seed) for seed in args.seeds],
    }


# ---------------------------------------------------------------------------------------------
# Coarser voxels

_VOXEL_SIZE = (5, 5, 5)
_LEVEL = "_s1"


def scaled_data(scale: int, cache: Path, data_root: Path) -> tuple[Path, dict[str, Path]]:
    """Data root and the data configs (``train``, ``slab``, ``crop``) of the split at ``scale``
    times the voxel size.

    The level is written once per ``scale`` into ``<cache>/scale<N>/epfl_lucchi_train.zarr``
    (datasets ``<name>_s1``); entries keep their world box, shrunk to whole coarse voxels.
    """
    from incasem.prepare.pyramid import scale_pyramid

    root = cache / f"scale{scale}"
    container = root / "epfl_lucchi_train.zarr"
    configs = {}
    for key, path in {"train": TRAIN_DATA, **BOX_DATA}.items():
        entries = json.loads(path.read_text())
        scaled = {}
        for name, entry in entries.items():
            for dataset in (entry["raw"], *entry["labels"]):
                if not (container / (dataset + _LEVEL) / ".zarray").is_file():
                    scale_pyramid(
                        data_root / entry["file"],
                        dataset,
                        factors=(scale,) * 3,
                        levels=1,
                        out_container=container,
                        num_workers=0,
                        progress=False,
                    )
            start = [-(-o // scale) for o in entry["offset"]]
            end = [(o + n) // scale for o, n in zip(entry["offset"], entry["shape"], strict=True)]
            scaled[f"{name}_x{scale}"] = {
                **entry,
                "file": container.name,
                "offset": start,
                "shape": [e - b for b, e in zip(start, end, strict=True)],
                "voxel_size": [v * scale for v in entry["voxel_size"]],
                "raw": entry["raw"] + _LEVEL,
                "labels": {k + _LEVEL: v for k, v in entry["labels"].items()},
            }
        out = root / f"{path.stem}_x{scale}.json"
        text = json.dumps(scaled, indent=2) + "\n"
        write_atomic(out, lambda tmp, text=text: tmp.write_text(text), overwrite=True)
        configs[key] = out
    return root, configs


def coarse_probabilities(
    checkpoint: Any,
    entry: DataEntry,
    data_root: Path,
    flips: Sequence[tuple[int, ...]] = ((),),
) -> np.ndarray:
    """Foreground probabilities (float32, z, y, x) of ``entry``'s ROI, predicted block by block
    with the training input size; averaged over test-time ``flips`` (see
    `incasem.predict.block.flip_axes`; default none)."""
    import torch

    from incasem.predict.block import forward_block, read_block_input
    from incasem.predict.evaluate import layout_for_model

    model, card = checkpoint.model.eval(), checkpoint.card
    voxel_size = Coordinate(entry.voxel_size)
    layout = layout_for_model(model, card.input_size_voxels, voxel_size)
    raw = open_array(entry.path(data_root), entry.raw)
    probabilities = np.zeros(tuple(entry.roi.shape / voxel_size), np.float32)
    with torch.no_grad():
        for write_roi in layout.write_rois(entry.roi):
            x = read_block_input(raw, write_roi, layout, card.normalisation)
            block = forward_block(model, x, write_roi, layout, flips=flips)
            begin = (write_roi.offset - entry.roi.offset) / voxel_size
            end = begin + write_roi.shape / voxel_size
            probabilities[tuple(slice(b, e) for b, e in zip(begin, end, strict=True))] = block[
                FOREGROUND
            ]
    return probabilities


def upsample(coarse: np.ndarray, scale: int) -> np.ndarray:
    """``coarse`` probabilities (z, y, x) brought to ``scale`` times finer voxels by linear
    interpolation, as ``incasem predict`` writes them at the data's voxel size
    (`incasem.predict.resample`); unchanged for ``scale`` 1."""
    from scipy import ndimage

    if scale == 1:
        return coarse
    return ndimage.zoom(coarse, scale, order=1, grid_mode=True, mode="nearest")


def chosen_checkpoints(run_dir: Path) -> dict[str, Path]:
    """A finished run's ``final`` checkpoint and its ``best`` (``best.json``) one."""
    checkpoints = sorted(
        (run_dir / "checkpoints").glob("model_checkpoint_*.pt"),
        key=lambda p: int(p.stem.rsplit("_", 1)[1]),
    )
    best = json.loads((run_dir / "best.json").read_text())
    return {
        "final": checkpoints[-1],
        "best": run_dir / "checkpoints" / f"model_checkpoint_{best['iteration']}.pt",
    }


def score_checkpoints(
    run_dir: Path, config: Any, scale: int, data_root: Path
) -> dict[str, dict[str, Any]]:
    """The final and the best checkpoint of a run scored on the 5 nm boxes (slab and crop).

    Probabilities over the (coarse) validation slab are upsampled linearly to 5 nm (``scale`` >
    1) and scored with `lucchi_scoring.BoxScores` at 0.5, at the checkpoint's calibrated
    threshold and at the best one.
    """
    from incasem.torch.checkpoint import load_checkpoint

    coarse = check_data_config(
        config.validation.data, data_root=config.directories.data, num_classes=2
    ).entries[0]
    fine = box_entries(data_root)
    chosen = chosen_checkpoints(run_dir)
    results: dict[str, Any] = {}
    class_ids, region = EntryTruth(fine["slab"], data_root).read(coarse.roi)
    for which, path in chosen.items():
        done = next((r for r in results.values() if r["checkpoint"] == str(path)), None)
        if done is not None:  # the best checkpoint is the final one: scored once
            results[which] = done
            continue
        checkpoint = load_checkpoint(path)
        p = upsample(coarse_probabilities(checkpoint, coarse, Path(config.directories.data)), scale)
        boxes = BoxScores(
            {name: entry.roi for name, entry in fine.items()}, fine["slab"].voxel_size
        )
        boxes.add(coarse.roi, p, class_ids, region)
        threshold, _ = checkpoint.card.decision_threshold()
        results[which] = {
            "checkpoint": str(path),
            "iteration": checkpoint.card.iteration,
            "voxels": list(p.shape),
            "threshold": threshold,
            "scores": boxes.scores(),
            "calibrated": boxes.scores(threshold),
        }
    return results
