"""A model trained at twice the data's voxel size predicts the data at the data's voxel size.

Acceptance tests of issue #30, item 3: `predict` averages the raw to the model's voxel size,
predicts there and writes probabilities and segmentation at the data's voxel size that equal
the manual route (``pyramid``, predict the level, ``scipy.ndimage.zoom`` order 1) to 1/255;
the upsampling is seam-free (other block sizes give identical outputs); the outputs can stay at
the model's voxel size; a ratio that is not whole is refused in one line; the provenance records
both voxel sizes; the labels' voxel size needs no extra step for scores and ``evaluate``.
Real zarr containers and real daisy workers, a tiny random two-level U-Net.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from scipy import ndimage

from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.postprocess.evaluate import evaluate
from incasem.postprocess.sources import DatasetRef
from incasem.predict import predict
from incasem.predict.resample import upsample_linear
from incasem.prepare.pyramid import scale_pyramid
from incasem.torch.models import shapes

from .conftest import (
    NETWORKS,
    OFFSET,
    SHAPE,
    VOXEL_SIZE,
    file_tree,
    read_dataset,
    write_cell,
    write_checkpoint,
    write_config,
)

pytestmark = pytest.mark.slow  # four predictions of three blockwise passes each

MODEL_VOXEL_SIZE = tuple(2 * v for v in VOXEL_SIZE)
DATA_OFFSET = [o // v for o, v in zip(OFFSET, VOXEL_SIZE, strict=True)]
FACTORS = NETWORKS["unet2"]["downsample_factors"]


def _input_for_output(output: int) -> list[int]:
    return list(shapes.input_shape_for_output([output] * 3, FACTORS))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The automatic route twice (two block sizes), the manual route, and the outputs kept at
    the model's voxel size."""
    folder = tmp_path_factory.mktemp("resampled")
    cell = write_cell(folder / "cell.zarr")
    checkpoint = write_checkpoint(folder / "model.pt", "unet2", voxel_size=MODEL_VOXEL_SIZE)
    config = write_config(
        folder / "config.json",
        {"whole": {"offset": DATA_OFFSET, "shape": list(SHAPE), "mask": "volumes/mask"}},
    )
    common = {
        "checkpoint": str(checkpoint),
        "num_workers": 1,
        "device": "cpu",
        "deterministic": True,
        "progress": False,
    }
    data = {"data": str(config), "data_root": str(folder)}
    small = predict(**data, log_metrics=True, input_size_voxels=_input_for_output(12),
                    output_group="small", **common)  # fmt: skip
    large = predict(**data, input_size_voxels=_input_for_output(20), output_group="large",
                    **common)  # fmt: skip
    kept = predict(input=str(cell), input_size_voxels=_input_for_output(12),
                   output_voxel_size="model", output_group="kept", **common)  # fmt: skip
    # the manual route: a pyramid level, predicted at the model's voxel size
    manual = folder / "manual.zarr"
    (level,) = scale_pyramid(cell, "volumes/raw", levels=1, out_container=manual, num_workers=0,
                             progress=False)  # fmt: skip
    coarse = predict(input=str(manual), dataset=level, input_size_voxels=_input_for_output(12),
                     output_group="coarse", **common)  # fmt: skip
    return {
        "folder": folder,
        "cell": cell,
        "manual": manual,
        "checkpoint": checkpoint,
        "small": small,
        "large": large,
        "kept": kept,
        "coarse": coarse,
    }


def _probabilities(container, result) -> np.ndarray:
    return np.stack([read_dataset(container, d) for d in result.entries[0].datasets[:-1]])


def test_outputs_at_the_data_voxel_size_equal_the_manual_route(runs):
    cell, small = runs["cell"], runs["small"]
    coarse = _probabilities(runs["manual"], runs["coarse"]).astype(np.float64) / 255
    expected = np.stack(
        [ndimage.zoom(c, 2, order=1, grid_mode=True, mode="nearest") for c in coarse]
    )
    outputs = small.entries[0].datasets
    for dataset in outputs:
        array = open_array(cell, dataset)
        assert array.voxel_size == Coordinate(VOXEL_SIZE)
        assert array.roi == open_array(cell, "volumes/raw").roi
    probabilities = _probabilities(cell, small).astype(np.float64) / 255
    assert expected.shape == probabilities.shape == (2, *SHAPE)
    assert np.abs(probabilities - expected).max() <= 1 / 255
    # the segmentation is the upsampled probability decided at the threshold, inside the mask
    segmentation = read_dataset(cell, outputs[-1])
    mask = read_dataset(cell, "volumes/mask") > 0
    clear = mask & (np.abs(expected[1] - 0.5) > 1 / 255)
    assert clear.sum() > 0.5 * mask.sum()
    assert np.array_equal(segmentation[clear], (expected[1] >= 0.5)[clear])
    assert not segmentation[~mask].any()
    # the network's own output is kept at the model's voxel size, the averaged raw is not
    group = zarr.open_group(str(cell), mode="r", path=small.entries[0].group)
    assert np.array_equal(
        read_dataset(cell, f"{small.entries[0].group}/model_voxel_size/prob_maps/class_1"),
        read_dataset(runs["manual"], runs["coarse"].entries[0].datasets[1]),
    )
    assert "raw" not in group["model_voxel_size"]


def test_upsampled_outputs_do_not_depend_on_the_block_size(runs):
    cell, small, large = runs["cell"], runs["small"], runs["large"]
    chunks = [open_array(cell, r.entries[0].datasets[1]).chunk_shape for r in (small, large)]
    assert chunks[0] != chunks[1]
    for a, b in zip(small.entries[0].datasets, large.entries[0].datasets, strict=True):
        assert np.array_equal(read_dataset(cell, a), read_dataset(cell, b))


def test_linear_upsampling_of_any_block_equals_the_whole(tmp_path):
    """Blocks of any size and position read exactly what the whole volume's interpolation
    uses: pieces agree bit for bit with one pass and with scipy's zoom (factors 3, 2, 1)."""
    rng = np.random.default_rng(1)
    coarse = rng.random((2, 7, 9, 11)).astype(np.float32)
    arrays = []
    for c, values in enumerate(coarse):
        array = create_array(tmp_path / "c.zarr", f"p{c}", values.shape, (12, 8, 4),
                             (24, 16, 8), dtype=np.float32)  # fmt: skip
        array[array.roi] = values
        arrays.append(array)
    voxel_size = Coordinate(4, 4, 4)
    whole_roi = arrays[0].roi
    whole = upsample_linear(arrays, whole_roi, voxel_size)
    expected = np.stack(
        [ndimage.zoom(c, (3, 2, 1), order=1, grid_mode=True, mode="nearest") for c in coarse]
    )
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    for block in ((5, 7, 3), (4, 4, 4), (1, 18, 2)):
        pieces = np.zeros_like(whole)
        step = Coordinate(block) * voxel_size
        for index in np.ndindex(*(-(-s // b) for s, b in zip(whole.shape[1:], block, strict=True))):
            roi = Roi(whole_roi.begin + Coordinate(index) * step, step).intersect(whole_roi)
            local = (roi.begin - whole_roi.begin) / voxel_size
            where = tuple(
                slice(b, b + s) for b, s in zip(local, roi.shape / voxel_size, strict=True)
            )
            pieces[(slice(None), *where)] = upsample_linear(arrays, roi, voxel_size)
        assert np.array_equal(pieces, whole)


def test_outputs_can_stay_at_the_model_voxel_size(runs):
    cell, kept = runs["cell"], runs["kept"]
    for dataset, reference in zip(kept.entries[0].datasets, runs["coarse"].entries[0].datasets,
                                  strict=True):  # fmt: skip
        assert open_array(cell, dataset).voxel_size == Coordinate(MODEL_VOXEL_SIZE)
        assert np.array_equal(read_dataset(cell, dataset), read_dataset(runs["manual"], reference))
    group = zarr.open_group(str(cell), mode="r", path=kept.entries[0].group)
    assert "model_voxel_size" not in group
    assert group.attrs["voxel_sizes"]["output_nm"] == list(MODEL_VOXEL_SIZE)


def test_provenance_records_both_voxel_sizes(runs):
    group = zarr.open_group(str(runs["cell"]), mode="r", path=runs["small"].entries[0].group)
    expected = {
        "data_nm": list(VOXEL_SIZE),
        "model_nm": list(MODEL_VOXEL_SIZE),
        "factors": [2, 2, 2],
        "output_nm": list(VOXEL_SIZE),
    }
    assert group.attrs["voxel_sizes"] == expected
    assert group.attrs["provenance"]["voxel_sizes"] == expected
    assert group.attrs["status"] == "complete"


def test_scores_and_evaluate_work_at_the_labels_voxel_size(runs):
    cell, entry = runs["cell"], runs["small"].entries[0]
    assert entry.scores, "log_metrics scores the upsampled segmentation against the labels"
    scored = evaluate(
        DatasetRef(str(cell), entry.datasets[-1]),
        DatasetRef(str(cell), "volumes/labels/mito"),
        masks=[DatasetRef(str(cell), "volumes/mask")],
        truth_class=1,
        num_workers=0,
        progress=False,
    )
    (scores,) = scored["classes"].values()
    segmentation = read_dataset(cell, entry.datasets[-1]) > 0
    truth = read_dataset(cell, "volumes/labels/mito") == 1
    mask = read_dataset(cell, "volumes/mask") > 0
    assert scores["tp"] == int((segmentation & truth & mask).sum())


def test_a_ratio_that_is_not_whole_gets_one_line_and_writes_nothing(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr")
    before = file_tree(tmp_path)
    for voxel_size in ((12, 6, 6), (4, 2, 2)):
        checkpoint = write_checkpoint(tmp_path / "odd.pt", "unet2", voxel_size=voxel_size)
        before = file_tree(tmp_path)
        with pytest.raises(IncasemError) as error:
            predict(checkpoint=str(checkpoint), input=str(cell), device="cpu", progress=False)
        message = str(error.value)
        assert "\n" not in message
        assert str(list(VOXEL_SIZE)) in message and str(list(voxel_size)) in message
        assert file_tree(tmp_path) == before
