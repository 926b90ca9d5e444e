"""Data configs are validated against the data on disk before any work, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Roi

from incasem.io import create_array
from incasem.io.data_config import (
    DataConfigError,
    check_data_config,
    entry_voxel_size,
    load_data_config,
)


def _entry(**overrides) -> dict:
    entry = {
        "file": "cell.zarr",
        "offset": [10, 10, 0],
        "shape": [20, 30, 40],
        "voxel_size": [10, 5, 5],
        "raw": "volumes/raw",
        "labels": {"volumes/labels/mito": 1},
        "mask": "volumes/mask",
        "metric_masks": ["volumes/metric_masks/mito"],
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


def _write(tmp_path: Path, content, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_valid_config_loads_with_relative_and_absolute_paths(tmp_path, small_container):
    path = _write(
        tmp_path,
        {"a": _entry(), "b": _entry(file=str(small_container), labels=None, weight=2.0)},
    )
    config = check_data_config(path, data_root=small_container.parent, num_classes=2)
    assert [e.name for e in config] == ["a", "b"]
    assert config["a"].roi == Roi((100, 50, 0), (200, 150, 200))
    assert config["a"].path(small_container.parent) == small_container
    assert config["b"].labels == {} and config["b"].weight == 2.0
    assert tuple(entry_voxel_size(config)) == (10, 5, 5)


def test_multi_file_config_comma_separated(tmp_path, small_container):
    first = _write(tmp_path, {"a": _entry()}, "first.json")
    second = _write(tmp_path, {"b": _entry(offset=[12, 10, 0])}, "second.json")
    config = check_data_config(f"{first},{second}", data_root=small_container.parent)
    assert [e.name for e in config] == ["a", "b"]


# Each malformed config and the one line that must name its culprit.
MALFORMED = {
    "malformed JSON": ('{"a": {"file": "cell.zarr",}', "not valid JSON: Expecting"),
    "not an object": ("[1, 2]", "a data config is a JSON object of named entries"),
    "missing key raw": ({"a": _entry(raw=None)}, "entry 'a': missing key 'raw'"),
    "unknown key": ({"a": _entry(rwa="x")}, "entry 'a': unknown key 'rwa'"),
    "wrong type shape": ({"a": _entry(shape="20,30,40")}, "entry 'a': key 'shape' = \"20,30,40\""),
    "negative shape": ({"a": _entry(shape=[20, -30, 40])}, "entry 'a': key 'shape.1' = -30"),
    "two-axis offset": ({"a": _entry(offset=[1, 2])}, "entry 'a': key 'offset' = [1, 2]"),
    "class id zero": (
        {"a": _entry(labels={"volumes/labels/mito": 0})},
        "entry 'a': key 'labels.volumes/labels/mito' = 0",
    ),
    "duplicate names": (
        {"cell_A": _entry(), "cell_a": _entry()},
        "entry 'cell_a' has the same name (ignoring case) as entry 'cell_A'",
    ),
    "missing file": (
        {"a": _entry(file="nothing.zarr")},
        "a: file 'nothing.zarr' not found (looked at",
    ),
    "missing dataset": (
        {"a": _entry(raw="volumes/raw_equalized")},
        "a: raw: {root}/cell.zarr: no dataset 'volumes/raw_equalized'",
    ),
    "missing label dataset": (
        {"a": _entry(labels={"volumes/labels/er": 1})},
        "a: labels: {root}/cell.zarr: no dataset 'volumes/labels/er'",
    ),
    "ROI outside": (
        {"a": _entry(offset=[10, 10, 0], shape=[41, 30, 40])},
        "a: raw 'volumes/raw' ROI [10:51, 10:40, 0:40] (voxels) ends outside the dataset "
        "[10:50, 10:60, 0:60] (voxels, shape (40, 50, 60))",
    ),
    "negative offset outside": (
        {"a": _entry(offset=[0, 10, 0])},
        "a: raw 'volumes/raw' ROI [0:20, 10:40, 0:40] (voxels) ends outside",
    ),
    "voxel size mismatch": (
        {"a": _entry(voxel_size=[5, 5, 5])},
        "a: raw 'volumes/raw' in {root}/cell.zarr has voxel size [10, 5, 5] nm, the entry says "
        "voxel_size [5, 5, 5]",
    ),
    "class id too large": (
        {"a": _entry(labels={"volumes/labels/mito": 2})},
        "a: labels 'volumes/labels/mito' has class id 2, but the model has num_classes=2",
    ),
    "float label dtype": (
        {"a": _entry(labels={"volumes/raw_float": 1})},
        "a: labels 'volumes/raw_float' in {root}/cell.zarr has dtype float32, unusable as labels",
    ),
    "float raw": (
        {"a": _entry(raw="volumes/raw_float")},
        "a: raw 'volumes/raw_float' in {root}/cell.zarr is float32; the networks read 8-bit raw "
        "(0-255, mapped to [-1, 1]), so other raw would be predicted as noise: write a uint8 copy "
        "with 'incasem convert --dtype uint8'",
    ),
    "empty raw path": ({"a": _entry(raw=" ")}, "entry 'a': key 'raw' = \" \": Value error"),
    "non-positive weight": ({"a": _entry(weight=0)}, "entry 'a': key 'weight' = 0"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_fails_with_one_line(tmp_path, small_container, case):
    create_array(
        small_container, "volumes/raw_float", (40, 50, 60), (10, 5, 5), (100, 50, 0), np.float32
    )
    content, expected = MALFORMED[case]
    path = _write(tmp_path, content)
    with pytest.raises(DataConfigError) as error:
        check_data_config(path, data_root=small_container.parent, num_classes=2)
    expected = expected.format(root=small_container.parent)
    assert any(expected in problem for problem in error.value.problems), error.value.problems
    assert all("\n" not in problem for problem in error.value.problems)
    assert "\n" not in str(error.value)


def test_all_problems_are_reported_not_just_the_first(tmp_path, small_container):
    path = _write(
        tmp_path,
        {"a": _entry(raw="volumes/nope"), "b": _entry(voxel_size=[5, 5, 5]), "c": _entry()},
    )
    with pytest.raises(DataConfigError) as error:
        check_data_config(path, data_root=small_container.parent)
    assert len(error.value.problems) >= 2
    assert "(and" in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(DataConfigError, match="data config not found"):
        load_data_config(tmp_path / "none.json")


def test_mixed_voxel_sizes_are_refused_for_one_model(tmp_path, small_container):
    path = _write(tmp_path, {"a": _entry(), "b": _entry(voxel_size=[5, 5, 5])})
    config = load_data_config(path)
    with pytest.raises(DataConfigError, match="entries have different voxel sizes"):
        entry_voxel_size(config)


def test_shared_data_config_validates(tmp_path, shared_data):
    path = _write(
        tmp_path,
        {
            "lucchi_train": {
                "file": "epfl_lucchi_train.zarr",
                "offset": [0, 0, 0],
                "shape": [130, 768, 1024],
                "voxel_size": [5, 5, 5],
                "raw": "volumes/raw",
                "labels": {"volumes/labels/mitochondria": 1},
            }
        },
    )
    config = check_data_config(path, data_root=shared_data, num_classes=2)
    assert config["lucchi_train"].roi.shape == (650, 3840, 5120)
