"""Fixtures shared by all tests: small real zarr containers on disk, a synthetic cell with its
training config, and the shared data folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from incasem.io import create_array
from incasem.phantom import write_cell
from incasem.training.config import TrainingConfig, parse_config

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


@pytest.fixture
def phantom_training(tmp_path: Path) -> Callable[..., TrainingConfig]:
    """A factory: writes a synthetic cell of ``cell_shape`` voxels (5 nm) and a data config with
    one annotated block (``name``, ``offset`` and ``shape`` in voxels, mitochondria as class 1),
    and returns the training config for it, with ``sections`` merged in (e.g.
    ``training={...}, model={...}``)."""

    def make(cell_shape, offset, shape, name="block", **sections) -> TrainingConfig:
        write_cell(tmp_path / "cell.zarr", shape=cell_shape)
        entry = {
            "file": "cell.zarr",
            "offset": list(offset),
            "shape": list(shape),
            "voxel_size": [5, 5, 5],
            "raw": "volumes/raw",
            "labels": {"volumes/labels/mito": 1},
        }
        data = tmp_path / "data.json"
        data.write_text(json.dumps({name: entry}))
        training = {"data": str(data), **sections.pop("training", {})}
        return parse_config(
            {
                "directories": {"data": str(tmp_path), "runs": str(tmp_path / "runs")},
                "training": training,
                **sections,
            }
        )

    return make


@pytest.fixture
def write_cubes(tmp_path: Path) -> Callable[..., dict]:
    """A factory: writes ``tmp_path/cubes.zarr``, a volume of ``shape`` voxels at 5 nm, noise
    around 160 with ``count`` dark cubes of ``edge`` voxels labelled as class 1 (corners drawn in
    ``corners`` = [low, high)), and returns its data-config entry without offset and shape."""

    def make(shape, count, edge, corners) -> dict:
        rng = np.random.default_rng(0)
        labels = np.zeros(shape, np.uint8)
        for z, y, x in rng.integers(*corners, size=(count, 3)):
            labels[z : z + edge, y : y + edge, x : x + edge] = 1
        raw = rng.normal(160, 20, shape)
        raw[labels > 0] -= 80
        container = tmp_path / "cubes.zarr"
        raw_array = create_array(container, "volumes/raw", shape, (5, 5, 5))
        raw_array[raw_array.roi] = np.clip(raw, 0, 255).astype(np.uint8)
        labels_array = create_array(container, "volumes/labels/cubes", shape, (5, 5, 5))
        labels_array[labels_array.roi] = labels
        return {
            "file": "cubes.zarr",
            "voxel_size": [5, 5, 5],
            "raw": "volumes/raw",
            "labels": {"volumes/labels/cubes": 1},
        }

    return make
