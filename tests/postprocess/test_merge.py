"""Merge: one class per voxel, contested counts against a reference, priorities, voxel grids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.postprocess.merge import MergeInput, merge
from incasem.postprocess.sources import DatasetRef

SHAPE = (24, 40, 48)
NAMES = ("mito", "er", "golgi")
THRESHOLDS = (0.5, 0.3, 0.6)


@pytest.fixture
def maps(write):
    rng = np.random.default_rng(11)
    probabilities = rng.random((3, *SHAPE))
    container = write("mito", np.rint(probabilities[0] * 255).astype(np.uint8))
    write("er", probabilities[1].astype(np.float32))
    write("golgi", np.rint(probabilities[2] * 255).astype(np.uint8))
    mask = np.ones(SHAPE, np.uint8)
    mask[:4] = 0
    write("mask", mask)
    stored = np.stack(
        [np.rint(probabilities[0] * 255) / 255, probabilities[1].astype(np.float32),
         np.rint(probabilities[2] * 255) / 255]
    )  # fmt: skip
    return container, stored, mask != 0


def _inputs(container):
    return [
        MergeInput(n, DatasetRef(container, n), t) for n, t in zip(NAMES, THRESHOLDS, strict=True)
    ]


def _claims(stored, region):
    levels = [
        np.ceil(THRESHOLDS[0] * 255 - 1e-9) / 255,
        THRESHOLDS[1],
        np.ceil(THRESHOLDS[2] * 255 - 1e-9) / 255,
    ]
    return np.stack([stored[k] >= levels[k] for k in range(3)]) & region


def test_highest_probability_wins_and_contested_pairs_match(maps):
    container, stored, region = maps
    report = merge(
        _inputs(container),
        container,
        "merged",
        masks=(DatasetRef(container, "mask"),),
        block_edge=64,
        num_workers=1,
        progress=False,
    )
    labels = open_array(container, "merged")[:]
    claims = _claims(stored, region)
    score = np.where(claims, stored, -1)
    expected = np.where(claims.any(0), np.argmax(score, axis=0) + 1, 0)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.uint8 and labels.max() == 3  # one class id per voxel
    for a, b in itertools.combinations(range(3), 2):
        pair = f"{NAMES[a]}/{NAMES[b]}"
        assert report["contested_pairs"][pair] == int((claims[a] & claims[b]).sum()) > 0
    assert report["contested_voxels"] == int((claims.sum(0) >= 2).sum())
    assert report["assigned_voxels"] == {
        n: int((labels == k + 1).sum()) for k, n in enumerate(NAMES)
    }
    assert open_array(container, "merged")._source_data.attrs["class_names"] == [
        "background",
        *NAMES,
    ]


def test_priority_order(maps):
    container, stored, region = maps
    merge(
        _inputs(container),
        container,
        "merged",
        priority=["golgi", "mito", "er"],
        num_workers=0,
        progress=False,
    )
    labels = open_array(container, "merged")[:]
    claims = _claims(stored, np.ones(SHAPE, bool))
    expected = np.zeros(SHAPE, np.uint8)
    for k in (1, 0, 2):  # lowest priority first, overwritten by higher ones
        expected[claims[k]] = k + 1
    np.testing.assert_array_equal(labels, expected)


def test_coarser_grid_is_resampled_by_nearest_neighbour(write):
    fine = np.zeros(SHAPE, np.uint8)
    fine[:, :20] = 200
    container = write("fine", fine)
    coarse = np.zeros((12, 20, 24), np.float32)
    coarse[:, 8:, :] = 0.9  # covers fine y >= 16
    coarse[2, 3, 4] = 0.95
    write("coarse", coarse, voxel_size=(20, 10, 10))
    inputs = [
        MergeInput("a", DatasetRef(container, "fine"), 0.5),
        MergeInput("b", DatasetRef(container, "coarse"), 0.5),
    ]
    report = merge(inputs, container, "merged", num_workers=0, progress=False)
    labels = open_array(container, "merged")
    assert tuple(labels.voxel_size) == (10, 5, 5)
    upsampled = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    a, b = fine >= 128, upsampled >= 0.5
    expected = np.where(
        a & b, np.where(upsampled > fine / 255, 2, 1), np.where(a, 1, np.where(b, 2, 0))
    )
    np.testing.assert_array_equal(labels[:], expected)
    assert report["contested_pairs"] == {"a/b": int((a & b).sum())}
    assert labels[:][4:6, 6:8, 8:10].tolist() == np.full((2, 2, 2), 2).tolist()


def test_bad_input_is_one_line(maps, write):
    container, *_ = maps
    write("odd", np.zeros((8, 8, 8), np.uint8), voxel_size=(15, 5, 5), offset=(150, 50, 0))
    write("far", np.zeros((8, 8, 8), np.uint8), offset=(10000, 0, 0))
    write("labels", np.zeros((8, 8, 8), np.uint16))
    inputs = _inputs(container)
    cases = [
        (inputs[:2] + [MergeInput("odd", DatasetRef(container, "odd"), 0.5)], {}, "whole multiple"),
        (inputs[:1] + [MergeInput("far", DatasetRef(container, "far"), 0.5)], {}, "do not overlap"),
        (inputs[:1] + [MergeInput("l", DatasetRef(container, "labels"), 0.5)], {}, "uint8"),
        (inputs, {"priority": ["mito", "er"]}, "must name every class"),
        (inputs[:1], {}, "at least two inputs"),
        (inputs[:1] * 2, {}, "names must differ"),
    ]
    for given, kwargs, message in cases:
        with pytest.raises(IncasemError, match=message):
            merge(given, container, "out", num_workers=0, progress=False, **kwargs)
