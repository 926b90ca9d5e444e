"""The documented CPU recipes: their own instructions make the data they train on."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from incasem.cli.main import main
from incasem.io import open_array
from incasem.tracking.config_layers import merge_into
from incasem.training.config import default_config, parse_config
from incasem.training.loop import check_training_config


def _header_commands(text: str) -> list[list[str]]:
    """The ``incasem`` commands in a recipe's comment header (continuation lines joined)."""
    lines = [line.removeprefix("#").strip() for line in text.splitlines() if line.startswith("#")]
    commands, current = [], ""
    for line in lines:
        if line.startswith("incasem ") or current:
            current += " " + line.removesuffix("\\").strip()
            if not line.endswith("\\"):
                commands.append(shlex.split(current))
                current = ""
    return commands


@pytest.mark.slow
def test_the_10nm_lucchi_recipe_makes_its_data_and_checks_out(
    repo_root: Path, shared_data: Path, tmp_path: Path, monkeypatch
):
    recipe_path = repo_root / "configs" / "lucchi_cpu.yaml"
    text = recipe_path.read_text()
    commands = _header_commands(text)
    assert [c[:2] for c in commands] == [["incasem", "pyramid"]] * 2
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = [a.replace("../shared/data", str(shared_data)) for a in command[1:]]
        assert main([*args, "--workers", "0"]) == 0
    recipe = yaml.safe_load(text)
    assert recipe["directories"]["data"] == "data"
    recipe["training"]["data"] = str(repo_root / recipe["training"]["data"])
    recipe["validation"]["data"] = str(repo_root / recipe["validation"]["data"])
    recipe["directories"]["data"] = str(tmp_path / "data")
    config = parse_config(merge_into(default_config(), recipe))

    data = check_training_config(config)  # sizes, data on disk, voxel sizes, outputs fit

    (train,), (validation,) = data.train.entries, data.validation.entries
    assert train.voxel_size == validation.voxel_size == [10, 10, 10]
    raw = open_array(tmp_path / "data" / "epfl_lucchi_train_10nm.zarr", "volumes/raw_s1")
    assert raw.voxel_size == (10, 10, 10) and tuple(raw.shape) == (82, 384, 512)
    # The split of the 5 nm recipe, in whole 10 nm voxels: training z < 130 sections of 5 nm.
    assert list(train.roi.get_end()) == [650, 3840, 5120] and train.roi.offset == (0, 0, 0)
    assert list(validation.roi.offset) == [650, 960, 1280]
