"""Intensity models of organelle and background, fitted to the seeded voxels: the unary terms.

Two models per class, both in one dimension (the Gaussian-smoothed gray value; smoothing makes a
textured organelle such as a mitochondrion, with dark cristae in a gray matrix, one gray level):

* ``gmm`` (default): a Gaussian mixture fitted with EM. Its tails extrapolate, so gray values
  that no stroke touched (bright resin, a dark nucleus) still go to the nearer class; on the
  synthetic cell this is what separates them, where a histogram leaves both classes equally
  unlikely and lets the smoothness term decide.
* ``histogram``: smoothed, normalised histograms with a small floor; follows any shape exactly
  when the strokes sample every kind of voxel.

The mixture is scikit-learn's ``GaussianMixture`` (1D, one variance per component), started at
evenly spaced quantiles so that a fit is reproducible.

The cost of a class at a voxel is the negative log likelihood of its feature value under that
class's model. Models are evaluated through a lookup table over `TABLE_SIZE` bins spanning the
seeded values' range (values outside clamp to the edge bins), which keeps the per-voxel cost one
indexing operation and makes a model a few kilobytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from incasem.errors import IncasemError

MODELS = ("gmm", "histogram")
TABLE_SIZE = 1024
_EM_ITERATIONS = 100
_MAX_FIT_VALUES = 200_000  # EM on more seeds only costs time; a random subset is as good


def fit_gmm(values: np.ndarray, components: int = 3, min_std: float = 2.0, seed: int = 0) -> Any:
    """A fitted 1D Gaussian mixture (scikit-learn ``GaussianMixture``) of ``values``.

    Means start at evenly spaced quantiles; ``min_std`` (gray levels) is added to every
    component's standard deviation as variance (``reg_covar``), so that a class of near-constant
    seeds does not collapse to a spike. Attributes of interest: ``weights_``, ``means_`` (k, 1),
    ``covariances_`` (k,); ``score_samples`` gives the log density.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, np.float64).ravel()
    if len(x) > _MAX_FIT_VALUES:
        x = np.random.default_rng(seed).choice(x, _MAX_FIT_VALUES, replace=False)
    components = max(1, min(components, len(np.unique(x))))
    means = np.quantile(x, (np.arange(components) + 0.5) / components)
    mixture = GaussianMixture(
        components,
        covariance_type="spherical",
        reg_covar=min_std**2,
        max_iter=_EM_ITERATIONS,
        means_init=means[:, None],
        random_state=seed,
    )
    return mixture.fit(x[:, None])


@dataclass(frozen=True)
class IntensityModel:
    """Costs of organelle and background per feature value, as lookup tables.

    Attributes:
        low, high: feature range covered by the tables (values outside clamp to the edges).
        organelle_cost, background_cost: float32 tables of `TABLE_SIZE` negative log likelihoods.
    """

    low: float
    high: float
    organelle_cost: np.ndarray
    background_cost: np.ndarray

    def costs(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-voxel (organelle, background) costs of a feature array of any shape."""
        scale = (TABLE_SIZE - 1) / (self.high - self.low)
        index = np.clip(np.rint((features - self.low) * scale), 0, TABLE_SIZE - 1).astype(np.intp)
        return self.organelle_cost[index], self.background_cost[index]


def fit_intensity_model(
    organelle_values: np.ndarray,
    background_values: np.ndarray,
    kind: str = "gmm",
    components: int = 3,
    bins: int = 64,
) -> IntensityModel:
    """Fit one model per class to the feature values at its seeds.

    Args:
        organelle_values: features (smoothed gray values) at organelle seeds.
        background_values: features at background seeds.
        kind: ``"gmm"`` (Gaussian mixture of ``components`` components) or ``"histogram"``
            (``bins`` bins over the seeded range, smoothed by one bin, floored).
    """
    if kind not in MODELS:
        raise IncasemError(f"intensity model {kind!r}: choose one of {', '.join(MODELS)}")
    both = np.concatenate([organelle_values, background_values]).astype(np.float64)
    low, high = float(both.min()), float(both.max())
    margin = max(0.25 * (high - low), 1.0)
    low, high = low - margin, high + margin
    centres = np.linspace(low, high, TABLE_SIZE)
    tables = []
    for values in (organelle_values, background_values):
        if kind == "gmm":
            log_density = fit_gmm(values, components).score_samples(centres[:, None])
        else:
            from scipy import ndimage

            counts, edges = np.histogram(values, bins=bins, range=(low, high))
            smooth = ndimage.gaussian_filter1d(counts.astype(np.float64), 1.0, mode="constant")
            density = (smooth + 1e-3 * len(values) / bins + 1e-6) / (edges[1] - edges[0])
            density /= density.sum() * (edges[1] - edges[0])
            which = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, bins - 1)
            log_density = np.log(density[which])
        tables.append((-log_density).astype(np.float32))
    # Only cost differences matter to the cut; shifting both tables keeps them non-negative.
    floor = min(t.min() for t in tables)
    return IntensityModel(low, high, tables[0] - floor, tables[1] - floor)
