"""Intensity models, the block cut on voxels and supervoxels, the seeded-object clean-up."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.annotate.cleanup import keep_seeded_objects
from incasem.annotate.graph import boundary_band_seeds, cut_supervoxels, cut_voxels, smoothed
from incasem.annotate.intensity import fit_gmm, fit_intensity_model
from incasem.annotate.seeds import BACKGROUND, ORGANELLE, seeds_from_array
from incasem.errors import IncasemError


def test_gmm_finds_the_modes():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(60, 5, 4000), rng.normal(150, 8, 6000)])
    mixture = fit_gmm(values, components=2)
    weights, means = mixture.weights_, mixture.means_.ravel()
    order = np.argsort(means)
    np.testing.assert_allclose(means[order], [60, 150], atol=1.5)
    np.testing.assert_allclose(weights[order], [0.4, 0.6], atol=0.02)


@pytest.mark.parametrize("kind", ["gmm", "histogram"])
def test_costs_prefer_the_class_whose_seeds_look_alike(kind):
    rng = np.random.default_rng(1)
    model = fit_intensity_model(rng.normal(80, 6, 500), rng.normal(160, 6, 500), kind=kind)
    organelle, background = model.costs(np.array([80.0, 160.0]))
    assert organelle[0] < background[0] and background[1] < organelle[1]
    if kind == "gmm":  # tails extrapolate: unseen bright voxels go to the bright class
        organelle, background = model.costs(np.array([250.0]))
        assert background[0] < organelle[0]
    with pytest.raises(IncasemError, match="choose one of gmm, histogram"):
        fit_intensity_model(np.ones(3), np.zeros(3), kind="svm")


def _dark_ball():
    rng = np.random.default_rng(2)
    z, y, x = np.mgrid[:32, :32, :32]
    ball = (z - 16) ** 2 + (y - 14) ** 2 + (x - 17) ** 2 < 9**2
    raw = np.where(ball, 70, 170) + rng.normal(0, 20, ball.shape)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    seeds = np.zeros(ball.shape, np.uint8)
    seeds[16, 12:17, 17] = ORGANELLE
    seeds[16, 28, 2:30] = BACKGROUND
    seeds[3, 2:30, 5] = BACKGROUND
    return raw, ball, seeds


@pytest.mark.parametrize("supervoxels", [0, 40])
def test_cut_recovers_a_ball_from_two_strokes(supervoxels):
    raw, ball, seeds = _dark_ball()
    features = smoothed(raw, 1.0, (5, 5, 5))
    values = features[seeds == ORGANELLE], features[seeds == BACKGROUND]
    costs = fit_intensity_model(*values).costs(features)
    args = (raw, costs, seeds, 30.0, 20.0, (5, 5, 5))
    result = cut_supervoxels(*args, supervoxels, features) if supervoxels else cut_voxels(*args)
    iou = (result & ball).sum() / (result | ball).sum()
    assert iou > 0.9
    assert result[seeds == ORGANELLE].all() and not result[seeds == BACKGROUND].any()


def test_boundary_band_leaves_only_the_band_free_and_keeps_the_seeds():
    organelle = np.zeros((20, 20, 20), bool)
    organelle[5:15, 5:15, 5:15] = True
    seeds = np.zeros(organelle.shape, np.uint8)
    seeds[10, 10, 10] = BACKGROUND  # a seed deep inside keeps its class
    seeds[0, 0, 0] = ORGANELLE  # and one far outside
    band = boundary_band_seeds(organelle, seeds, width=2)
    assert band[10, 10, 10] == BACKGROUND and band[0, 0, 0] == ORGANELLE
    assert (band[8:12, 8:12, 8:12] == ORGANELLE).sum() == 4**3 - 1
    assert band[7, 7, 7] == ORGANELLE and band[6, 6, 6] == 0 and band[5, 5, 5] == 0
    assert band[4, 10, 10] == 0 and band[3, 10, 10] == 0 and band[2, 10, 10] == BACKGROUND
    assert band[1, 1, 1] == BACKGROUND


def test_band_recut_with_gray_values_takes_in_the_organelles_membrane():
    """A result that stops at the inner edge of an organelle's dark membrane (as a classifier
    trained on strokes away from boundaries does) grows to the membrane's outer edge."""
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:40, :40, :40]
    radius = np.sqrt((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2)
    inner, whole = radius < 9, radius < 11  # a 2-voxel membrane
    raw = np.select([inner, whole], [110, 40], 190) + rng.normal(0, 10, inner.shape)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    seeds = np.zeros(inner.shape, np.uint8)
    seeds[20, 16:25, 20] = ORGANELLE
    seeds[20, 36:39, 2:38] = BACKGROUND
    features = smoothed(raw, 1.0, (5, 5, 5))
    model = fit_intensity_model(features[seeds == ORGANELLE], features[seeds == BACKGROUND])
    band = boundary_band_seeds(inner, seeds, width=3)
    result = cut_voxels(raw, model.costs(features), band, 3.0, 20.0, (5, 5, 5))

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert iou(inner, whole) < 0.6 and iou(result, whole) > 0.9


def test_cleanup_keeps_only_objects_with_an_organelle_seed():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:4, 1:4, 1:4] = True
    mask[6:9, 6:9, 6:9] = True
    seeds = np.zeros(mask.shape, np.uint8)
    seeds[2, 2, 2] = ORGANELLE
    seeds[0, 0, 0] = BACKGROUND
    kept = keep_seeded_objects(mask, seeds_from_array(seeds))
    assert kept[1:4, 1:4, 1:4].all() and kept.sum() == 27
