"""Each custom gunpowder node does what the training pipeline relies on."""

from __future__ import annotations

import random

import gunpowder as gp
import numpy as np
import pytest
from funlib.persistence import Array

from incasem.gunpowder import (
    ExcludeValue,
    ForegroundBiasedLocation,
    GammaAugment,
    MergeLabels,
    ValidMask,
)

VOXEL = gp.Coordinate((2, 2, 2))


def _source(key: gp.ArrayKey, data: np.ndarray, offset=(0, 0, 0)) -> gp.ArraySource:
    return gp.ArraySource(key, Array(data, offset=offset, voxel_size=VOXEL), False)


def _request(roi: gp.Roi, *keys: gp.ArrayKey) -> gp.BatchRequest:
    request = gp.BatchRequest()
    for key in keys:
        request[key] = gp.ArraySpec(roi=roi)
    return request


def test_valid_mask_is_zero_outside_roi_and_inside_masked_out_voxels():
    mask_key, valid_key = gp.ArrayKey("MASK"), gp.ArrayKey("VALID")
    mask = np.ones((20, 20, 20), np.uint8)
    mask[:, :, :5] = 0
    roi = gp.Roi((4, 4, 4), (20, 20, 20))  # voxels 2..12 in every axis
    pipeline = _source(mask_key, mask) + ValidMask(
        valid_key, roi, VOXEL, [mask_key], padding=gp.Coordinate((6, 6, 6))
    )
    with gp.build(pipeline):
        assert pipeline.spec[valid_key].roi == gp.Roi((-2, -2, -2), (32, 32, 32))
        batch = pipeline.request_batch(_request(gp.Roi((-2, -2, -2), (32, 32, 32)), valid_key))
    valid = batch[valid_key].data
    expected = np.zeros((16, 16, 16), np.uint8)
    expected[3:13, 3:13, 3:13] = 1
    expected[:, :, :6] = 0  # mask voxel x < 5 is local x < 6
    np.testing.assert_array_equal(valid, expected)


def test_merge_labels_assigns_class_ids_later_wins_and_empty_gives_background():
    a, b, out, ref = (gp.ArrayKey(n) for n in ("LA", "LB", "OUT", "REF"))
    la = np.zeros((4, 4, 4), np.uint8)
    la[:2] = 255
    lb = np.zeros((4, 4, 4), np.uint8)
    lb[1:3] = 1
    sources = (_source(a, la), _source(b, lb), _source(ref, np.ones((4, 4, 4), np.uint8)))
    pipeline = sources + gp.MergeProvider() + MergeLabels({a: 1, b: 2}, out, reference=ref)
    roi = gp.Roi((0, 0, 0), (8, 8, 8))
    with gp.build(pipeline):
        batch = pipeline.request_batch(_request(roi, out))
    np.testing.assert_array_equal(batch[out].data[:, 0, 0], [1, 2, 2, 0])
    assert batch[out].data.dtype == np.uint8

    only_ref = _source(ref, np.ones((4, 4, 4), np.uint8)) + MergeLabels({}, out, reference=ref)
    with gp.build(only_ref):
        batch = only_ref.request_batch(_request(roi, out))
    assert not batch[out].data.any() and batch[out].data.shape == (4, 4, 4)


def test_exclude_value_removes_unannotated_voxels_from_mask():
    labels_key, mask_key = gp.ArrayKey("L"), gp.ArrayKey("M")
    labels = np.array([0, 1, 255, 1], np.uint8).reshape(1, 1, 4)
    pipeline = (
        (
            _source(labels_key, labels),
            _source(mask_key, np.ones((1, 1, 4), np.uint8)),
        )
        + gp.MergeProvider()
        + ExcludeValue(labels_key, 255, mask_key)
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(_request(gp.Roi((0, 0, 0), (2, 2, 8)), labels_key, mask_key))
    np.testing.assert_array_equal(batch[mask_key].data.ravel(), [1, 1, 0, 1])
    np.testing.assert_array_equal(batch[labels_key].data.ravel(), [0, 1, 0, 1])


def _location_pipeline(labels: np.ndarray, valid: np.ndarray, **kwargs):
    labels_key, valid_key = gp.ArrayKey("LABELS"), gp.ArrayKey("VALID")
    pipeline = (
        (_source(labels_key, labels), _source(valid_key, valid))
        + gp.MergeProvider()
        + ForegroundBiasedLocation(valid_key, labels_key, source_name="cell_1", **kwargs)
    )
    return pipeline, labels_key, valid_key


def test_foreground_biased_location_prefers_foreground():
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[:8, :8, :8] = 1  # 0.8 % of the volume
    valid = np.ones_like(labels)
    window = gp.Roi((0, 0, 0), (16, 16, 16))
    fractions = {}
    for probability in (0.0, 1.0):
        np.random.seed(0)
        random.seed(0)
        pipeline, labels_key, valid_key = _location_pipeline(
            labels, valid, min_foreground=0.01, reject_probability=probability
        )
        hits = 0
        with gp.build(pipeline):
            for _ in range(60):
                batch = pipeline.request_batch(_request(window, labels_key, valid_key))
                hits += batch[labels_key].data.mean() >= 0.01
        fractions[probability] = hits / 60
    assert fractions[1.0] == 1.0
    assert fractions[0.0] < 0.3


def test_foreground_biased_location_respects_min_valid():
    labels = np.zeros((30, 30, 30), np.uint8)
    valid = np.zeros_like(labels)
    valid[:10] = 1
    pipeline, labels_key, valid_key = _location_pipeline(
        labels, valid, min_valid=0.9, reject_probability=0
    )
    with gp.build(pipeline):
        for _ in range(20):
            batch = pipeline.request_batch(
                _request(gp.Roi((0, 0, 0), (8, 8, 8)), labels_key, valid_key)
            )
            assert batch[valid_key].data.mean() >= 0.9


def test_foreground_biased_location_fails_instead_of_looping_forever():
    labels = np.zeros((10, 10, 10), np.uint8)
    pipeline, labels_key, valid_key = _location_pipeline(
        labels, np.zeros_like(labels), min_valid=0.5, max_attempts=50
    )
    with pytest.raises(Exception) as error, gp.build(pipeline):
        pipeline.request_batch(_request(gp.Roi((0, 0, 0), (4, 4, 4)), labels_key, valid_key))
    # gunpowder re-raises node errors as its own type, with the original in the text.
    assert "SamplingError: cell_1: no location with at least 50% known labels" in str(error.value)


def test_gamma_augment_keeps_range_and_changes_contrast():
    key = gp.ArrayKey("RAW")
    data = np.linspace(0, 1, 64, dtype=np.float32).reshape(4, 4, 4)
    np.random.seed(1)
    pipeline = _source(key, data) + GammaAugment(key, 0.5, 0.6)
    with gp.build(pipeline):
        batch = pipeline.request_batch(_request(gp.Roi((0, 0, 0), (8, 8, 8)), key))
    out = batch[key].data
    assert out.min() == 0 and out.max() == pytest.approx(1)
    assert np.all(out >= data - 1e-7) and out[1, 1, 1] > data[1, 1, 1] + 0.05
    with pytest.raises(ValueError):
        GammaAugment(key, 0, 1)
