"""A sampling dead end raised in a PreCache worker reaches the user as one line, through
PreCache and Prefetch, and training stops instead of hanging; an output that cannot fit the
annotated ROI at all is refused before sampling starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.training.config import parse_config
from incasem.training.loop import train


def test_an_output_larger_than_the_roi_is_refused_before_sampling(tmp_path, phantom_training):
    # A 4-voxel annotated block cannot fill a 6-voxel output window with known labels.
    config = phantom_training(
        (64, 64, 64),
        offset=(30, 30, 30),
        shape=(4, 4, 4),
        name="tiny_block",
        training={
            "iterations": 3,
            "input_size_voxels": [100, 100, 100],
            "output_size_voxels": [6, 6, 6],
            "reject": {"min_valid": 1.0, "max_attempts": 50},
        },
        model={"num_fmaps": 2},
    )
    with pytest.raises(IncasemError) as error:
        train(config, tmp_path / "runs" / "1", progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "training.output_size_voxels [6, 6, 6] is larger than the annotated ROIs allow: at most "
        "30 % of an output block lies inside one (e.g. tiny_block, 4 x 4 x 4 voxels)"
    )
    assert not (tmp_path / "runs" / "1" / "checkpoints").exists()


def test_no_valid_location_stops_training_with_one_line(tmp_path: Path):
    """The ROI holds the output, but its mask leaves no window fully known."""
    shape, voxel_size = (24, 24, 24), (5, 5, 5)
    container = tmp_path / "cell.zarr"
    rng = np.random.default_rng(0)
    labels = np.zeros(shape, np.uint8)
    labels[:, :, :12] = 1
    mask = np.zeros(shape, np.uint8)
    mask[:5, :5, 8:16] = 1  # known labels in a 5 x 5 x 8 corner: no 6³ window fits inside
    for name, data in (
        ("volumes/raw", rng.integers(0, 255, shape, dtype=np.uint8)),
        ("volumes/labels/mito", labels),
        ("volumes/mask", mask),
    ):
        create_array(container, name, shape, voxel_size)[...] = data
    entry = {"file": "cell.zarr", "offset": [0, 0, 0], "shape": list(shape),
             "voxel_size": list(voxel_size), "raw": "volumes/raw",
             "labels": {"volumes/labels/mito": 1}, "mask": "volumes/mask"}  # fmt: skip
    (tmp_path / "data.json").write_text(json.dumps({"masked_block": entry}))
    config = parse_config(
        {
            "directories": {"data": str(tmp_path), "runs": str(tmp_path / "runs")},
            "training": {
                "data": str(tmp_path / "data.json"),
                "iterations": 3,
                "input_size_voxels": [100, 100, 100],
                "output_size_voxels": [6, 6, 6],
                "reject": {"min_valid": 1.0, "max_attempts": 50},
            },
            "model": {"num_fmaps": 2},
        }
    )
    with pytest.raises(IncasemError) as error:
        train(config, tmp_path / "runs" / "1", progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("masked_block: no location with at least 100% known labels")
