"""The forest of the Lucchi yardstick: the annotator's pixel classifier, scored on the slab.

The forest is `incasem.annotate.unary.fit_forest` (ilastik-style filter features of
`incasem.annotate.features`, scikit-learn's random forest), the one `incasem annotate` fits to
its strokes; here its seeds are class-balanced voxels of the training labels (z < 130) instead of
strokes: ``per_class`` voxels of each class drawn uniformly from a few of its `SEED_TILE` tiles
(``num_tiles``, tiles with mitochondria first, random order), so that features are only computed
on those tiles (with their context clipped at the training ROI: no voxel of the held-out slab
influences the training). It predicts with its own `ForestUnary.probabilities`, block by block
over the slab with the features' margin of context read around each block, and is scored by
`lucchi_scoring.BoxScores` like the U-Net.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate
from lucchi_scoring import FOREGROUND, TRAIN_DATA, BoxScores, box_entries

from incasem.annotate.features import feature_names
from incasem.annotate.seeds import BACKGROUND, ORGANELLE, Seeds
from incasem.annotate.unary import SEED_TILE, ForestUnary, fit_forest
from incasem.io import open_array
from incasem.io.data_config import DataEntry, check_data_config
from incasem.io.roi import roi_from_voxels
from incasem.predict.truth import EntryTruth

logger = logging.getLogger("lucchi_accuracy.forest")


def tiles(shape: Sequence[int], tile: Sequence[int]) -> list[tuple[tuple[int, ...], ...]]:
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


def training_seeds(
    entry: DataEntry, data_root: Path, num_tiles: int, per_class: int, seed: int
) -> tuple[Seeds, dict[str, Any]]:
    """Class-balanced seeds (voxels from the entry's ROI start, z, y, x) from the labels of a
    few `SEED_TILE` tiles of a training entry; also a record of the tiles and counts."""
    rng = np.random.default_rng(seed)
    class_ids, region = EntryTruth(entry, data_root).read(entry.roi)
    grid = tiles(class_ids.shape, SEED_TILE)
    fractions = [float((class_ids[_slices(*t)] == FOREGROUND).mean()) for t in grid]
    order = sorted(rng.permutation(len(grid)), key=lambda i: fractions[i] < 0.01)
    chosen = [grid[i] for i in order[:num_tiles]]
    candidates = []  # per tile, per class: global coordinates
    for start, size in chosen:
        ids, counted = class_ids[_slices(start, size)], region[_slices(start, size)]
        candidates.append(
            [np.argwhere(counted & (ids == c)) + np.array(start) for c in (0, FOREGROUND)]
        )
    coords, values = [], []
    for c, value in ((0, BACKGROUND), (FOREGROUND, ORGANELLE)):
        pool = np.concatenate([per_tile[c] for per_tile in candidates])
        if len(pool) < per_class:
            logger.warning("class %d: only %d voxels in the chosen tiles", c, len(pool))
        pick = pool[rng.choice(len(pool), min(per_class, len(pool)), replace=False)]
        coords.append(pick)
        values.append(np.full(len(pick), value, np.uint8))
    seeds = Seeds(
        np.concatenate(coords).astype(np.int32),
        np.concatenate(values),
        tuple(int(n) for n in class_ids.shape),
    )
    organelle, background = seeds.counts()
    info = {
        "tiles": [{"start": list(s), "shape": list(n)} for s, n in chosen],
        "tile_voxels": int(sum(np.prod(n) for _, n in chosen)),
        "region_voxels": int(class_ids.size),
        "seeds_background_organelle": [background, organelle],
    }
    return seeds, info


def score_forest(unary: ForestUnary, data_root: Path, block_shape: Sequence[int]) -> BoxScores:
    """The forest's probabilities over the slab, block by block (``block_shape`` voxels), with
    raw context read from the whole dataset around each block; histograms of every box."""
    entries = box_entries(data_root)
    slab = entries["slab"]
    raw = open_array(slab.path(data_root), slab.raw)
    truth = EntryTruth(slab, data_root)
    voxel_size = Coordinate(slab.voxel_size)
    margin = Coordinate((unary.margin,) * 3) * voxel_size
    boxes = BoxScores({name: entry.roi for name, entry in entries.items()}, voxel_size)
    for start, size in tiles(slab.shape, block_shape):
        offset = [o + s for o, s in zip(slab.offset, start, strict=True)]
        roi = roi_from_voxels(offset, size, voxel_size)
        padded_roi = roi.grow(margin, margin).intersect(raw.roi)
        interior = _slices((roi.offset - padded_roi.offset) / voxel_size, size)
        probability = unary.probabilities(np.asarray(raw[padded_roi]), interior)
        boxes.add(roi, probability, *truth.read(roi))
        logger.info("predicted block at %s", list(start))
    return boxes


def run_forest_seed(args: Any, seed: int) -> dict[str, Any]:
    """Fit the annotator's forest with ``seed`` and score it on the boxes; its record."""
    data_root = Path(args.data_root)
    train = check_data_config(TRAIN_DATA, data_root=data_root, num_classes=2).entries[0]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    seeds, sampling = training_seeds(
        train, data_root, args.forest_tiles, args.forest_samples // 2, seed
    )
    timings["seeds_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    unary = fit_forest(
        open_array(train.path(data_root), train.raw),
        train.roi,
        seeds,
        sigmas=args.sigmas,
        trees=args.forest_trees,
        samples_per_class=args.forest_samples // 2,
        seed=seed,
        jobs=args.forest_jobs,
    )
    timings["features_and_fit_s"] = time.perf_counter() - mark
    logger.info("seed %d: forest fitted in %.0f s", seed, timings["features_and_fit_s"])
    mark = time.perf_counter()
    boxes = score_forest(unary, data_root, args.forest_block_shape)
    timings["predict_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - start
    result = boxes.scores()
    print(
        f"forest seed {seed}: {timings['total_s'] / 60:.1f} min, slab IoU "
        f"{result['slab']['iou']:.3f} at 0.5, {result['slab']['best_iou']:.3f} at "
        f"{result['slab']['best_threshold']:.3f}; crop {result['crop']['at_pick_iou']:.3f}",
        flush=True,
    )
    importances = sorted(
        zip(feature_names(unary.sigmas), unary.forest.feature_importances_, strict=True),
        key=lambda item: -item[1],
    )
    return {
        "seed": seed,
        "minutes": timings["total_s"] / 60,
        "scores": result,
        "timings_s": timings,
        "sampling": sampling,
        "top_importances": {name: float(v) for name, v in importances[:10]},
        "histograms": {
            name: h.as_array()[FOREGROUND].tolist() for name, h in boxes.histograms.items()
        },
    }


def forest_row(args: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The row's record of the forest's runs so far (one per seed)."""
    return {
        "method": "random forest of incasem.annotate.unary.fit_forest on filter features",
        "fit_forest": {
            "sigmas_voxels": list(args.sigmas),
            "features": len(feature_names(args.sigmas)),
            "trees": args.forest_trees,
            "samples_per_class": args.forest_samples // 2,
            "jobs": args.forest_jobs,
            "seed_tiles": args.forest_tiles,
            "seed_tile_shape": list(SEED_TILE),
        },
        "prediction_block_shape": list(args.forest_block_shape),
        "runs": runs,
    }
