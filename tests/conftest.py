"""Fixtures shared by all tests: small real zarr containers on disk and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from incasem.io import create_array

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INCASEM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def repo_root() -> Path:
    """The repository checkout (configs/, scripts/)."""
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real FIB-SEM volumes); tests using it skip only if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set INCASEM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def small_container(tmp_path: Path) -> Path:
    """A 40x50x60 voxel container at 10x5x5 nm, offset (100, 50, 0) nm, with raw, a label with
    class voxels in a cube, a mask and a metric mask."""
    path = tmp_path / "cell.zarr"
    rng = np.random.default_rng(0)
    shape, voxel_size, offset = (40, 50, 60), (10, 5, 5), (100, 50, 0)
    raw = create_array(path, "volumes/raw", shape, voxel_size, offset)
    raw[raw.roi] = rng.integers(0, 255, shape, dtype=np.uint8)
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 10:30, 10:40] = 1
    for name, data in (
        ("volumes/labels/mito", labels),
        ("volumes/mask", np.ones(shape, np.uint8)),
        ("volumes/metric_masks/mito", np.ones(shape, np.uint8)),
    ):
        array = create_array(path, name, shape, voxel_size, offset)
        array[array.roi] = data
    return path
