"""The graph cut of one block: voxels or SLIC supervoxels as nodes, solved with PyMaxflow.

Energy (minimised exactly by a minimum s-t cut):

* unary: the cost of labelling a node organelle or background (`incasem.annotate.unary`: a
  pixel classifier's or an intensity model's negative log likelihood), summed over a
  supervoxel's voxels;
* pairwise: a contrast-sensitive Potts term between 6-neighbours,
  ``pairwise_weight * exp(-(I_p - I_q)^2 / (2 contrast^2)) * (smallest voxel size / distance)``
  on the (lightly smoothed) gray values, so the cut is cheap along strong edges (membranes) and
  expensive through homogeneous regions; for supervoxels the weights of all voxel faces between
  two supervoxels are summed;
* seeds: hard constraints (infinite terminal capacities). A supervoxel holding seeds of one class
  gets that class; one holding both gets the class of the majority, and its seeded voxels keep
  their own class in the output.

A voxel node costs about 270 bytes at the peak of a cut (PyMaxflow's node and three pairs of
double-capacity arcs, plus our cost arrays; 1.1 GB for a 160³ block, measured), so a voxel graph
is only built per block (see `incasem.annotate.run`). Supervoxels of a few hundred voxels make the
graph two to three orders of magnitude smaller, at the price of SLIC's own time and of boundaries
that follow the supervoxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from incasem.annotate.seeds import BACKGROUND, ORGANELLE

#: Terminal capacity of a seed: larger than any sum of pairwise weights a node can have.
_HARD = 1e9


def smoothed(raw: np.ndarray, sigma: float, voxel_size: Sequence[int]) -> np.ndarray:
    """Gaussian-smoothed float32 copy of a (z, y, x) block; ``sigma`` in voxels of the smallest
    voxel size (scaled per axis for anisotropic voxels); 0 returns the gray values as float32."""
    from scipy import ndimage

    data = raw.astype(np.float32)
    if sigma <= 0:
        return data
    finest = min(voxel_size)
    return ndimage.gaussian_filter(data, [sigma * finest / v for v in voxel_size], mode="reflect")


def _pairwise(
    raw: np.ndarray, axis: int, pairwise_weight: float, contrast: float, voxel_size: Sequence[int]
) -> np.ndarray:
    difference = np.diff(raw.astype(np.float32), axis=axis)
    scale = pairwise_weight * min(voxel_size) / voxel_size[axis]
    return (scale * np.exp(-(difference**2) / (2.0 * contrast**2))).astype(np.float32)


def _terminal_capacities(
    organelle_cost: np.ndarray, background_cost: np.ndarray, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # Source side = organelle: the source capacity is paid when a node goes to the sink
    # (background), the sink capacity when it stays with the source (organelle).
    source = np.where(seeds == ORGANELLE, _HARD, background_cost)
    sink = np.where(seeds == BACKGROUND, _HARD, organelle_cost)
    source[seeds == BACKGROUND] = 0.0
    sink[seeds == ORGANELLE] = 0.0
    return source, sink


def cut_voxels(
    raw: np.ndarray,
    costs: tuple[np.ndarray, np.ndarray],
    seeds: np.ndarray,
    pairwise_weight: float,
    contrast: float,
    voxel_size: Sequence[int],
) -> np.ndarray:
    """Minimum cut with one node per voxel; returns a bool (z, y, x) organelle mask.

    Args:
        raw: gray values of the block (z, y, x) for the pairwise term (may be smoothed).
        costs: the unary costs (organelle, background) per voxel, each of ``raw``'s shape.
        seeds: uint8 0/1/2 per voxel, same shape.
        pairwise_weight: weight of the pairwise term (``lambda``).
        contrast: gray-value difference scale of the pairwise term (``sigma``).
        voxel_size: nm, z, y, x.
    """
    import maxflow

    graph = maxflow.GraphFloat()
    nodes = graph.add_grid_nodes(raw.shape)
    for axis in range(3):
        weights = np.zeros(raw.shape, np.float32)
        inner = [slice(None)] * 3
        inner[axis] = slice(0, -1)
        weights[tuple(inner)] = _pairwise(raw, axis, pairwise_weight, contrast, voxel_size)
        structure = np.zeros((3, 3, 3))
        neighbour = [1, 1, 1]
        neighbour[axis] = 2
        structure[tuple(neighbour)] = 1
        graph.add_grid_edges(nodes, weights=weights, structure=structure, symmetric=True)
        del weights
    graph.add_grid_tedges(nodes, *_terminal_capacities(*costs, seeds))
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


def boundary_band_seeds(organelle: np.ndarray, seeds: np.ndarray, width: int) -> np.ndarray:
    """Seeds for re-cutting a result's boundary: voxels deeper than ``width`` voxels inside
    ``organelle`` become organelle seeds, those farther than ``width`` outside background seeds,
    so only a band of ``2 * width`` voxels around its boundary stays free; the given ``seeds``
    (uint8 0/1/2, z y x) keep their class."""
    from scipy import ndimage

    band = seeds.copy()
    free = seeds == 0
    band[free & ndimage.binary_erosion(organelle, iterations=width)] = ORGANELLE
    band[free & ~ndimage.binary_dilation(organelle, iterations=width)] = BACKGROUND
    return band


def supervoxels(features: np.ndarray, size: int, compactness: float = 0.1) -> np.ndarray:
    """SLIC supervoxels of about ``size`` voxels on a (z, y, x) float block; int32 ids from 0.

    ``compactness`` trades gray-value similarity against regular shape (skimage's parameter, for
    gray values in 0-255 units).
    """
    from skimage.segmentation import slic

    segments = max(1, features.size // max(1, size))
    # skimage's connectivity enforcement merges small fragments into a neighbour, across
    # organelle boundaries as readily as not (a dark ball's best-case IoU fell from 0.99 to 0.80
    # in tests/annotate). The cut does not need connected nodes: edges come from voxel faces.
    labels = slic(
        features.astype(np.float64),
        n_segments=segments,
        compactness=compactness,
        channel_axis=None,
        start_label=0,
        enforce_connectivity=False,
    )
    return labels.astype(np.int32)


def cut_supervoxels(
    raw: np.ndarray,
    costs: tuple[np.ndarray, np.ndarray],
    seeds: np.ndarray,
    pairwise_weight: float,
    contrast: float,
    voxel_size: Sequence[int],
    size: int,
    image: np.ndarray,
) -> np.ndarray:
    """Minimum cut with one node per SLIC supervoxel of about ``size`` voxels of ``image`` (a
    smoothed copy of the gray values, same shape); other arguments as in `cut_voxels`. Returns a
    bool (z, y, x) organelle mask in which seeded voxels keep their class.
    """
    import maxflow

    labels = supervoxels(image, size)
    count = int(labels.max()) + 1
    organelle_cost, background_cost = costs
    unary_organelle = np.bincount(labels.ravel(), organelle_cost.ravel(), count)
    unary_background = np.bincount(labels.ravel(), background_cost.ravel(), count)
    organelle_seeds = np.bincount(labels.ravel(), (seeds == ORGANELLE).ravel(), count)
    background_seeds = np.bincount(labels.ravel(), (seeds == BACKGROUND).ravel(), count)
    node_seeds = np.zeros(count, np.uint8)
    node_seeds[(organelle_seeds > 0) & (organelle_seeds >= background_seeds)] = ORGANELLE
    node_seeds[(background_seeds > 0) & (background_seeds > organelle_seeds)] = BACKGROUND

    pairs, weights = [], []
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)[:-1].ravel()
        b = np.moveaxis(labels, axis, 0)[1:].ravel()
        face = _pairwise(raw, axis, pairwise_weight, contrast, voxel_size)
        w = np.moveaxis(face, axis, 0).ravel()
        boundary = a != b
        low, high = np.minimum(a[boundary], b[boundary]), np.maximum(a[boundary], b[boundary])
        pairs.append(low.astype(np.int64) * count + high)
        weights.append(w[boundary])
    keys, inverse = np.unique(np.concatenate(pairs), return_inverse=True)
    summed = np.bincount(inverse, np.concatenate(weights), len(keys))

    graph = maxflow.GraphFloat()
    nodes = graph.add_nodes(count)
    graph.add_edges(nodes[keys // count], nodes[keys % count], summed, summed)
    source, sink = _terminal_capacities(unary_organelle, unary_background, node_seeds)
    graph.add_grid_tedges(nodes, source, sink)
    graph.maxflow()
    organelle = ~graph.get_grid_segments(nodes)
    result = organelle[labels]
    result[seeds == ORGANELLE] = True
    result[seeds == BACKGROUND] = False
    return result
