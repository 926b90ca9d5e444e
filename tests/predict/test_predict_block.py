"""One block as the network sees it: mirrored context beyond the data, training normalisation."""

from __future__ import annotations

import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from incasem.io import create_array
from incasem.predict.block import classify, mirror_indices, normalise, read_mirrored


@pytest.mark.parametrize("size", [1, 2, 5, 9])
def test_mirror_indices_equal_numpy_reflect(size):
    axis = np.arange(size)
    for start, stop in ((-30, 40), (-3, size + 3), (2, size), (size + 4, size + 30)):
        padded = np.pad(axis, 60, mode="reflect") if size > 1 else np.zeros(size + 120, int)
        expected = padded[start + 60 : stop + 60]
        np.testing.assert_array_equal(mirror_indices(start, stop, size), expected)


def test_read_mirrored_equals_pad_of_whole_dataset(tmp_path):
    shape, voxel_size, offset = (7, 9, 11), (10, 5, 5), (30, 10, 0)
    data = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    array = create_array(tmp_path / "a.zarr", "raw", shape, voxel_size, offset, chunks=(4, 4, 4))
    array[array.roi] = data
    padded = np.pad(data, 40, mode="reflect")
    vs = Coordinate(voxel_size)
    for begin, size in (
        ((0, 0, 0), (7, 9, 11)),
        ((-5, 2, -30), (20, 4, 35)),
        ((3, 4, 5), (2, 3, 4)),
    ):
        roi = Roi(Coordinate(offset) + Coordinate(begin) * vs, Coordinate(size) * vs)
        expected = padded[
            tuple(slice(b + 40, b + 40 + s) for b, s in zip(begin, size, strict=True))
        ]
        np.testing.assert_array_equal(read_mirrored(array, roi), expected)


def test_normalisation_is_bitwise_that_of_the_training_pipeline():
    raw = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    key = gp.ArrayKey("RAW")
    source = gp.ArraySource(key, Array(raw, (0, 0, 0), (1, 1, 1)), interpolatable=True)
    pipeline = source + gp.Normalize(key) + gp.IntensityScaleShift(key, 2, -1)
    request = gp.BatchRequest()
    request[key] = gp.ArraySpec(roi=Roi((0, 0, 0), (4, 8, 8)))
    with gp.build(pipeline):
        expected = pipeline.request_batch(request)[key].data
    ours = normalise(raw, {"type": "scale_shift", "input_range": [0, 255], "output_range": [-1, 1]})
    assert ours.dtype == np.float32 and expected.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)


def test_classify_two_and_more_classes():
    p1 = np.array([0.2, 0.5, 0.7], np.float32)[:, None, None]
    two = np.stack([1 - p1, p1])
    np.testing.assert_array_equal(classify(two)[:, 0, 0], [0, 1, 1])
    np.testing.assert_array_equal(classify(two, threshold=0.6)[:, 0, 0], [0, 0, 1])
    three = np.random.default_rng(1).random((3, 2, 3, 4))
    np.testing.assert_array_equal(classify(three), np.argmax(three, axis=0))
