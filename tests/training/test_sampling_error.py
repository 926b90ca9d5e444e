"""A sampling dead end raised in a PreCache worker reaches the user as one line, through
PreCache and Prefetch, and training stops instead of hanging."""

from __future__ import annotations

from pathlib import Path

import pytest

from incasem.errors import IncasemError
from incasem.training.loop import train


def test_no_valid_location_stops_training_with_one_line(tmp_path: Path, phantom_training):
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
    assert message.startswith("tiny_block: no location with at least 100% known labels")
