"""Connected components across block faces: consistent ids, scipy's result, size filter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.postprocess.components import connected_components
from incasem.postprocess.sources import BinarySource, DatasetRef

from .conftest import blobs


def _run(container, source, out, **kwargs):
    kwargs.setdefault("num_workers", 0)
    return connected_components(source, container, out, block_edge=64, progress=False, **kwargs)


def test_object_spanning_eight_blocks_gets_one_id(write):
    shape = (128, 128, 128)
    labels = np.zeros(shape, np.uint8)
    labels[40:90, 50:80, 30:100] = 1  # crosses the block faces at 64 along z, y and x
    labels[5:10, 5:10, 5:10] = 1
    container = write("labels", labels)
    result = _run(container, BinarySource(DatasetRef(container, "labels")), "inst", num_workers=1)
    out = open_array(container, "inst")[:]
    assert out.dtype == np.uint64
    assert result.num_objects == 2
    assert np.unique(out[40:90, 50:80, 30:100]).tolist() == [2]
    assert np.unique(out[5:10, 5:10, 5:10]).tolist() == [1]
    assert result.sizes.tolist() == [0, 125, 50 * 30 * 70]


def test_equals_scipy_label_on_whole_volume(write):
    shape = (70, 90, 130)
    foreground = blobs(shape, seed=1, fraction=0.45)
    container = write("labels", foreground.astype(np.uint8))
    result = _run(container, BinarySource(DatasetRef(container, "labels")), "inst")
    expected, count = ndimage.label(foreground)
    out = open_array(container, "inst")
    assert result.num_objects == count > 5
    np.testing.assert_array_equal(out[:], expected)
    assert out.roi == open_array(container, "labels").roi
    assert result.sizes.tolist() == [0, *np.bincount(expected.ravel())[1:].tolist()]


def test_thresholds_masks_and_size_filter(write):
    shape = (64, 80, 80)
    foreground = blobs(shape, seed=2, fraction=0.4)
    probability = np.where(foreground, 200, 30).astype(np.uint8)
    mask = np.ones(shape, np.uint8)
    mask[:, :, :20] = 0
    container = write("prob", probability)
    write("mask", mask)
    source = BinarySource(
        DatasetRef(container, "prob"), threshold=0.5, masks=(DatasetRef(container, "mask"),)
    )
    voxel_volume = 10 * 5 * 5
    result = _run(container, source, "inst", min_size=200 * voxel_volume, size_unit="nm3")
    labelled, _ = ndimage.label(foreground & (mask != 0))
    sizes = np.bincount(labelled.ravel())
    kept = [i for i in range(1, len(sizes)) if sizes[i] >= 200]
    expected = np.zeros_like(labelled)
    for new, old in enumerate(kept, start=1):
        expected[labelled == old] = new
    np.testing.assert_array_equal(open_array(container, "inst")[:], expected)
    assert result.removed == len(sizes) - 1 - len(kept) > 0


def test_refuses_existing_output_and_bad_sizes(write):
    container = write("labels", np.ones((8, 8, 8), np.uint8))
    source = BinarySource(DatasetRef(container, "labels"))
    _run(container, source, "inst")
    with pytest.raises(IncasemError, match="already exists"):
        _run(container, source, "inst")
    with pytest.raises(IncasemError, match="larger than --max-size"):
        _run(container, source, "other", min_size=10, max_size=5)
    with pytest.raises(IncasemError, match="probabilities must be uint8"):
        _run(container, BinarySource(DatasetRef(container, "inst"), threshold=0.5), "x")


def _dumbbell_and_capsule(write):
    """A dumbbell whose neck lies on the block face at x = 64 (block_edge 64), so its two balls
    start as pieces in different blocks, and a capsule (no neck) in the second block."""
    shape = (40, 40, 128)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")

    def ball(cx):
        return (z - 20) ** 2 + (y - 20) ** 2 + (x - cx) ** 2 <= 12**2

    left, right = ball(53), ball(75)  # radius 12, overlapping in a thin neck around x = 64
    capsule = ((z - 20) ** 2 + (y - 20) ** 2 <= 6**2) & (x >= 92) & (x < 124)
    container = write("labels", (left | right | capsule).astype(np.uint8), voxel_size=(5, 5, 5))
    return container, left, right, capsule


def test_split_touching_separates_a_dumbbell_but_not_a_capsule(write):
    container, left, right, capsule = _dumbbell_and_capsule(write)
    source = BinarySource(DatasetRef(container, "labels"))
    result = _run(container, source, "inst", split_depth_nm=20)
    out = open_array(container, "inst")[:]
    # The watershed sees the whole dumbbell, joined across the block face: both balls split.
    assert result.num_objects == 3 and np.unique(out).tolist() == [0, 1, 2, 3]
    assert result.too_large_to_split == 0
    assert np.unique(out[left & ~right]).tolist() == [1]
    assert np.unique(out[right & ~left]).tolist() == [3]
    assert np.unique(out[capsule]).tolist() == [2]
    assert result.sizes[1:].tolist() == np.bincount(out.ravel())[1:].tolist()
    assert open_array(container, "inst").attrs["incasem_instances"]["num_objects"] == 3


def test_split_leaves_objects_too_large_to_split_whole(write):
    container, left, right, capsule = _dumbbell_and_capsule(write)
    source = BinarySource(DatasetRef(container, "labels"))
    result = _run(container, source, "inst", split_depth_nm=20, split_max_voxels=1)
    out = open_array(container, "inst")[:]
    assert result.too_large_to_split == 2
    assert result.num_objects == 2 and np.unique(out).tolist() == [0, 1, 2]
    assert np.unique(out[left | right]).tolist() == [1]
    assert np.unique(out[capsule]).tolist() == [2]
    assert result.sizes.tolist() == [0, int((left | right).sum()), int(capsule.sum())]
    assert open_array(container, "inst").attrs["incasem_instances"]["num_objects"] == 2
