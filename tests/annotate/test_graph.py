"""Intensity models, the block cut on voxels and supervoxels, the seeded-object clean-up."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.annotate.cleanup import keep_seeded_objects
from incasem.annotate.graph import cut_supervoxels, cut_voxels, smoothed
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


def test_cleanup_keeps_only_objects_with_an_organelle_seed():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:4, 1:4, 1:4] = True
    mask[6:9, 6:9, 6:9] = True
    seeds = np.zeros(mask.shape, np.uint8)
    seeds[2, 2, 2] = ORGANELLE
    seeds[0, 0, 0] = BACKGROUND
    kept = keep_seeded_objects(mask, seeds_from_array(seeds))
    assert kept[1:4, 1:4, 1:4].all() and kept.sum() == 27
