"""``input_size_voxels: auto`` picks the largest block that fits the memory per worker, never
more than the ROIs need, and predicts exactly what the smallest blocks predict."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.predict import predict
from incasem.predict.block_size import forward_bytes, largest_input_shape
from incasem.predict.settings import PredictionSettings

from .conftest import (
    OFFSET,
    SHAPE,
    VOXEL_SIZE,
    read_dataset,
    single_pass,
    write_cell,
    write_config,
)

FACTORS = [[2, 2, 2]] * 3
BIG_ROI = [[10**6] * 3]


def test_estimate_grows_with_the_block_and_the_feature_maps():
    assert forward_bytes([204] * 3, 12) < forward_bytes([212] * 3, 12)
    assert forward_bytes([204] * 3, 12) < forward_bytes([204] * 3, 32)
    # the published F32 model on a 204³ block: about 5 GiB
    assert 4 * 2**30 < forward_bytes([204] * 3, 32) < 6 * 2**30


def test_largest_valid_block_within_the_budget():
    budget = 8 * 2**30
    shape = largest_input_shape(budget, 12, FACTORS, 3, BIG_ROI, [204] * 3)
    # axes grow in turn: near-cubic, every size valid, and no axis can grow one more step
    assert max(shape) - min(shape) <= 8 and all(s % 8 == 4 for s in shape)
    assert forward_bytes(shape, 12) <= budget
    for axis in range(3):
        grown = list(shape)
        grown[axis] += 8
        assert forward_bytes(grown, 12) > budget


def test_blocks_tile_the_largest_roi_evenly():
    # 8 GiB allows about 310³ blocks. A thin slab: z gets what 35 sections need (output 46,
    # blocks of 40), and the memory that saves goes to y and x: y = 384 becomes 2 blocks of
    # 192, x = 512 2 blocks of 256, not 3 of 176 as with cubic blocks.
    shape = largest_input_shape(
        8 * 2**30, 12, FACTORS, 3, [[35, 384, 512], [20, 100, 100]], [204] * 3
    )
    assert shape == [140, 292, 356]  # outputs 46, 198, 262 -> blocks 40, 192, 256
    small = largest_input_shape(8 * 2**30, 12, FACTORS, 3, [[100, 120, 130]], [204] * 3)
    assert small == [204, 220, 236]  # outputs 110, 126, 142 -> blocks 104, 120, 136
    # six sections of serial-section data: never more along z than the ROI needs
    thin = largest_input_shape(8 * 2**30, 12, FACTORS, 3, [[6, 2000, 2000]], [204] * 3)
    assert thin[0] == 108 and thin[1] > 204  # output 14: one block of 8 sections (the grid)
    # 452³ would fit, but a 512³ volume is 2 x 256 per axis: 356³ blocks compute 2.2x less
    assert largest_input_shape(12 * 2**30, 4, FACTORS, 3, [[512] * 3], [204] * 3) == [356] * 3


def test_a_budget_too_small_for_the_smallest_block_is_one_line():
    with pytest.raises(IncasemError, match=r"\[204, 204, 204\] voxels needs about .* GiB"):
        largest_input_shape(2**30, 32, FACTORS, 3, BIG_ROI, [204] * 3)


@pytest.mark.parametrize("value", ["auto", ["auto"]])
def test_settings_accept_auto(value):
    settings = PredictionSettings(checkpoint="m.pt", input="c.zarr", input_size_voxels=value)
    assert settings.input_size_voxels == "auto"


def test_settings_refuse_other_words():
    with pytest.raises(IncasemError, match="input_size_voxels must be 3 integers"):
        PredictionSettings(checkpoint="m.pt", input="c.zarr", input_size_voxels=["big"])


def test_auto_predicts_the_whole_roi_in_one_block_equal_to_a_single_pass(
    tmp_path, checkpoint_factory
):
    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = checkpoint_factory()
    result = predict(
        checkpoint=str(checkpoint),
        input=str(cell),
        input_size_voxels="auto",
        probabilities="float32",
        num_workers=1,
        device="cpu",
        progress=False,
    )
    (entry,) = result.entries
    assert entry.blocks == 1  # 48 x 56 x 64 voxels fit one block (as they fit the default)
    offset = tuple(o // v for o, v in zip(OFFSET, VOXEL_SIZE, strict=True))
    reference = single_pass(checkpoint, cell, offset, SHAPE)
    ours = np.stack([read_dataset(cell, d) for d in entry.datasets[:-1]])
    assert np.abs(ours - reference).max() < 1e-5


def test_tiny_blocks_are_warned_about_and_auto_avoids_them(tmp_path, checkpoint_factory, caplog):
    from incasem.predict.run import plan_prediction

    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = str(checkpoint_factory())
    with caplog.at_level("WARNING", logger="incasem.predict"):
        plan_prediction(
            PredictionSettings(checkpoint=checkpoint, input=str(cell), input_size_voxels=[132] * 3)
        )
    assert "write only [32, 32, 32] each (1.4 % of what they read)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="incasem.predict"):
        plan = plan_prediction(
            PredictionSettings(checkpoint=checkpoint, input=str(cell), input_size_voxels="auto")
        )
    assert "prediction will be slow" not in caplog.text
    # one block just covering the 48 x 56 x 64 ROI (blocks of 48, 56, 64 voxels)
    assert list(plan.layout.write_shape) == [48, 56, 64]


def test_auto_uses_the_memory_budget_for_fewer_larger_blocks(
    tmp_path, checkpoint_factory, monkeypatch
):
    from incasem.predict import block_size
    from incasem.predict.run import plan_prediction

    # 8 GiB per worker allows 436³ inputs with 2 feature maps: the 300-voxel x axis fits one
    # block of 304 (input 404), z and y get what their 48 and 56 voxels need; the default input
    # writes 104 per block.
    monkeypatch.setattr(block_size, "memory_budget", lambda device, sharing: 8 * 2**30)
    cell = write_cell(tmp_path / "cell.zarr", shape=(48, 56, 300))
    checkpoint = str(checkpoint_factory())
    plans = {
        size: plan_prediction(
            PredictionSettings(
                checkpoint=checkpoint, input=str(cell), input_size_voxels=size, device="cpu"
            )
        )
        for size in ("auto", None)
    }
    auto, default = plans["auto"], plans[None]
    assert list(auto.layout.input_shape) == [148, 156, 404]
    assert list(default.layout.input_shape) == [204, 204, 204]
    (entry,) = auto.entries
    assert auto.layout.num_blocks(entry.entry.roi) == 1
    assert default.layout.num_blocks(entry.entry.roi) == 3


def test_validation_and_small_rois_get_blocks_no_deeper_than_the_roi():
    """The training input is cut along an axis only where its output exceeds the ROI."""
    from incasem.predict.block_size import fit_input_to_roi

    # Lucchi validation: 35 sections of 384 x 512; 164³ training input (output 70³)
    assert fit_input_to_roi([164] * 3, [[35, 384, 512]], FACTORS, 3) == [132, 164, 164]
    # serial sections (factors 1 along z): 14 sections need an input of 44, not 204
    assert fit_input_to_roi([204] * 3, [[14, 300, 300]], [[1, 2, 2]] * 3, 3) == [44, 204, 204]
    # a ROI larger than the output everywhere keeps the training input
    assert fit_input_to_roi([108] * 3, [[64, 64, 64]], FACTORS, 3) == [108, 108, 108]


def test_auto_sizes_each_entrys_blocks_by_its_own_roi(tmp_path, checkpoint_factory, monkeypatch):
    """With ``input_size_voxels: auto`` a thin entry beside a large one gets blocks as deep as
    it needs, not the large entry's (it was sized by the largest ROI of the config)."""
    from incasem.predict import block_size
    from incasem.predict.run import plan_prediction

    monkeypatch.setattr(block_size, "memory_budget", lambda device, sharing: 8 * 2**30)
    write_cell(tmp_path / "cell.zarr", shape=(48, 56, 300))
    config = write_config(
        tmp_path / "data.json",
        {
            "large": {"offset": [10, 10, 0], "shape": [48, 56, 300]},
            "thin": {"offset": [10, 10, 0], "shape": [8, 16, 16]},
        },
    )
    plan = plan_prediction(
        PredictionSettings(checkpoint=str(checkpoint_factory()), data=str(config),
                           data_root=str(tmp_path), input_size_voxels="auto", device="cpu")
    )  # fmt: skip
    large, thin = plan.entries
    assert list(large.layout.input_shape) == [148, 156, 404]
    assert list(thin.layout.write_shape) == [8, 16, 16]  # one block, just covering the ROI
    assert thin.layout.num_blocks(thin.entry.roi) == 1
    assert list(plan.layout.input_shape) == [148, 156, 404]
