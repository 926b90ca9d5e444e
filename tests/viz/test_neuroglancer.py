"""The neuroglancer viewer state built for a container: layers, voxel sizes, offsets, ROI boxes.

Checked on the state JSON, without a browser; one test renders a real screenshot in headless
Chromium when it is installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import imageio.v3 as iio
import numpy as np
import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.viz.neuroglancer import build_viewer, find_chromium, layer_kind


@pytest.fixture
def container(tmp_path: Path) -> Path:
    """Raw at 8x4x4 nm offset (80, 40, 0) nm; mito labels at 16x8x8 nm offset (160, 80, 16)
    nm; instance ids (uint32); probabilities of 2 classes (channel axis first, float32)."""
    path = tmp_path / "cell.zarr"
    raw = create_array(path, "volumes/raw", (20, 24, 28), (8, 4, 4), (80, 40, 0))
    raw[raw.roi] = np.arange(20 * 24 * 28, dtype=np.uint32).reshape(20, 24, 28) % 251
    labels = create_array(path, "volumes/labels/mito", (6, 8, 10), (16, 8, 8), (160, 80, 16))
    labels[labels.roi] = 1
    create_array(path, "volumes/instances/mito", (6, 8, 10), (16, 8, 8), (160, 80, 16), np.uint32)
    create_array(
        path, "volumes/probs", (20, 24, 28), (8, 4, 4), (80, 40, 0), np.float32, num_channels=2
    )
    return path


def _layers(viewer) -> dict[str, dict]:
    return {layer["name"]: layer for layer in viewer.state.to_json()["layers"]}


def test_state_has_voxel_sizes_offsets_and_layer_types(container):
    viewer = build_viewer(
        container,
        ["volumes/raw", "volumes/labels/mito", "volumes/instances/mito", "volumes/probs"],
    )
    state = viewer.state.to_json()
    assert state["dimensions"] == {"z": [8e-9, "m"], "y": [4e-9, "m"], "x": [4e-9, "m"]}
    assert state["position"] == [20.0, 22.0, 14.0]  # centre of raw, in raw voxels
    layers = _layers(viewer)
    assert {name: layer["type"] for name, layer in layers.items()} == {
        "raw": "image",
        "labels/mito": "segmentation",
        "instances/mito": "segmentation",
        "probs": "image",
    }
    raw = layers["raw"]["source"][0]["transform"]
    assert raw["outputDimensions"] == {"z": [8e-9, "m"], "y": [4e-9, "m"], "x": [4e-9, "m"]}
    assert np.array(raw["matrix"])[:, 3].tolist() == [10, 10, 0]  # (80, 40, 0) nm in voxels
    labels = layers["labels/mito"]["source"][0]["transform"]
    assert labels["outputDimensions"] == {"z": [16e-9, "m"], "y": [8e-9, "m"], "x": [8e-9, "m"]}
    assert np.array(labels["matrix"])[:, 3].tolist() == [10, 10, 2]  # (160, 80, 16) nm
    probs = layers["probs"]["source"][0]["transform"]
    assert list(probs["outputDimensions"]) == ["c^", "z", "y", "x"]
    assert np.array(probs["matrix"]).shape == (4, 5)
    assert np.array(probs["matrix"])[:, 4].tolist() == [0, 10, 10, 0]


def test_viewer_binds_to_localhost(container):
    viewer = build_viewer(container, ["volumes/raw"])
    assert urlparse(viewer.get_viewer_url()).hostname == "127.0.0.1"


def test_rois_become_boxes_in_nm(container, tmp_path):
    config = tmp_path / "rois.json"
    entry = {"file": "cell.zarr", "voxel_size": [8, 4, 4], "raw": "volumes/raw"}
    config.write_text(
        json.dumps(
            {
                "train": {**entry, "offset": [10, 10, 0], "shape": [10, 12, 14]},
                "other": {**entry, "file": "elsewhere.zarr", "offset": [0, 0, 0], "shape": [1] * 3},
            }
        )
    )
    viewer = build_viewer(container, ["volumes/raw"], rois=config)
    boxes = _layers(viewer)["rois"]
    assert boxes["type"] == "annotation"
    assert boxes["annotations"] == [
        {
            "type": "axis_aligned_bounding_box",
            "id": "train",
            "description": "train",
            "pointA": [80.0, 40.0, 0.0],
            "pointB": [160.0, 88.0, 56.0],
        }
    ]
    assert boxes["source"][0]["transform"]["outputDimensions"]["z"] == [1e-9, "m"]


def test_layer_kind_rules():
    assert layer_kind("volumes/raw", np.uint8) == "image"
    assert layer_kind("volumes/labels/er", np.uint8) == "segmentation"
    assert layer_kind("volumes/predictions/m/predict_1/a/segmentation", np.uint8) == "segmentation"
    assert layer_kind("volumes/predictions/m/predict_1/a/prob_maps/class_1", np.uint8) == "image"
    assert layer_kind("volumes/mask", np.uint8) == "segmentation"
    assert layer_kind("volumes/ids", np.uint64) == "segmentation"
    assert layer_kind("volumes/raw_float", np.float32) == "image"


def test_missing_dataset_is_one_line_error(container, capsys):
    assert main(["view", str(container), "-d", "volumes/raw", "volumes/nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("incasem view: error:") and "volumes/nope" in err
    assert len(err.splitlines()) == 1


def test_rois_for_another_container_is_an_error(container, tmp_path):
    config = tmp_path / "rois.json"
    config.write_text(
        json.dumps(
            {"a": {"file": "x.zarr", "voxel_size": [8, 4, 4], "raw": "volumes/raw",
                   "offset": [0, 0, 0], "shape": [2, 2, 2]}}
        )
    )  # fmt: skip
    with pytest.raises(IncasemError, match="no entry refers to"):
        build_viewer(container, ["volumes/raw"], rois=config)


@pytest.mark.slow
@pytest.mark.skipif(
    find_chromium() is None or shutil.which("chromedriver") is None,
    reason="headless screenshot needs chromium and chromedriver (apt-get install chromium "
    "chromium-driver); not installed here",
)
def test_screenshot_renders_the_data(container, tmp_path, capsys):
    out = tmp_path / "shot.png"
    args = ["view", str(container), "-d", "volumes/raw", "volumes/labels/mito"]
    assert main([*args, "--screenshot", str(out), "--size", "400", "300"]) == 0
    image = iio.imread(out)
    assert image.shape[:2] == (300, 400)
    # Rendered data, not an empty canvas: many distinct grey levels from the raw ramp.
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 50
    assert main([*args, "--screenshot", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
