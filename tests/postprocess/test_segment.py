"""Thresholding (uint8 and float agree, masks apply) and how datasets are named."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.postprocess.segment import segment
from incasem.postprocess.sources import BinarySource, DatasetRef, parse_dataset

from .conftest import VOXEL_SIZE

SHAPE = (20, 30, 40)


def test_uint8_and_float_maps_give_the_same_segmentation(write):
    probability = np.random.default_rng(3).random(SHAPE)
    levels = np.rint(probability * 255).astype(np.uint8)
    mask = np.ones(SHAPE, np.uint8)
    mask[:, :, :5] = 0
    container = write("p8", levels)
    write("pf", levels.astype(np.float32) / 255)
    write("mask", mask)
    masks = (DatasetRef(container, "mask"),)
    for name, workers in (("p8", 1), ("pf", 0)):
        source = BinarySource(DatasetRef(container, name), threshold=0.4, masks=masks)
        segment(source, container, f"seg_{name}", value=255, num_workers=workers, progress=False)
    expected = np.where((levels >= 102) & (mask != 0), 255, 0)
    for name in ("p8", "pf"):
        out = open_array(container, f"seg_{name}")
        assert out.roi == open_array(container, "p8").roi and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:], expected)


def test_channel_of_a_channel_first_dataset(write):
    probabilities = np.zeros((2, *SHAPE), np.float32)
    probabilities[1, 5:10] = 0.9
    container = write("probs", probabilities)
    with pytest.raises(IncasemError, match="has 2 channels; pick one"):
        BinarySource(DatasetRef(container, "probs"), threshold=0.5).check()
    source = BinarySource(parse_dataset("probs@1", container), threshold=0.5)
    segment(source, container, "seg", num_workers=0, progress=False)
    assert open_array(container, "seg")[:].sum() == 5 * 30 * 40


def test_dataset_names():
    assert parse_dataset("volumes/x", "a.zarr") == DatasetRef("a.zarr", "volumes/x")
    assert parse_dataset("/d/b.zarr/volumes/p@2") == DatasetRef("/d/b.zarr", "volumes/p", 2)
    with pytest.raises(IncasemError, match="CONTAINER.zarr/DATASET"):
        parse_dataset("volumes/x")
    with pytest.raises(IncasemError, match="CONTAINER.zarr/DATASET"):
        parse_dataset("b.zarr")


def test_segment_post_processes_the_whole_volume_across_blocks(write, capsys):
    from incasem.cli.main import main
    from incasem.postprocess.cleanup import PostProcessing

    foreground = np.zeros(SHAPE, bool)
    foreground[2:18, 4:26, 4:36] = True  # one object over many blocks ...
    foreground[8:12, 12:18, 14:24] = False  # ... with a hole across a block border
    foreground[1, 1, 38] = True  # a one-voxel speck
    container = write("p", np.where(foreground, 200, 20).astype(np.uint8))
    voxel_nm3 = 10 * 5 * 5
    run = ["--workers", "0", "--no-progress", "--block-size", "8", "--threshold", "0.5"]
    for name, extra in (("raw", []), ("clean", ["--fill-holes", "--min-object-nm3", "500"])):
        assert main(["segment", container, "-d", "p", "--out-dataset", name, *run, *extra]) == 0
    capsys.readouterr()
    raw, clean = open_array(container, "raw"), open_array(container, "clean")
    np.testing.assert_array_equal(raw[:] > 0, foreground)
    expected = foreground.copy()
    expected[8:12, 12:18, 14:24] = True
    expected[1, 1, 38] = False
    np.testing.assert_array_equal(clean[:], expected.astype(np.uint8))
    assert clean.attrs["post_processing"] == "fill holes, remove objects < 500 nm³"
    assert PostProcessing(True, 2 * voxel_nm3).apply(foreground, VOXEL_SIZE).sum() == (
        expected.sum()
    )
    mask = np.ones(SHAPE, np.uint8)
    mask[9:11, 14:16, 16:20] = 0  # inside the hole: filling keeps it out
    write("mask", mask)
    masked = ["--mask", "mask", "--fill-holes"]
    assert main(["segment", container, "-d", "p", "--out-dataset", "m", *run, *masked]) == 0
    filled = expected | foreground  # holes filled, the speck kept
    np.testing.assert_array_equal(open_array(container, "m")[:], filled & (mask > 0))
    assert main(["segment", container, "-d", "p", "--out-dataset", "x", *run,
                 "--min-object-nm3", "-1"]) == 2  # fmt: skip
    assert "--min-object-nm3 -1 must be >= 0" in capsys.readouterr().err
