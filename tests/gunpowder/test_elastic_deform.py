"""ElasticDeform moves raw and labels together, asks upstream for the context it needs and keeps
label values exact."""

from __future__ import annotations

import math
import random

import gunpowder as gp
import numpy as np
import pytest
from funlib.persistence import Array

from incasem.gunpowder import ElasticDeform
from incasem.gunpowder.elastic_deform import smooth_displacement, spline_matrix

VOXEL = gp.Coordinate((4, 2, 2))
RAW, LABELS = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")


def _pipeline(node: gp.BatchFilter, raw: np.ndarray, labels: np.ndarray) -> gp.Pipeline:
    sources = (
        gp.ArraySource(RAW, Array(raw, offset=(0, 0, 0), voxel_size=VOXEL), True),
        gp.ArraySource(LABELS, Array(labels, offset=(0, 0, 0), voxel_size=VOXEL), False),
    )
    return sources + gp.MergeProvider() + node


def _request(raw_roi: gp.Roi, labels_roi: gp.Roi) -> gp.BatchRequest:
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=raw_roi)
    request[LABELS] = gp.ArraySpec(roi=labels_roi)
    return request


def _volume(shape=(24, 48, 48), seed=0):
    """Random raw and uint64 labels with large ids, constant on 4-voxel cubes."""
    rng = np.random.default_rng(seed)
    raw = rng.random(shape, dtype=np.float32)
    cubes = rng.integers(0, 7, tuple(s // 4 for s in shape)).astype(np.uint64)
    labels = np.kron(cubes, np.ones((4, 4, 4), np.uint64)) * (2**40)
    return raw, labels


def test_spline_matrix_interpolates_control_points_and_keeps_constants():
    matrix = spline_matrix(4, 31)
    assert matrix.shape == (31, 4)
    np.testing.assert_allclose(matrix.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(matrix[[0, 10, 20, 30]], np.eye(4), atol=1e-5)


def test_displacement_is_smooth_and_has_the_requested_spread():
    field = smooth_displacement(
        (40, 64, 64), (16, 16, 16), (0.0, 2.0, 2.0), np.random.default_rng(1)
    )
    assert field.shape == (3, 40, 64, 64)
    assert not field[0].any()
    assert 1.0 < field[1].std() < 3.0
    # neighbouring voxels move almost together: no tearing
    assert np.abs(np.diff(field[1], axis=2)).max() < 1.0


def test_without_jitter_and_rotation_it_is_the_identity():
    raw, labels = _volume()
    node = ElasticDeform((8, 8, 8), (0.0, 0.0, 0.0))
    roi = gp.Roi((16, 16, 16), (40, 40, 40))
    with gp.build(_pipeline(node, raw, labels)) as pipeline:
        batch = pipeline.request_batch(_request(roi, roi))
    np.testing.assert_allclose(batch[RAW].data, raw[4:14, 8:28, 8:28], atol=1e-5)
    np.testing.assert_array_equal(batch[LABELS].data, labels[4:14, 8:28, 8:28])
    assert batch[RAW].spec.roi == roi and batch[LABELS].spec.roi == roi


def test_quarter_turn_rotates_raw_and_labels_together_about_the_batch_centre():
    raw, labels = _volume()
    node = ElasticDeform((8, 8, 8), (0.0, 0.0, 0.0), rotation_interval=(math.pi / 2, math.pi / 2))
    roi = gp.Roi((16, 24, 24), (40, 40, 40))  # voxels z 4:14, y 12:32, x 12:32
    with gp.build(_pipeline(node, raw, labels)) as pipeline:
        batch = pipeline.request_batch(_request(roi, roi))
    # a quarter turn maps output (y, x) to source (y0 + 19 - x, x0 + y) inside the 20x20 window
    window = labels[4:14, 12:32, 12:32]
    expected = np.transpose(window[:, ::-1, :], (0, 2, 1))
    np.testing.assert_array_equal(batch[LABELS].data, expected)
    np.testing.assert_allclose(
        batch[RAW].data, np.transpose(raw[4:14, 12:32, 12:32][:, ::-1], (0, 2, 1)), atol=1e-5
    )


def test_rotation_asks_upstream_for_more_raw_context():
    raw, labels = _volume()
    node = ElasticDeform((8, 8, 8), (0.0, 0.0, 0.0), rotation_interval=(math.pi / 4, math.pi / 4))
    roi = gp.Roi((16, 24, 24), (40, 40, 40))
    with gp.build(_pipeline(node, raw, labels)):
        deps = node.prepare(_request(roi, roi))
    # a 20-voxel square turned by 45 degrees needs a box about 20 * sqrt(2) voxels wide
    width = deps[RAW].roi.shape[1] // VOXEL[1]
    assert 28 <= width <= 31
    assert roi.shape[0] <= deps[RAW].roi.shape[0] <= roi.shape[0] + 2 * VOXEL[0]


def test_jitter_keeps_label_values_and_dtype_and_moves_them_with_raw():
    random.seed(3)
    np.random.seed(3)
    # margins of 11 voxels in z and 22 in y, x: a 45 degree turn (4) plus jitter fit easily
    raw, labels = _volume(shape=(32, 64, 64))
    raw = (labels // 2**40).astype(np.float32)  # raw equals the class id: they must stay aligned
    node = ElasticDeform((8, 8, 8), (1.0, 3.0, 3.0), rotation_interval=(0, math.pi / 2))
    roi = gp.Roi((44, 44, 44), (40, 40, 40))
    with gp.build(_pipeline(node, raw, labels)) as pipeline:
        batch = pipeline.request_batch(_request(roi, roi))
    deformed = batch[LABELS].data
    assert deformed.dtype == np.uint64 and deformed.shape == (10, 20, 20)
    assert set(np.unique(deformed)) <= set(np.unique(labels))
    assert not np.array_equal(deformed, labels[11:21, 22:42, 22:42])
    # inside a cube trilinear raw is the cube's id, and so is the nearest label
    exact = np.isclose(batch[RAW].data, np.round(batch[RAW].data), atol=1e-4)
    assert exact.mean() > 0.1
    agree = np.round(batch[RAW].data[exact]).astype(np.uint64) == deformed[exact] // 2**40
    assert agree.mean() > 0.99  # (a mix of two ids can land on a third by chance)


def test_graphs_are_refused():
    node = ElasticDeform((8, 8, 8), (1.0, 1.0, 1.0))
    request = gp.BatchRequest()
    request[gp.GraphKey("POINTS")] = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (8, 8, 8)))
    with pytest.raises(ValueError, match="arrays only"):
        node.prepare(request)
