"""The graph cut's unary terms: what each voxel costs as organelle and as background.

Two kinds, both fitted to the seeded voxels of one annotation:

* ``forest``: a pixel classifier, as in ilastik: filter features at several scales
  (`incasem.annotate.features`: smoothing, Laplacian, gradient magnitude, Hessian and
  structure-tensor eigenvalues) and scikit-learn's random forest trained on the seeds; a voxel
  costs ``-log p`` of each class. Why: on real FIB-SEM a gray value alone cannot tell a
  mitochondrion from other dark membranes (a Lucchi crop: F1 0.20-0.72 with the gray-value
  model, falling as strokes were added), while texture and shape at a few scales can. Strokes
  keep away from boundaries, so the forest never sees an organelle's own membrane marked and
  calls it background like every other membrane; the cut (`incasem.annotate.run`) therefore
  re-cuts a band around the forest's objects with the gray-value mixture (``refine``). On the
  benchmark's Lucchi crop (z 32:160, y 512:768, x 0:256) that gives F1 0.83 / 0.84 / 0.87 / 0.87
  with strokes on 1 / 2 / 3 / 5 planes per axis (the gray-value mixture: 0.67 / 0.52 / 0.20 /
  0.72), 0.77 against the mixture's 0.78 on the crop its defaults were tuned on (z 0:64, y
  256:512, x 384:640), and 0.86 against 0.98 on the synthetic cell, whose organelles differ in
  gray value. The default, since real data is what it is for.
* ``gmm`` / ``histogram``: one gray-value model per class (`incasem.annotate.intensity`) on the
  Gaussian-smoothed raw; fast.

A unary is built once per annotation (`fit_unary`) and sent to every block worker; a block asks
it for `Unary.costs` of its read region, giving the raw with `Unary.margin` voxels of extra
context around that region (clipped at the ROI), which the filters need to be exact there.
Forest features are isotropic in voxels (for anisotropic data an approximation, as ilastik's
default); sizes are voxels, axis order z, y, x.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.annotate.features import DEFAULT_SIGMAS, feature_margin, filter_features
from incasem.annotate.graph import smoothed
from incasem.annotate.intensity import MODELS, IntensityModel, fit_intensity_model
from incasem.annotate.seeds import BACKGROUND, ORGANELLE, Seeds

#: Unary kinds: the pixel classifier and the gray-value models.
UNARIES = ("forest", *MODELS)
#: Probabilities are floored here, so one voxel's cost is at most -log(1e-3) = 6.9.
PROBABILITY_FLOOR = 1e-3
_SLAB = 48  # z planes whose features are held at once (45 float32 values per voxel)


class Unary(Protocol):
    """What a block needs from a unary term."""

    #: voxels of raw context the costs need on each side of the region they are asked for.
    margin: int

    def costs(
        self, raw: np.ndarray, interior: tuple[slice, slice, slice], voxel_size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(organelle, background) float32 costs of ``raw[interior]``; ``raw`` holds up to
        ``margin`` voxels of context around it."""
        ...


@dataclass(frozen=True)
class IntensityUnary:
    """Gray-value models on the raw smoothed with ``sigma`` voxels (no context needed: the
    smoothing reflects at the block's faces, as the seeds' values were computed)."""

    model: IntensityModel
    sigma: float
    margin: int = 0

    def costs(
        self, raw: np.ndarray, interior: tuple[slice, slice, slice], voxel_size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.model.costs(smoothed(raw[interior], self.sigma, voxel_size))


@dataclass(frozen=True)
class ForestUnary:
    """A random forest on filter features at ``sigmas`` (voxels).

    Attributes:
        forest: the fitted ``sklearn.ensemble.RandomForestClassifier`` (classes 0 background,
            1 organelle).
        sigmas: feature scales, voxels.
    """

    forest: Any
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS

    @property
    def margin(self) -> int:
        return feature_margin(self.sigmas)

    def probabilities(self, raw: np.ndarray, interior: tuple[slice, slice, slice]) -> np.ndarray:
        """p(organelle) of ``raw[interior]``, float32, computed in slabs of z planes."""
        shape = raw[interior].shape
        result = np.empty(shape, np.float32)
        z_start = interior[0].start or 0
        for z in range(0, shape[0], _SLAB):
            depth = min(_SLAB, shape[0] - z)
            low = max(0, z_start + z - self.margin)
            high = min(raw.shape[0], z_start + z + depth + self.margin)
            slab = (slice(z_start + z - low, z_start + z - low + depth), *interior[1:])
            features = filter_features(raw[low:high], self.sigmas, slab)
            flat = features.reshape(len(features), -1).T
            p = self.forest.predict_proba(flat)[:, 1]
            result[z : z + depth] = p.reshape(features.shape[1:])
        return result

    def costs(
        self, raw: np.ndarray, interior: tuple[slice, slice, slice], voxel_size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        p = np.clip(self.probabilities(raw, interior), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        return -np.log(p), -np.log1p(-p)


#: Seed features are computed tile by tile (voxels, z y x, on a grid from the ROI start): filters
#: of a whole ROI slab would hold gigabytes on a large ROI.
SEED_TILE = (64, 256, 256)


def _seed_tiles(
    raw_array: Any, roi: Roi, seeds: Seeds, margin: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per tile of the ROI that holds seeds: (raw of the tile with ``margin`` voxels of context
    clipped at the ROI, the seeds' coordinates in that array, their classes)."""
    voxel_size = raw_array.voxel_size
    tile = np.array(SEED_TILE)
    which = seeds.coords // tile
    keys, inverse = np.unique(which, axis=0, return_inverse=True)
    for i, key in enumerate(keys):
        here = inverse.ravel() == i
        start = key * tile
        low = np.maximum(0, start - margin)
        high = np.minimum(seeds.shape, start + tile + margin)
        box = Roi(roi.offset + Coordinate(low) * voxel_size, Coordinate(high - low) * voxel_size)
        yield np.asarray(raw_array[box]), seeds.coords[here] - low, seeds.values[here]


def _balanced(seeds: Seeds, per_class: int, rng: np.random.Generator) -> Seeds:
    """At most ``per_class`` seeds of each class, drawn uniformly."""
    keep = []
    for value in (ORGANELLE, BACKGROUND):
        index = np.flatnonzero(seeds.values == value)
        if len(index) > per_class:
            index = rng.choice(index, per_class, replace=False)
        keep.append(index)
    chosen = np.sort(np.concatenate(keep))
    return Seeds(seeds.coords[chosen], seeds.values[chosen], seeds.shape)


def fit_forest(
    raw_array: Any,
    roi: Roi,
    seeds: Seeds,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    trees: int = 50,
    samples_per_class: int = 20_000,
    seed: int = 0,
    jobs: int = 1,
) -> ForestUnary:
    """Train the pixel classifier on (at most ``samples_per_class`` of each class of) the seeds.

    Features are computed on the `SEED_TILE` tiles of the ROI that hold seeds, with
    `feature_margin` voxels of context (clipped at the ROI, as the blocks clip theirs); the forest
    weighs the classes equally whatever their seed counts.

    Args:
        raw_array: the raw (`incasem.io.open_array`); ``roi`` and the seeds are in its voxels.
        roi: world box (nm) the seeds' coordinates are relative to.
        seeds: the labelled voxels (z, y, x, voxels from the ROI start).
        sigmas: feature scales, voxels.
        trees: number of trees.
        samples_per_class: at most this many seeds of each class are used, drawn uniformly.
        seed: seed of the draw and of the forest.
        jobs: worker threads of the forest's fitting and prediction (the annotator fits one per
            block worker, hence 1).
    """
    from sklearn.ensemble import RandomForestClassifier

    sigmas = tuple(float(s) for s in sigmas)
    chosen = _balanced(seeds, samples_per_class, np.random.default_rng(seed))
    features, classes = [], []
    for raw, coords, values in _seed_tiles(raw_array, roi, chosen, feature_margin(sigmas)):
        features.append(filter_features(raw, sigmas, tuple(coords.T)).T)
        classes.append((values == ORGANELLE).astype(np.uint8))
    forest = RandomForestClassifier(
        n_estimators=trees, class_weight="balanced", n_jobs=jobs, random_state=seed
    )
    forest.fit(np.concatenate(features), np.concatenate(classes))
    return ForestUnary(forest, sigmas)


def fit_intensity_unary(
    raw_array: Any, roi: Roi, seeds: Seeds, kind: str, components: int, sigma: float
) -> tuple[IntensityUnary, np.ndarray]:
    """Gray-value models of the seeds' smoothed values; also the organelle seeds' values (for
    the outlier clean-up)."""
    margin = int(np.ceil(4 * sigma)) + 1
    organelle, background = [], []
    for raw, coords, values in _seed_tiles(raw_array, roi, seeds, margin):
        features = smoothed(raw, sigma, raw_array.voxel_size)[tuple(coords.T)]
        organelle.append(features[values == ORGANELLE])
        background.append(features[values == BACKGROUND])
    organelle_values = np.concatenate(organelle)
    model = fit_intensity_model(organelle_values, np.concatenate(background), kind, components)
    return IntensityUnary(model, sigma), organelle_values
