"""The model card's post-processing (hole filling, minimum object size) is applied to a
two-class segmentation by default, on the whole volume after the blockwise pass, and said;
``post_processing=False`` turns it off."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import ndimage

from incasem.postprocess.cleanup import PostProcessing
from incasem.predict import predict
from incasem.torch.models import shapes

from .conftest import NETWORKS, SHAPE, VOXEL_SIZE, read_dataset, write_cell, write_checkpoint

ROI = [10, 10, 0, 32, 48, 48]  # voxels: offset, shape
MIN_VOXELS = 64
MIN_NM3 = MIN_VOXELS * float(np.prod(VOXEL_SIZE))


def _object_sizes(segmentation: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(segmentation, structure=np.ones((3, 3, 3), bool))
    return np.bincount(labels.ravel())[1:]


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("post")
    cell = write_cell(folder / "cell.zarr")
    checkpoint = write_checkpoint(
        folder / "model.pt", "unet3", threshold=0.52, fill_holes=True, min_object_nm3=MIN_NM3
    )
    common = {"checkpoint": str(checkpoint), "input": str(cell), "roi": ROI, "progress": False,
              "input_size_voxels": [132, 132, 132], "device": "cpu"}  # fmt: skip
    return cell, {
        "default": predict(output_group="default", **common),
        "off": predict(output_group="off", post_processing=False, **common),
    }


def test_the_cards_post_processing_is_applied_and_said(predictions, caplog):
    cell, results = predictions
    default = read_dataset(cell, results["default"].entries[0].datasets[-1])
    off = read_dataset(cell, results["off"].entries[0].datasets[-1])
    # the raw prediction has objects below the card's minimum size and holes
    assert (_object_sizes(off) < MIN_VOXELS).any()
    assert (ndimage.binary_fill_holes(off) != off).any()
    # the default one has neither, and is exactly the card's post-processing of the raw one
    assert (_object_sizes(default) >= MIN_VOXELS).all() and default.any()
    np.testing.assert_array_equal(ndimage.binary_fill_holes(default), default > 0)
    expected = PostProcessing(True, MIN_NM3).apply(off == 1, VOXEL_SIZE)
    np.testing.assert_array_equal(default, expected.astype(np.uint8))
    said = f"post-processing: fill holes, remove objects < {MIN_NM3:,.0f} nm³"
    assert f"{said} (from the model card)" in results["default"].summary()
    assert "post-processing: none (turned off by --no-post-processing)" in (
        results["off"].summary()
    )


def test_the_log_says_the_post_processing(tmp_path, caplog):
    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet3", min_object_nm3=MIN_NM3)
    with caplog.at_level(logging.INFO, logger="incasem.predict"):
        predict(checkpoint=str(checkpoint), input=str(cell), roi=[10, 10, 0, 8, 8, 8],
                progress=False, input_size_voxels=[132, 132, 132], device="cpu")  # fmt: skip
    assert f"post-processing: remove objects < {MIN_NM3:,.0f} nm³ (from the model card)" in (
        caplog.text
    )


def test_filled_holes_stay_inside_the_mask(tmp_path):
    from incasem.io import create_array

    from .conftest import OFFSET, write_config

    cell = write_cell(tmp_path / "cell.zarr")
    mask = np.ones(SHAPE, np.uint8)
    mask[2:6, 4:12, 20:28] = 0  # masked out, inside the entry (array voxels)
    array = create_array(cell, "volumes/mask_hole", SHAPE, VOXEL_SIZE, OFFSET, chunks=(32,) * 3)
    array[array.roi] = mask
    config = write_config(tmp_path / "config.json", {"a": {"offset": [10, 10, 16],
                          "shape": [8, 16, 16], "mask": "volumes/mask_hole"}})  # fmt: skip
    # threshold 0.4: nearly every voxel is foreground, so the masked box is enclosed
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet3", threshold=0.4, fill_holes=True)
    result = predict(checkpoint=str(checkpoint), data=str(config), data_root=str(tmp_path),
                     progress=False, input_size_voxels=[132] * 3, device="cpu")  # fmt: skip
    segmentation = read_dataset(cell, result.entries[0].datasets[-1])
    # all foreground around the masked box, which is enclosed and yet not filled
    np.testing.assert_array_equal(segmentation, mask[0:8, 0:16, 16:32])
    assert not segmentation[2:6, 4:12, 4:12].any()


@pytest.mark.slow  # two predictions of three blockwise passes each
def test_a_resampled_prediction_is_post_processed_at_the_data_voxel_size(tmp_path):
    model_voxel_size = tuple(2 * v for v in VOXEL_SIZE)
    cell = write_cell(tmp_path / "cell.zarr")
    min_nm3 = 64 * float(np.prod(VOXEL_SIZE))
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2", voxel_size=model_voxel_size,
                                  threshold=0.52, min_object_nm3=min_nm3)  # fmt: skip
    size = list(shapes.input_shape_for_output([12] * 3, NETWORKS["unet2"]["downsample_factors"]))
    common = {"checkpoint": str(checkpoint), "input": str(cell), "progress": False,
              "input_size_voxels": size, "device": "cpu"}  # fmt: skip
    on = predict(output_group="on", **common).entries[0].datasets[-1]
    off = predict(output_group="off", post_processing=False, **common).entries[0].datasets[-1]
    raw, cleaned = read_dataset(cell, off), read_dataset(cell, on)
    assert raw.shape == cleaned.shape == SHAPE
    expected = PostProcessing(False, min_nm3).apply(raw == 1, VOXEL_SIZE)
    np.testing.assert_array_equal(cleaned, expected.astype(np.uint8))
    assert (raw != cleaned).any()  # there were small objects at the data's voxel size
