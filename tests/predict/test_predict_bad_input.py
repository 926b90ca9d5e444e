"""Bad requests fail before anything is written, with one line that names the culprit."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from incasem.cli.main import main as incasem_main
from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.predict import plan_prediction, predict
from incasem.predict.settings import PredictionSettings

from .conftest import file_tree, write_checkpoint, write_config


@pytest.fixture
def setup(tmp_path, cell):
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    config = write_config(
        tmp_path / "config.json", {"a": {"offset": [10, 10, 0], "shape": [8, 8, 8]}}
    )
    return tmp_path, cell, checkpoint, config


def _predict(setup, **changes):
    tmp_path, cell, checkpoint, config = setup
    settings = {
        "checkpoint": str(checkpoint),
        "input": str(cell),
        "input_size_voxels": [84, 84, 84],
        "device": "cpu",
        "progress": False,
    }
    return predict(**(settings | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"checkpoint": "missing.pt"}, r"missing\.pt: checkpoint not found"),
        ({"roi": [10, 10, 0, 100, 8, 8]}, r"ends outside the dataset"),
        ({"roi": [0, 0, 0, 8, 8, 8]}, r"ends outside the dataset"),
        ({"input_size_voxels": [83, 84, 84]}, r"input size 83 along z is not valid"),
        ({"output_size_voxels": [1, 2, 3]}, r"does not match the network"),
        ({"dataset": "volumes/nothing"}, r"no dataset 'volumes/nothing'"),
        ({"resume": 7}, r"no prediction 7 of model to resume"),
        ({"device": "cuda:1"}, r"CUDA is not available"),
        ({"num_workers": 0}, r"num_workers must be a positive integer"),
        ({"worker_command": "srun"}, r"must contain '\{command\}'"),
        ({"input": None}, r"give either a data config"),
        ({"checkpoint": None}, r"no model given"),
    ],
)
def test_bad_request_writes_nothing(setup, changes, message):
    tmp_path = setup[0]
    before = file_tree(tmp_path)
    with pytest.raises(IncasemError, match=message) as error:
        _predict(setup, **changes)
    assert "\n" not in str(error.value)
    assert file_tree(tmp_path) == before


def test_incompatible_voxel_size(setup):
    tmp_path, cell, _, config = setup
    other = write_checkpoint(tmp_path / "coarse.pt", "unet2", voxel_size=(4, 4, 4))
    before = file_tree(tmp_path)
    with pytest.raises(
        IncasemError, match=r"voxel size \[8, 4, 4\] nm is not the model's \[4, 4, 4\] nm"
    ):
        _predict(
            setup, checkpoint=str(other), input=None, data=str(config), data_root=str(tmp_path)
        )
    assert file_tree(tmp_path) == before


def test_class_ids_beyond_the_model(setup):
    tmp_path, _, checkpoint, _ = setup
    config = write_config(
        tmp_path / "three.json",
        {"a": {"offset": [10, 10, 0], "shape": [8, 8, 8], "labels": {"volumes/labels/mito": 2}}},
    )
    with pytest.raises(IncasemError, match="num_classes=2"):
        _predict(setup, input=None, data=str(config), data_root=str(tmp_path))


def test_existing_output_group_needs_overwrite(setup):
    tmp_path, cell, *_ = setup
    zarr.open_group(str(cell), "a").require_group("volumes/predictions/mine")
    before = file_tree(tmp_path)
    with pytest.raises(IncasemError, match="mine already exists; pass --overwrite to replace it"):
        _predict(setup, output_group="volumes/predictions/mine")
    assert file_tree(tmp_path) == before


def test_unwritable_output(setup):
    tmp_path = setup[0]
    (tmp_path / "a_file").write_text("")
    before = file_tree(tmp_path)
    with pytest.raises(IncasemError, match="cannot write there"):
        _predict(setup, output=str(tmp_path / "a_file" / "out.zarr"))
    assert file_tree(tmp_path) == before


def test_plan_is_complete_without_writing(setup):
    tmp_path, cell, checkpoint, _ = setup
    before = file_tree(tmp_path)
    plan = plan_prediction(
        PredictionSettings(checkpoint=str(checkpoint), input=str(cell), device="cpu")
    )
    # default input: the smallest whose output covers 110 voxels (two levels: 152 -> 110)
    assert plan.layout.input_shape == (152, 152, 152)
    assert plan.layout.write_shape == (108, 108, 108)  # a multiple of the 4-voxel grid
    assert plan.device == "cpu" and plan.group is None and len(plan.entries) == 1
    assert file_tree(tmp_path) == before


def test_cli_prints_one_line_and_records_no_run(setup, capsys, monkeypatch):
    tmp_path, cell, checkpoint, _ = setup
    monkeypatch.chdir(tmp_path)
    before = file_tree(tmp_path)
    code = incasem_main(
        ["predict", "--checkpoint", str(checkpoint), "--input", str(cell), "--roi",
         "0", "0", "0", "5", "5", "5", "--device", "cpu"]
    )  # fmt: skip
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("incasem predict: error: ")
    assert "ends outside the dataset" in lines[0]
    assert file_tree(tmp_path) == before and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("dtype", "values"), [(np.float32, (0.0, 1.0)), (np.uint16, (0, 65535))])
def test_raw_that_is_not_8_bit_is_refused_in_one_line(tmp_path, capsys, dtype, values):
    # float raw in [0, 1] gave a constant map, uint16 raw noise, both with exit 0
    container = tmp_path / "other.zarr"
    raw = create_array(container, "volumes/raw", (48, 56, 64), (8, 4, 4), dtype=dtype)
    raw[raw.roi] = np.linspace(*values, 48 * 56 * 64).reshape(48, 56, 64).astype(dtype)
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    code = incasem_main(
        ["predict", "--checkpoint", str(checkpoint), "--input", str(container), "--device", "cpu"]
    )
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("incasem predict: error: ")
    assert (
        f"raw 'volumes/raw' in {container} is {np.dtype(dtype)}; the networks read 8-bit"
        in (lines[0])
    )
    assert "incasem convert --dtype uint8" in lines[0]
    assert sorted(p.name for p in container.iterdir()) == [".zgroup", "volumes"]
