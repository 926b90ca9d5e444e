"""Blockwise counts give the whole-volume scores; histograms give every threshold's counts."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.metrics import (
    ConfusionCounts,
    ThresholdHistograms,
    flat_scores,
    level_for_threshold,
    quantise,
    scores,
)


def _volume(seed: int = 0, shape=(20, 24, 28), num_classes: int = 3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, shape)
    prediction = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, num_classes, shape))
    region = rng.random(shape) < 0.8
    return prediction, truth, region


def test_scores_formulas():
    assert scores(8, 2, 4) == pytest.approx(
        {"f1": 16 / 22, "precision": 0.8, "recall": 8 / 12, "iou": 8 / 14}
    )
    # nothing to find and nothing found is perfect, not NaN
    assert scores(0, 0, 0) == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "iou": 1.0}
    assert scores(0, 3, 0)["f1"] == 0.0 and scores(0, 3, 0)["recall"] == 1.0


def test_counts_match_direct_computation():
    prediction, truth, region = _volume()
    counts = ConfusionCounts.from_arrays(prediction, truth, region, 3)
    for c in range(3):
        p, t = prediction[region] == c, truth[region] == c
        assert counts.tp[c] == np.sum(p & t)
        assert counts.fp[c] == np.sum(p & ~t)
        assert counts.fn[c] == np.sum(~p & t)


def test_blockwise_sum_equals_whole_volume():
    prediction, truth, region = _volume(1)
    whole = ConfusionCounts.from_arrays(prediction, truth, region, 3)
    total = ConfusionCounts.zeros(3)
    for z in range(0, 20, 7):
        for x in range(0, 28, 9):
            block = np.s_[z : z + 7, :, x : x + 9]
            total = total + ConfusionCounts.from_arrays(
                prediction[block], truth[block], region[block], 3
            )
    np.testing.assert_array_equal(total.as_array(), whole.as_array())
    assert ConfusionCounts.from_array(whole.as_array()).class_scores(1) == whole.class_scores(1)


def test_flat_scores_keys():
    prediction, truth, region = _volume(2)
    counts = ConfusionCounts.from_arrays(prediction, truth, region, 3)
    result = flat_scores(counts, ["bg", "mito", "er"])
    assert set(result) == {
        "f1", "precision", "recall", "iou",
        "mito/f1", "mito/precision", "mito/recall", "mito/iou",
        "er/f1", "er/precision", "er/recall", "er/iou",
    }  # fmt: skip
    assert result["mito/f1"] == counts.class_scores(1)["f1"]
    assert result["er/f1"] == counts.class_scores(2)["f1"]
    # more than two classes: the unprefixed scores are the mean over the foreground classes
    for key in ("f1", "precision", "recall", "iou"):
        assert result[key] == pytest.approx((result[f"mito/{key}"] + result[f"er/{key}"]) / 2)
    assert result["mito/f1"] != result["er/f1"]
    assert "class_2/iou" in flat_scores(counts)
    two = ConfusionCounts.from_arrays(np.minimum(prediction, 1), np.minimum(truth, 1), region, 2)
    assert flat_scores(two)["f1"] == two.class_scores(1)["f1"]  # one foreground class: its own


def test_counts_reject_bad_ids():
    with pytest.raises(ValueError, match="class ids"):
        ConfusionCounts.from_arrays(np.array([0, 3]), np.array([0, 1]), None, 3)


def test_histogram_sweep_equals_thresholding_stored_levels():
    rng = np.random.default_rng(3)
    shape = (16, 18, 20)
    p1 = rng.random(shape).astype(np.float32)
    probabilities = np.stack([1 - p1, p1])
    truth = (rng.random(shape) < p1).astype(np.uint8)
    region = rng.random(shape) < 0.9
    levels = quantise(probabilities)
    histograms = ThresholdHistograms.from_arrays(levels, truth, region)
    for threshold in (0.1, 0.5, 0.73, 128 / 255):
        predicted = levels[1] >= level_for_threshold(threshold)
        t = truth[region] == 1
        p = predicted[region]
        expected = (int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)))
        assert histograms.counts_at(1, threshold) == expected
    sweep = histograms.sweep(1)
    assert [item["threshold"] for item in sweep][:2] == [0.05, 0.1] and len(sweep) == 19
    best = histograms.best_threshold(1)
    assert best["f1"] >= max(item["f1"] for item in sweep)


def test_histograms_add_and_store():
    levels = quantise(np.random.default_rng(4).random((2, 5, 6, 7)))
    truth = np.zeros((5, 6, 7), np.uint8)
    a = ThresholdHistograms.from_arrays(levels, truth, None)
    both = a + a
    assert both.positive[0].sum() == 2 * 5 * 6 * 7
    restored = ThresholdHistograms.from_array(both.as_array())
    np.testing.assert_array_equal(restored.negative, both.negative)


def test_quantise_levels():
    np.testing.assert_array_equal(
        quantise(np.array([0.0, 0.5, 127.5 / 255, 1.0, 1.2])), [0, 128, 128, 255, 255]
    )
    assert level_for_threshold(0.5) == 128 and level_for_threshold(128 / 255) == 128
