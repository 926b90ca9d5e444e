"""Blockwise prediction with 2 daisy workers equals one forward pass over the whole ROI.

Acceptance tests of issue #8: float32 outputs agree with the single pass within 1e-5 and uint8
outputs exactly (deterministic mode), for a ROI touching every dataset border and a ROI aligned
to nothing; two ROIs of one config and two runs into one container keep their own outputs.
"""

from __future__ import annotations

import json

import gunpowder as gp
import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi

from incasem.digest import file_sha256
from incasem.io import open_array
from incasem.metrics import quantise
from incasem.predict import evaluate_entry, predict
from incasem.torch.checkpoint import load_checkpoint

from .conftest import (
    OFFSET,
    SHAPE,
    VOXEL_SIZE,
    read_dataset,
    single_pass,
    write_cell,
    write_checkpoint,
    write_config,
)

DATA_OFFSET = tuple(o // v for o, v in zip(OFFSET, VOXEL_SIZE, strict=True))
ENTRIES = {
    # the whole dataset: every block's context leaves the data on some side
    "whole": {
        "offset": list(DATA_OFFSET),
        "shape": list(SHAPE),
        "mask": "volumes/mask",
        "metric_masks": ["volumes/metric_masks/mito"],
    },
    # aligned to neither the voxel grid of 8 nor the 32-voxel blocks, inside the data
    "inner": {"offset": [15, 17, 9], "shape": [30, 37, 45]},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two predictions into one container: float32 of a two-ROI config, then uint8 of the
    whole dataset in deterministic mode."""
    folder = tmp_path_factory.mktemp("seamfree")
    cell = write_cell(folder / "cell.zarr")
    checkpoint = write_checkpoint(folder / "model.pt", "unet3")
    config = write_config(folder / "config.json", ENTRIES)
    common = {
        "checkpoint": str(checkpoint),
        "input_size_voxels": [132, 132, 132],
        "num_workers": 2,
        "device": "cpu",
        "progress": False,
    }
    first = predict(data=str(config), data_root=str(folder), probabilities="float32",
                    log_metrics=True, **common)  # fmt: skip
    first_outputs = {
        e.name: np.stack([read_dataset(cell, d) for d in e.datasets[:-1]]) for e in first.entries
    }
    second = predict(input=str(cell), probabilities="uint8", deterministic=True, **common)
    return {
        "cell": cell,
        "checkpoint": checkpoint,
        "first": first,
        "first_outputs": first_outputs,
        "second": second,
    }


def test_float32_blockwise_equals_single_pass(runs):
    for entry in runs["first"].entries:
        spec = ENTRIES[entry.name]
        reference = single_pass(runs["checkpoint"], runs["cell"], spec["offset"], spec["shape"])
        ours = np.stack([read_dataset(runs["cell"], d) for d in entry.datasets[:-1]])
        assert ours.dtype == np.float32 and ours.shape == reference.shape
        assert np.abs(ours - reference).max() < 1e-5, entry.name
        assert entry.blocks == {"whole": 8, "inner": 4}[entry.name]
        assert entry.computed == entry.blocks and entry.failed == 0


def test_uint8_deterministic_equals_single_pass_exactly(runs):
    (entry,) = runs["second"].entries
    reference = single_pass(
        runs["checkpoint"], runs["cell"], DATA_OFFSET, SHAPE, deterministic=True
    )
    ours = np.stack([read_dataset(runs["cell"], d) for d in entry.datasets[:-1]])
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, quantise(reference))
    segmentation = read_dataset(runs["cell"], entry.datasets[-1])
    np.testing.assert_array_equal(segmentation, (reference[1] >= 0.5).astype(np.uint8))


def test_two_rois_and_two_runs_keep_their_own_outputs(runs):
    first, second = runs["first"], runs["second"]
    assert (first.prediction_id, second.prediction_id) == (1, 2)
    assert first.group == "volumes/predictions/model/predict_0001"
    groups = {e.group for e in first.entries} | {e.group for e in second.entries}
    assert len(groups) == 3
    for entry in first.entries:  # untouched by the second run
        now = np.stack([read_dataset(runs["cell"], d) for d in entry.datasets[:-1]])
        np.testing.assert_array_equal(now, runs["first_outputs"][entry.name])
    assert zarr.open_group(str(runs["cell"]), "r")["volumes/raw"].shape == SHAPE


def test_outputs_have_metadata_readers_agree_on(runs):
    entry = next(e for e in runs["first"].entries if e.name == "inner")
    spec = ENTRIES["inner"]
    voxel_size = Coordinate(VOXEL_SIZE)
    roi = Roi(Coordinate(spec["offset"]) * voxel_size, Coordinate(spec["shape"]) * voxel_size)
    for dataset in entry.datasets:
        array = open_array(runs["cell"], dataset)
        assert array.roi == roi and array.voxel_size == VOXEL_SIZE
        stored = zarr.open_array(str(runs["cell"]), "r", path=dataset)
        assert stored.chunks[-3:] == (32, 32, 32)  # chunk = block write size
        attrs = stored.attrs
        assert attrs["resolution"] == list(VOXEL_SIZE) and attrs["offset"] == list(roi.begin)
    key = gp.ArrayKey("P")
    source = gp.ZarrSource(str(runs["cell"]), {key: entry.datasets[1]})
    with gp.build(source):
        assert source.spec[key].roi == roi and source.spec[key].voxel_size == VOXEL_SIZE


def test_provenance_is_recorded(runs):
    root = zarr.open_group(str(runs["cell"]), "r")
    record = root[runs["first"].group].attrs["incasem_prediction"]
    assert record["checkpoint_sha256"] == file_sha256(runs["checkpoint"])
    assert record["incasem_version"] and record["created"] and record["settings"]["num_workers"]
    entry_attrs = root[runs["first"].entries[0].group].attrs
    assert entry_attrs["status"] == "complete" and len(entry_attrs["provenance_hash"]) == 64
    assert entry_attrs["provenance"]["checkpoint_sha256"] == record["checkpoint_sha256"]
    json.dumps(dict(entry_attrs))


def test_segmentation_masked_and_metrics_match_evaluate_entry(runs):
    entry = next(e for e in runs["first"].entries if e.name == "whole")
    segmentation = read_dataset(runs["cell"], entry.datasets[-1])
    assert segmentation[:, :, :4].max() == 0  # the fixture's mask is 0 there
    assert segmentation.max() == 1
    loaded = load_checkpoint(runs["checkpoint"])
    from incasem.io.data_config import load_data_config

    config = load_data_config(str(runs["cell"].parent / "config.json"))
    expected = evaluate_entry(
        loaded.model,
        config["whole"],
        runs["cell"].parent,
        [132, 132, 132],
        VOXEL_SIZE,
        loaded.card.normalisation,
        class_names=loaded.card.class_names,
    )
    assert set(entry.scores) == set(expected)
    for key, value in expected.items():
        assert entry.scores[key] == pytest.approx(value, abs=1e-3), key
    assert entry.best_thresholds["mito"]["f1"] >= entry.scores["f1"] - 1e-3
