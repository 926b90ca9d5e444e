"""Time to accuracy on EPFL Lucchi mitochondria: 3D U-Net recipes against a random forest.

Data: ``../shared/data/epfl_lucchi_train.zarr`` (FIB-SEM of mouse CA1 hippocampus, 5 nm;
Lucchi, Smith, Achanta, Knott, Fua, IEEE TMI 2012). Train on z < 130
(``configs/data/lucchi_mito_train.json``), validate on the 35x384x512 crop at z >= 130
(``configs/data/lucchi_mito_validation.json``). Both methods are scored the same way: foreground
probabilities quantised to uint8 levels, `incasem.metrics.ThresholdHistograms` over the
validation crop, IoU/F1/precision/recall at threshold 0.5 and at the threshold of the best F1.

U-Net (``--method unet``): a training recipe (YAML, merged over the library's defaults, plus
``--set key=value`` overrides) trained in process by `incasem.training.loop.train` for
``--minutes`` of training wall time (``training.max_minutes``; validation time excluded), with a
validation about every ``--validate-minutes``. The library validates every
``validation.validate_every`` iterations; unless ``--validate-every`` gives that number, the
benchmark starts with validation off, times the first iterations of the real run (iterations
10 to 30) and then sets ``validate_every`` on the live config to the iterations that take
``--validate-minutes`` (the loop reads it every iteration). Each validation records the
iteration, the training minutes (the library's ``time/training_s``) and every
``validation/*`` score.

Random forest (``--method forest``): ilastik-style filter features (`incasem.annotate.features`,
sigmas 0.7-5 voxels, 45 channels) and scikit-learn's ``RandomForestClassifier(n_estimators=100,
n_jobs=2)`` trained on 200,000 class-balanced voxels of the training region. Features are only
computed on a few training tiles (``--forest-tiles`` of ``--forest-tile-shape`` voxels, chosen at
random among tiles with mitochondria), each read with the features' margin, and only at the
sampled voxels; the validation crop is predicted block by block. The wall time of all of it
(reading, features, fitting, prediction, scoring) is the forest's minutes.

Coarser voxels (``--scale N``, U-Net only): the U-Net trains and validates on the same split
at N times the voxel size (10 nm for N = 2). The benchmark writes that level once with
`incasem.prepare.pyramid.scale_pyramid` (raw averaged, labels by their most frequent value) into
a container of its own under ``--cache`` (the shared data stay untouched), with data configs of
the split in whole coarse voxels. Its validation curve is scored at the coarse voxel size against
the coarse labels; after training, the final and the best checkpoint are also scored at the
data's own 5 nm: their foreground probabilities over the coarse validation crop, upsampled
linearly (``scipy.ndimage.zoom``, ``order=1``, ``grid_mode=True``), against the 5 nm labels of
the same box (34x384x512 voxels: the 35th slice is not a whole coarse voxel). That row is the one
to compare with the forest, which works at 5 nm.

Outputs (merged into existing ones: a run replaces only its own method/label):
``<out>.json`` (results, curves, command lines, configs), ``<out>.png`` (validation IoU against
training minutes) and ``<out>.md`` (IoU at 10/20/40/60 minutes). Run from anywhere::

    python benchmarks/lucchi_accuracy.py --method forest
    python benchmarks/lucchi_accuracy.py --method unet --recipe configs/lucchi_cpu.yaml \\
        --minutes 60 --validate-minutes 5 --label f8_cpu
    python benchmarks/lucchi_accuracy.py --method unet --recipe configs/lucchi_cpu.yaml \\
        --scale 2 --minutes 60 --validate-minutes 5 --label f8_cpu_10nm
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from funlib.geometry import Coordinate  # noqa: E402

from incasem.annotate.features import (  # noqa: E402
    DEFAULT_SIGMAS,
    feature_margin,
    feature_names,
    filter_features,
)
from incasem.atomic import write_atomic  # noqa: E402
from incasem.io import open_array  # noqa: E402
from incasem.io.data_config import DataEntry, check_data_config  # noqa: E402
from incasem.io.roi import roi_from_voxels  # noqa: E402
from incasem.metrics import ThresholdHistograms, quantise, scores  # noqa: E402
from incasem.predict.truth import EntryTruth  # noqa: E402
from incasem.tracking.config_layers import merge_into  # noqa: E402

logger = logging.getLogger("lucchi_accuracy")

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = (REPO / ".." / "shared" / "data").resolve()
TRAIN_DATA = REPO / "configs" / "data" / "lucchi_mito_train.json"
VALIDATION_DATA = REPO / "configs" / "data" / "lucchi_mito_validation.json"
TABLE_MINUTES = (10, 20, 40, 60)
FOREGROUND = 1
CITATION = (
    "EPFL hippocampus FIB-SEM (../shared/data/epfl_lucchi_train.zarr): Lucchi, Smith, Achanta, "
    "Knott, Fua, 'Supervoxel-based segmentation of mitochondria in EM image stacks with learned "
    "shape features', IEEE TMI 2012"
)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _scores_of(histograms: ThresholdHistograms, threshold: float = 0.5) -> dict[str, float]:
    """Foreground scores at ``threshold`` and at the best-F1 threshold, as validation logs them."""
    at = scores(*histograms.counts_at(FOREGROUND, threshold))
    best = histograms.best_threshold(FOREGROUND, "f1")
    return {
        **at,
        "threshold": threshold,
        "best_threshold": best["threshold"],
        **{f"best_{key}": best[key] for key in ("f1", "precision", "recall", "iou")},
    }


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _tiles(shape: Sequence[int], tile: Sequence[int]) -> list[tuple[tuple[int, ...], ...]]:
    """(start, size) in voxels (z, y, x) of the tiles covering ``shape``; edge tiles are cut."""
    starts = [range(0, n, t) for n, t in zip(shape, tile, strict=True)]
    return [
        (
            (z, y, x),
            tuple(min(t, n - s) for s, t, n in zip((z, y, x), tile, shape, strict=True)),
        )
        for z in starts[0]
        for y in starts[1]
        for x in starts[2]
    ]


def _slices(start: Sequence[int], size: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))


# ---------------------------------------------------------------------------------------------
# Random forest


def _sample_training_voxels(
    class_ids: np.ndarray,
    region: np.ndarray,
    tiles: list[tuple[tuple[int, ...], ...]],
    per_class: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Per tile, the flat indices (into the tile) of the sampled voxels.

    ``per_class`` voxels of each class, uniformly without replacement from the counted voxels of
    all tiles together (all of a class's voxels if it has fewer).
    """
    candidates = []  # per tile, per class: flat indices into the tile
    for start, size in tiles:
        block = _slices(start, size)
        ids, counted = class_ids[block].ravel(), region[block].ravel()
        candidates.append([np.flatnonzero(counted & (ids == c)) for c in (0, FOREGROUND)])
    chosen: list[list[np.ndarray]] = [[] for _ in tiles]
    for c in range(2):
        available = np.array([len(per_tile[c]) for per_tile in candidates], np.int64)
        wanted = min(per_class, int(available.sum()))
        if wanted < per_class:
            logger.warning("class %d: only %d voxels in the chosen tiles", c, wanted)
        allocation = rng.multivariate_hypergeometric(available, wanted)
        for t, count in enumerate(allocation):
            chosen[t].append(rng.choice(candidates[t][c], int(count), replace=False))
    return [np.sort(np.concatenate(per_tile)) for per_tile in chosen]


def _entry_array(entry: DataEntry, data_root: Path, dataset: str) -> Any:
    return open_array(entry.path(data_root), dataset)


def _training_set(
    entry: DataEntry,
    data_root: Path,
    sigmas: Sequence[float],
    num_tiles: int,
    tile_shape: Sequence[int],
    per_class: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Features (N, F) float32 and labels (N,) of class-balanced voxels of one training entry.

    Raw context comes from the entry's ROI only (reflected at its faces), so no voxel outside
    the training region, e.g. of the validation crop, influences the training features.
    """
    rng = np.random.default_rng(seed)
    raw = np.asarray(_entry_array(entry, data_root, entry.raw)[entry.roi])
    class_ids, region = EntryTruth(entry, data_root).read(entry.roi)
    tiles = _tiles(raw.shape, tile_shape)
    # Prefer tiles with some foreground (the balanced sample needs it); random order otherwise.
    fractions = [float((class_ids[_slices(*t)] == FOREGROUND).mean()) for t in tiles]
    order = rng.permutation(len(tiles))
    order = sorted(order, key=lambda i: fractions[i] < 0.01)  # stable: random within groups
    chosen = [tiles[i] for i in order[:num_tiles]]
    samples = _sample_training_voxels(class_ids, region, chosen, per_class, rng)
    margin = feature_margin(sigmas)
    features, labels = [], []
    for (start, size), flat in zip(chosen, samples, strict=True):
        low = [max(0, s - margin) for s in start]
        high = [min(n, s + t + margin) for s, t, n in zip(start, size, raw.shape, strict=True)]
        padded = raw[_slices(low, [h - lo for lo, h in zip(low, high, strict=True)])]
        points = np.unravel_index(flat, size)
        labels.append(class_ids[_slices(start, size)][points])
        local = tuple(p + s - lo for p, s, lo in zip(points, start, low, strict=True))
        features.append(filter_features(padded, sigmas, interior=local).T)
        logger.info("features of tile at %s (%d samples)", list(start), len(flat))
    info = {
        "tiles": [{"start": list(s), "shape": list(n)} for s, n in chosen],
        "tile_voxels": int(sum(np.prod(n) for _, n in chosen)),
        "region_voxels": int(raw.size),
        "samples_per_class": [int(np.sum(np.concatenate(labels) == c)) for c in (0, 1)],
    }
    return np.concatenate(features), np.concatenate(labels), info


def _predict_entry(
    forest: Any,
    entry: DataEntry,
    data_root: Path,
    sigmas: Sequence[float],
    block_shape: Sequence[int],
) -> ThresholdHistograms:
    """Foreground probability of a validation entry, block by block; its histograms.

    Raw context (the features' margin) comes from the whole dataset around the entry, as the
    U-Net's validation reads its context.
    """
    raw = _entry_array(entry, data_root, entry.raw)
    truth = EntryTruth(entry, data_root)
    voxel_size = Coordinate(entry.voxel_size)
    margin = Coordinate((feature_margin(sigmas),) * 3) * voxel_size
    foreground = list(forest.classes_).index(FOREGROUND)
    total = ThresholdHistograms.zeros(2)
    for start, size in _tiles(entry.shape, block_shape):
        roi = roi_from_voxels(
            [o + s for o, s in zip(entry.offset, start, strict=True)], size, voxel_size
        )
        padded_roi = roi.grow(margin, margin).intersect(raw.roi)
        padded = np.asarray(raw[padded_roi])
        interior = _slices((roi.offset - padded_roi.offset) / voxel_size, size)
        features = filter_features(padded, sigmas, interior=interior)
        samples = np.ascontiguousarray(features.reshape(len(features), -1).T)
        del features
        probability = forest.predict_proba(samples)[:, foreground]
        probability = probability.reshape(size)
        levels = quantise(np.stack([1 - probability, probability]))
        class_ids, region = truth.read(roi)
        total = total + ThresholdHistograms.from_arrays(levels, class_ids, region)
        logger.info("predicted block at %s", list(start))
    return total


def run_forest(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score the random-forest baseline; its result record."""
    from sklearn.ensemble import RandomForestClassifier

    sigmas = list(args.sigmas)
    data_root = Path(args.data_root)
    train = check_data_config(TRAIN_DATA, data_root=data_root, num_classes=2)
    validation = check_data_config(VALIDATION_DATA, data_root=data_root, num_classes=2)
    if len(train.entries) != 1:
        raise SystemExit("the forest baseline expects one training entry")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    x, y, sampling = _training_set(
        train.entries[0],
        data_root,
        sigmas,
        args.forest_tiles,
        args.forest_tile_shape,
        args.forest_samples // 2,
        args.seed,
    )
    timings["training_features_s"] = time.perf_counter() - start
    print(f"training features {x.shape}: {timings['training_features_s']:.0f} s", flush=True)

    mark = time.perf_counter()
    forest = RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=args.seed)
    forest.fit(x, y)
    timings["fit_s"] = time.perf_counter() - mark
    print(f"forest fitted: {timings['fit_s']:.0f} s", flush=True)
    del x, y

    mark = time.perf_counter()
    histograms = ThresholdHistograms.zeros(2)
    for entry in validation:
        histograms = histograms + _predict_entry(
            forest, entry, data_root, sigmas, args.forest_block_shape
        )
    timings["validation_predict_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - start
    result = _scores_of(histograms)
    minutes = timings["total_s"] / 60
    print(
        f"forest: {minutes:.1f} min, IoU {result['iou']:.3f} at 0.5, "
        f"{result['best_iou']:.3f} at {result['best_threshold']:.3f}",
        flush=True,
    )
    importances = sorted(
        zip(feature_names(sigmas), forest.feature_importances_, strict=True),
        key=lambda item: -item[1],
    )
    return {
        "method": "random forest on filter features",
        "minutes": minutes,
        "scores": result,
        "timings_s": timings,
        "peak_rss_gb": _peak_rss_gb(),
        "features": {
            "sigmas_voxels": sigmas,
            "count": len(feature_names(sigmas)),
            "margin_voxels": feature_margin(sigmas),
            "top_importances": {name: float(v) for name, v in importances[:10]},
        },
        "forest": {"n_estimators": 100, "n_jobs": 2, "random_state": args.seed},
        "sampling": {
            **sampling,
            "tile_shape": list(args.forest_tile_shape),
            "samples": args.forest_samples,
        },
        "prediction_block_shape": list(args.forest_block_shape),
        "histograms": histograms.as_array()[FOREGROUND].tolist(),
    }


# ---------------------------------------------------------------------------------------------
# U-Net


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


def unet_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The validated training config of the U-Net run, and the raw dict it came from."""
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
    config["validation"]["data"] = str(VALIDATION_DATA)
    if args.scale > 1:
        root, train_data, validation_data = scaled_data(args.scale, args.cache, args.data_root)
        config["directories"]["data"] = str(root)
        config["training"]["data"] = str(train_data)
        config["validation"]["data"] = str(validation_data)
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


def run_unet(args: argparse.Namespace) -> dict[str, Any]:
    """Train the recipe for ``--minutes`` with validations; its result record."""
    import torch

    from incasem.training.loop import train

    config, raw_config = unet_config(args)
    recorder = ValidationRecorder(
        config,
        args.validate_minutes,
        adapt=args.validate_every is None
        and not any(a.startswith("validation.validate_every=") for a in args.set),
    )
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="lucchi_unet_"))
    print(f"U-Net run folder: {run_dir}", flush=True)
    start = time.perf_counter()
    train(config, run_dir, log_scalar=recorder, start_from=args.start_from, progress=False)
    wall = (time.perf_counter() - start) / 60
    validations = recorder.validations()
    for record in validations:
        print(
            f"iteration {record['iteration']:6d} ({record['training_minutes']:5.1f} min): "
            f"IoU {record.get('iou', float('nan')):.3f} at 0.5, "
            f"{record.get('best_iou', float('nan')):.3f} at best",
            flush=True,
        )
    at_source = None
    if args.scale > 1:
        at_source = score_at_source_resolution(run_dir, config, args.scale, args.data_root)
        for which, record in at_source.items():
            print(
                f"{which} checkpoint (iteration {record['iteration']}) at 5 nm: "
                f"IoU {record['scores']['iou']:.3f} at 0.5, "
                f"{record['calibrated']['iou']:.3f} at its threshold "
                f"{record['calibrated']['threshold']:.3f}, "
                f"{record['scores']['best_iou']:.3f} at the best threshold",
                flush=True,
            )
    return {
        "method": "3D U-Net",
        "recipe": str(args.recipe),
        "scale": args.scale,
        "at_source_resolution": at_source,
        "overrides": list(args.set),
        "start_from": args.start_from,
        "minutes_budget": args.minutes,
        "validate_minutes": args.validate_minutes,
        "validate_every": config.validation.validate_every,
        "seconds_per_iteration": recorder.seconds_per_iteration,
        "wall_minutes": wall,
        "peak_rss_gb": _peak_rss_gb(),
        "torch_threads": torch.get_num_threads(),
        "run_dir": str(run_dir),
        "config": config.model_dump(),
        "config_input": raw_config,
        "validations": validations,
    }


# ---------------------------------------------------------------------------------------------
# Coarser voxels

_VOXEL_SIZE = (5, 5, 5)
_LEVEL = "_s1"


def scaled_data(scale: int, cache: Path, data_root: Path) -> tuple[Path, Path, Path]:
    """Data root and training/validation configs of the split at ``scale`` times the voxel size.

    The level is written once per ``scale`` into ``<cache>/scale<N>/epfl_lucchi_train.zarr``
    (datasets ``<name>_s1``); entries keep their world box, shrunk to whole coarse voxels.
    """
    from incasem.prepare.pyramid import scale_pyramid

    root = cache / f"scale{scale}"
    container = root / "epfl_lucchi_train.zarr"
    configs = []
    for path in (TRAIN_DATA, VALIDATION_DATA):
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
        _write_text(out, json.dumps(scaled, indent=2) + "\n")
        configs.append(out)
    return root, configs[0], configs[1]


def _coarse_probabilities(checkpoint: Any, entry: DataEntry, data_root: Path) -> np.ndarray:
    """Foreground probabilities (float32, z, y, x) of ``entry``'s ROI, predicted block by block
    with the training input size."""
    import torch

    from incasem.predict.block import predict_block
    from incasem.predict.evaluate import layout_for_model

    model, card = checkpoint.model.eval(), checkpoint.card
    voxel_size = Coordinate(entry.voxel_size)
    layout = layout_for_model(model, card.input_size_voxels, voxel_size)
    raw = open_array(entry.path(data_root), entry.raw)
    probabilities = np.zeros(tuple(entry.roi.shape / voxel_size), np.float32)
    with torch.no_grad():
        for write_roi in layout.write_rois(entry.roi):
            block = predict_block(model, raw, write_roi, layout, card.normalisation)
            begin = (write_roi.offset - entry.roi.offset) / voxel_size
            end = begin + write_roi.shape / voxel_size
            probabilities[_slices(begin, end - begin)] = block[FOREGROUND]
    return probabilities


def score_at_source_resolution(
    run_dir: Path, config: Any, scale: int, data_root: Path
) -> dict[str, Any]:
    """The final and the best checkpoint of a coarse run scored against the 5 nm labels.

    Probabilities over the coarse validation crop are upsampled linearly to 5 nm and scored over
    the same world box at 0.5, at the checkpoint's calibrated threshold and at the best one.
    """
    from scipy import ndimage

    from incasem.torch.checkpoint import load_checkpoint

    coarse = check_data_config(
        config.validation.data, data_root=config.directories.data, num_classes=2
    ).entries[0]
    fine = check_data_config(VALIDATION_DATA, data_root=data_root, num_classes=2).entries[0]
    checkpoints = sorted(
        (run_dir / "checkpoints").glob("model_checkpoint_*.pt"),
        key=lambda p: int(p.stem.rsplit("_", 1)[1]),
    )
    best = json.loads((run_dir / "best.json").read_text())
    chosen = {
        "final": checkpoints[-1],
        "best": run_dir / "checkpoints" / f"model_checkpoint_{best['iteration']}.pt",
    }
    results: dict[str, Any] = {}
    class_ids, region = EntryTruth(fine, data_root).read(coarse.roi)
    for which, path in chosen.items():
        done = next((r for r in results.values() if r["checkpoint"] == str(path)), None)
        if done is not None:  # the best checkpoint is the final one: scored once
            results[which] = done
            continue
        checkpoint = load_checkpoint(path)
        coarse_p = _coarse_probabilities(checkpoint, coarse, Path(config.directories.data))
        p = ndimage.zoom(coarse_p, scale, order=1, grid_mode=True, mode="nearest")
        histograms = ThresholdHistograms.from_arrays(
            quantise(np.stack([1 - p, p])), class_ids, region
        )
        threshold, _ = checkpoint.card.decision_threshold()
        results[which] = {
            "checkpoint": str(path),
            "iteration": checkpoint.card.iteration,
            "voxels": list(p.shape),
            "scores": _scores_of(histograms),
            "calibrated": _scores_of(histograms, threshold),
        }
    return results


# ---------------------------------------------------------------------------------------------
# Report


def _at_minutes(validations: list[dict[str, Any]], minutes: float) -> dict[str, Any] | None:
    """The last validation at or before ``minutes`` of training; a run with that budget stops
    at the first iteration past it, so its final validation (up to one step, a few seconds,
    later) counts as at ``minutes``."""
    done = [v for v in validations if v["training_minutes"] <= minutes + 0.1]
    return done[-1] if done else None


def _fmt(record: dict[str, Any] | None) -> str:
    if record is None or "iou" not in record:
        return "—"
    best = record.get("best_iou")
    return f"{best:.3f} / {record['iou']:.3f}" if best is not None else f"— / {record['iou']:.3f}"


def markdown_report(report: dict[str, Any]) -> str:
    """The markdown table of IoU (best threshold / 0.5) after 10, 20, 40 and 60 minutes."""
    results = report["results"]
    header = ["method", *[f"{m} min" for m in TABLE_MINUTES], "final (min)"]
    lines = [
        "# Time to accuracy: Lucchi mitochondria",
        "",
        f"Data: {CITATION}. Train z < 130, validate on the 35x384x512 crop at z >= 130.",
        "",
        "Foreground IoU on the validation crop, at the best-F1 threshold / at 0.5; U-Net: the last "
        "validation at or before that many training minutes (validation time excluded); forest: "
        "its result from the minute it is done (features, fitting and prediction included).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label, run in sorted(results.get("unet", {}).items()):
        validations = run["validations"]
        final = validations[-1] if validations else None
        cells = [_fmt(_at_minutes(validations, m)) for m in TABLE_MINUTES]
        tail = f"{_fmt(final)} ({final['training_minutes']:.1f})" if final else "—"
        lines.append(f"| U-Net `{label}` | " + " | ".join(cells) + f" | {tail} |")
    forest = results.get("forest")
    if forest:
        s = forest["scores"]
        cells = [_fmt(s) if forest["minutes"] <= m else "—" for m in TABLE_MINUTES]
        tail = f"{_fmt(s)} ({forest['minutes']:.1f})"
        lines.append("| random forest | " + " | ".join(cells) + f" | {tail} |")
        lines += [
            "",
            f"Random forest ({forest['features']['count']} filter features, sigmas "
            f"{', '.join(f'{v:g}' for v in forest['features']['sigmas_voxels'])} voxels; "
            f"{forest['sampling']['samples']:,} balanced training voxels; "
            f"{forest['minutes']:.1f} min on {forest['machine']['cpus']} cores, "
            f"peak memory {forest['peak_rss_gb']:.1f} GB):",
            "",
            "| threshold | IoU | F1 | precision | recall |",
            "|---|---|---|---|---|",
            f"| 0.5 | {s['iou']:.3f} | {s['f1']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} |",
            f"| {s['best_threshold']:.3f} (best F1) | {s['best_iou']:.3f} | {s['best_f1']:.3f} | "
            f"{s['best_precision']:.3f} | {s['best_recall']:.3f} |",
        ]
    lines += _source_resolution_table(results.get("unet", {}))
    return "\n".join(lines) + "\n"


def _source_resolution_table(runs: dict[str, Any]) -> list[str]:
    """Coarse runs (``--scale``) scored at 5 nm: IoU at 0.5 / at the model's threshold / best."""
    rows = [
        f"| `{label}` | {which} | {r['iteration']} | {r['scores']['iou']:.3f} | "
        f"{r['calibrated']['iou']:.3f} ({r['calibrated']['threshold']:.3f}) | "
        f"{r['scores']['best_iou']:.3f} ({r['scores']['best_threshold']:.3f}) |"
        for label, run in sorted(runs.items())
        for which, r in (run.get("at_source_resolution") or {}).items()
        if which == "final" or r["iteration"] != run["at_source_resolution"]["final"]["iteration"]
    ]
    if not rows:
        return []
    return [
        "",
        "Runs at coarser voxels (`--scale`), their checkpoints scored against the 5 nm labels "
        "(probabilities upsampled linearly; 34x384x512 voxels): foreground IoU",
        "",
        "| U-Net | checkpoint | iteration | at 0.5 | at the model's threshold | at the best "
        "threshold |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Validation IoU against training minutes: U-Net curves, the forest as a marker."""
    results = report["results"]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    right = max(
        [float(max(TABLE_MINUTES))]
        + [r["minutes_budget"] for r in results.get("unet", {}).values()]
    )
    for i, (label, run) in enumerate(sorted(results.get("unet", {}).items())):
        color = f"C{i}"
        curve = [v for v in run["validations"] if "iou" in v]
        minutes = [v["training_minutes"] for v in curve]
        if any("best_iou" in v for v in curve):
            ax.plot(
                minutes,
                [v.get("best_iou", np.nan) for v in curve],
                "-o",
                color=color,
                ms=3,
                label=f"U-Net {label} (best threshold)",
            )
        ax.plot(minutes, [v["iou"] for v in curve], "--", color=color, label=f"U-Net {label} (0.5)")
    forest = results.get("forest")
    if forest:
        s, m = forest["scores"], forest["minutes"]
        right = max(right, m * 1.1)
        ax.plot([m], [s["best_iou"]], "*", color="k", ms=12, label="random forest (best threshold)")
        ax.plot([m], [s["iou"]], "x", color="k", ms=9, label="random forest (0.5)")
        ax.hlines([s["best_iou"]], m, right, colors="k", linestyles="-", lw=0.8)
        ax.hlines([s["iou"]], m, right, colors="k", linestyles="--", lw=0.8)
    ax.set_xlim(0, right)
    ax.set_ylim(0, 1)
    ax.set_xlabel("training minutes (U-Net: validation time excluded; forest: all work)")
    ax.set_ylabel("foreground IoU, validation crop")
    ax.set_title("Lucchi mitochondria (EPFL, 5 nm FIB-SEM): time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    def save(tmp: Path) -> None:
        fig.savefig(tmp, dpi=100, format="png")

    write_atomic(path, save, overwrite=True)
    plt.close(fig)


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text), overwrite=True)


def write_report(out: Path, update: Callable[[dict[str, Any]], None]) -> None:
    """Merge this run's results into ``<out>.json`` and rewrite the PNG and the table."""
    json_path = out.with_name(out.name + ".json")
    report: dict[str, Any] = {}
    if json_path.is_file():
        report = json.loads(json_path.read_text())
    report.setdefault("benchmark", "lucchi_accuracy")
    report["data"] = {
        "citation": CITATION,
        "training": str(TRAIN_DATA.relative_to(REPO)),
        "validation": str(VALIDATION_DATA.relative_to(REPO)),
        "scoring": "foreground (mitochondria) IoU/F1/precision/recall at p >= 0.5 and at the "
        "best-F1 uint8 threshold, ThresholdHistograms over the validation crop",
    }
    report.setdefault("results", {})
    update(report["results"])
    report["updated"] = datetime.datetime.now().isoformat(timespec="seconds")
    _write_text(json_path, json.dumps(report, indent=2) + "\n")
    plot_report(report, out.with_name(out.name + ".png"))
    _write_text(out.with_name(out.name + ".md"), markdown_report(report))
    print(f"wrote {json_path} (.png, .md)", flush=True)


def _run_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "affinity_cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "processor": platform.processor(),
            # Other work on the machine inflates timings: the load when this run finished.
            "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
        },
        "seed": args.seed,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=("unet", "forest", "both"), default="both")
    parser.add_argument("--recipe", default="configs/lucchi_cpu.yaml", help="training YAML")
    parser.add_argument("--minutes", type=float, default=60, help="U-Net training minutes")
    parser.add_argument(
        "--validate-minutes", type=float, default=5, help="U-Net validation about this often"
    )
    parser.add_argument(
        "--validate-every",
        type=int,
        default=None,
        help="validate every this many iterations instead of timing the first iterations",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "lucchi_accuracy",
        help="output prefix: writes <out>.json, <out>.png, <out>.md",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="recipe overrides, e.g. model.num_fmaps=4 (values parsed as YAML)",
    )
    parser.add_argument("--label", default=None, help="name of the U-Net curve (default recipe)")
    parser.add_argument("--start-from", default=None, help="checkpoint to fine-tune from")
    parser.add_argument("--run-dir", default=None, help="U-Net run folder (default: new in /tmp)")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="U-Net: train and validate at this many times the voxel size (2: 10 nm), scored "
        "at 5 nm at the end",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "incasem_lucchi_accuracy",
        help="where --scale writes its coarse level and data configs",
    )
    parser.add_argument(
        "--score-run",
        type=Path,
        help="only score this finished --scale run folder at 5 nm (prints the JSON)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS))
    parser.add_argument("--forest-samples", type=int, default=200_000)
    parser.add_argument("--forest-tiles", type=int, default=8, help="training tiles to sample")
    parser.add_argument(
        "--forest-tile-shape", type=int, nargs=3, default=[65, 256, 256], help="voxels, z y x"
    )
    parser.add_argument(
        "--forest-block-shape",
        type=int,
        nargs=3,
        default=[35, 192, 256],
        help="validation prediction blocks, voxels z y x",
    )
    args = parser.parse_args(argv)
    if args.label is None:
        args.label = Path(args.recipe).stem
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.score_run:
        config, _ = unet_config(args)
        scored = score_at_source_resolution(args.score_run, config, args.scale, args.data_root)
        print(json.dumps(scored, indent=2), flush=True)

        def put_scores(results: dict[str, Any]) -> None:
            results["unet"][args.label]["at_source_resolution"] = scored

        write_report(args.out, put_scores)
        return
    if args.method in ("forest", "both"):
        record = {**run_forest(args), **_run_info(args)}

        def put_forest(results: dict[str, Any]) -> None:
            results["forest"] = record

        write_report(args.out, put_forest)
    if args.method in ("unet", "both"):
        record = {**run_unet(args), **_run_info(args)}

        def put_unet(results: dict[str, Any]) -> None:
            results.setdefault("unet", {})[args.label] = record

        write_report(args.out, put_unet)


if __name__ == "__main__":
    main()
