"""Labels with nothing in them: validate says so per entry and class; training refuses a class
that has no voxel in any entry, in one line, before any batch is drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.training.config import parse_config
from incasem.training.loop import check_training_config


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """A 32x64x64 volume with one labelled block (class 1) and an all-zero label dataset."""
    container = tmp_path / "c.zarr"
    raw = create_array(container, "volumes/raw", (32, 64, 64), (5, 5, 5))
    raw[raw.roi] = np.random.default_rng(0).integers(0, 255, (32, 64, 64), dtype=np.uint8)
    labels = np.zeros((32, 64, 64), np.uint8)
    labels[4:12, 8:24, 8:24] = 1  # 2048 voxels
    for name, data in (("volumes/labels/mito", labels), ("volumes/labels/empty", 0 * labels)):
        array = create_array(container, name, (32, 64, 64), (5, 5, 5))
        array[array.roi] = data
    return container


def _config(tmp_path: Path, **entries: str) -> Path:
    path = tmp_path / "data.json"
    common = {"file": "c.zarr", "offset": [0, 0, 0], "shape": [32, 64, 64], "voxel_size": [5] * 3}
    path.write_text(json.dumps({
        name: {**common, "raw": "volumes/raw", "labels": {dataset: 1}}
        for name, dataset in entries.items()
    }))  # fmt: skip
    return path


def test_validate_prints_voxels_per_class_and_empty_classes(tmp_path, labelled, capsys):
    config = _config(tmp_path, full="volumes/labels/mito", hollow="volumes/labels/empty")
    assert main(["validate", str(config), "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  voxels inside ROI and mask: class 0 129024 (98.4 %), class 1 2048 (1.6 %)" in out
    assert "  hollow: no voxel of class 1" in out and "full: no voxel" not in out
    assert "warning" not in out  # the other entry has class 1

    config = _config(tmp_path, hollow="volumes/labels/empty")
    assert main(["validate", str(config), "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: class 1 has no voxel in any entry; training would refuse this config" in out


def test_training_refuses_a_class_without_voxels(tmp_path, labelled):
    def config(data: Path):
        return parse_config({
            "directories": {"data": str(tmp_path)},
            "training": {"data": str(data), "input_size_voxels": [108] * 3,
                         "output_size_voxels": [14] * 3},
            "data": {"class_names": ["background", "mito"]},
        })  # fmt: skip

    check_training_config(
        config(_config(tmp_path, full="volumes/labels/mito", hollow="volumes/labels/empty"))
    )
    data = _config(tmp_path, hollow="volumes/labels/empty")
    with pytest.raises(IncasemError) as error:
        check_training_config(config(data))
    assert str(error.value) == (
        f"training.data {data}: no entry has a single voxel of class mito (1) inside its ROI and "
        "mask; the labels are empty or the class ids do not match (incasem validate prints the "
        "voxels per class)"
    )
