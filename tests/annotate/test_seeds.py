"""Seeds from arrays, datasets and 2D mask files; the one-line errors users see."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from incasem.annotate.seeds import (
    BACKGROUND,
    ORGANELLE,
    check_seeds,
    plane_file_name,
    seeds_from_array,
    seeds_from_dataset,
    seeds_from_planes,
)
from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.io.roi import roi_from_voxels

VOXEL = (10, 5, 5)


def test_array_seeds_are_sparse_and_densify_back():
    data = np.zeros((4, 5, 6), np.uint8)
    data[1, 2, 3] = ORGANELLE
    data[3, 0, 5] = BACKGROUND
    seeds = seeds_from_array(data)
    assert seeds.counts() == (1, 1)
    np.testing.assert_array_equal(seeds.dense((0, 0, 0), data.shape), data)
    box = seeds.dense((1, 1, 1), (2, 2, 3))
    assert box[0, 1, 2] == ORGANELLE and box.sum() == ORGANELLE


def test_bad_values_empty_and_one_class_are_one_line_errors():
    with pytest.raises(IncasemError, match="seed value 7 is not 0"):
        seeds_from_array(np.full((2, 2, 2), 7, np.uint8), "layer")
    empty = seeds_from_array(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(IncasemError, match=r"no seeds \(values 1 or 2\) inside the ROI \[r\]"):
        check_seeds(empty, "s", "[r]")
    one = seeds_from_array(np.ones((2, 2, 2), np.uint8))
    with pytest.raises(IncasemError, match="only one class; mark some background"):
        check_seeds(one, "s", "[r]")


def test_dataset_seeds_are_relative_to_the_roi(tmp_path):
    container = tmp_path / "c.zarr"
    array = create_array(container, "seeds", (20, 10, 10), VOXEL, offset=(100, 0, 0))
    data = np.zeros((20, 10, 10), np.uint8)
    data[12, 3, 4] = ORGANELLE
    data[2, 0, 0] = BACKGROUND  # outside the ROI below
    array[array.roi] = data
    roi = roi_from_voxels((15, 0, 0), (10, 10, 10), VOXEL)  # dataset voxels 5..15
    seeds = seeds_from_dataset(container, "seeds", roi, VOXEL)
    assert seeds.shape == (10, 10, 10)
    np.testing.assert_array_equal(seeds.coords, [[7, 3, 4]])
    np.testing.assert_array_equal(seeds.values, [ORGANELLE])
    with pytest.raises(IncasemError, match="does not overlap the ROI"):
        seeds_from_dataset(container, "seeds", roi_from_voxels((40, 0, 0), (2, 2, 2), VOXEL), VOXEL)
    with pytest.raises(IncasemError, match=r"voxel size \[10, 5, 5\] nm differs from the raw"):
        seeds_from_dataset(container, "seeds", roi, (5, 5, 5))


def test_plane_files_map_to_voxels_of_the_roi(tmp_path):
    dataset_roi = roi_from_voxels((0, 0, 0), (8, 12, 16), VOXEL)
    roi = roi_from_voxels((2, 4, 0), (4, 8, 16), VOXEL)
    z_plane = np.zeros((12, 16), np.uint8)
    z_plane[5, 7] = ORGANELLE
    iio.imwrite(tmp_path / plane_file_name("z", 3), z_plane)
    x_plane = np.zeros((8, 12), np.uint8)
    x_plane[4, 10] = BACKGROUND
    iio.imwrite(tmp_path / "x_9.tif", x_plane)
    (tmp_path / "notes.txt").write_text("ignored")
    seeds = seeds_from_planes(tmp_path, roi, VOXEL, dataset_roi)
    found = {tuple(c): int(v) for c, v in zip(seeds.coords, seeds.values, strict=True)}
    assert found == {(1, 1, 7): ORGANELLE, (2, 6, 9): BACKGROUND}


def test_plane_file_errors_name_the_file(tmp_path):
    dataset_roi = roi_from_voxels((0, 0, 0), (8, 12, 16), VOXEL)
    roi = roi_from_voxels((2, 0, 0), (4, 12, 16), VOXEL)
    with pytest.raises(IncasemError, match="no seed masks named"):
        seeds_from_planes(tmp_path, roi, VOXEL, dataset_roi)
    iio.imwrite(tmp_path / "z_0007.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(IncasemError, match=r"z_0007.png: plane z = 7 lies outside the ROI"):
        seeds_from_planes(tmp_path, roi, VOXEL, dataset_roi)
    (tmp_path / "z_0007.png").unlink()
    iio.imwrite(tmp_path / "y_0001.png", np.zeros((8, 15), np.uint8))
    with pytest.raises(IncasemError, match=r"y_0001.png: image shape \[8, 15\] differs"):
        seeds_from_planes(tmp_path, roi, VOXEL, dataset_roi)
