"""The `incasem` command: foundation commands, one-line errors, nothing overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.io import open_array
from incasem.phantom import ORGANELLES, generate_cell


def test_phantom_command_writes_readable_container(tmp_path, capsys):
    out = tmp_path / "cell.zarr"
    assert main(["phantom", "--out", str(out), "--shape", "48", "64", "64", "--seed", "3"]) == 0
    raw = open_array(out, "volumes/raw")
    assert raw.shape == (48, 64, 64) and tuple(raw.voxel_size) == (5, 5, 5)
    expected = generate_cell((48, 64, 64), seed=3)
    np.testing.assert_array_equal(raw[raw.roi], expected.raw)
    for name in ORGANELLES:
        labels = open_array(out, f"volumes/labels/{name}")
        np.testing.assert_array_equal(labels[labels.roi], expected.labels[name])
    mask = open_array(out, "volumes/mask")
    np.testing.assert_array_equal(mask[mask.roi], expected.cell_mask)
    assert mask[mask.roi].any()
    assert "volumes/labels/mito" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["cell.zarr"]  # no temporary leftovers


def test_phantom_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cell.zarr"
    assert main(["phantom", "--out", str(out), "--shape", "16", "16", "16"]) == 0
    before = open_array(out, "volumes/raw")[...]
    assert main(["phantom", "--out", str(out), "--shape", "16", "16", "16", "--seed", "1"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(open_array(out, "volumes/raw")[...], before)
    assert main(["phantom", "--out", str(out), "--shape", "16", "16", "16", "--overwrite"]) == 0


def test_validate_command_reports_every_problem(tmp_path, small_container, capsys):
    config = tmp_path / "c.json"
    entry = {
        "file": small_container.name,
        "offset": [10, 10, 0],
        "shape": [20, 30, 40],
        "voxel_size": [10, 5, 5],
        "raw": "volumes/raw",
    }
    config.write_text(json.dumps({"good": entry, "bad": {**entry, "raw": "volumes/nope"}}))
    code = main(["validate", str(config), "--data-root", str(small_container.parent)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0].startswith("bad: raw: ") and "no dataset 'volumes/nope'" in err[0]
    assert err[-1] == f"1 problem(s) found in {config}"

    config.write_text(json.dumps({"good": entry}))
    assert main(["validate", str(config), "--data-root", str(small_container.parent)]) == 0
    assert "1 entries OK" in capsys.readouterr().out


def test_plot_slice_writes_png(tmp_path, small_container):
    out = tmp_path / "slice.png"
    code = main(
        ["plot-slice", str(small_container), "--labels", "volumes/labels/mito", "-o", str(out)]
    )
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_plot_slice_with_partial_probability_panel(tmp_path, small_container):
    from incasem.io import create_array

    probabilities = create_array(
        small_container, "volumes/p", (20, 30, 30), (10, 5, 5), (200, 100, 50), dtype=np.uint8
    )
    probabilities[probabilities.roi] = 200
    out = tmp_path / "slice.png"
    args = ["plot-slice", str(small_container), "--probabilities", "volumes/p", "-o", str(out)]
    assert main([*args, "--labels", "volumes/labels/mito"]) == 0
    assert out.stat().st_size > 10_000
    # world z: the raw covers sections 10..49 (offset 100 nm, 10 nm), the probabilities 20..39
    assert main([*args, "--z", "12"]) == 2


def test_plot_slice_bad_section_is_one_line(small_container, tmp_path, capsys):
    assert main(["plot-slice", str(small_container), "--z", "99", "-o", str(tmp_path / "x.png")])
    assert capsys.readouterr().err.strip() == (
        f"incasem plot-slice: error: {small_container}/volumes/raw: section z=99 outside 10..49 "
        "(world voxels)"
    )
    args = ["plot-slice", str(small_container), "-o", str(tmp_path / "x.png"), "--roi"]
    assert main([*args, "0", "10", "0", "5", "20", "20"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"incasem plot-slice: error: {small_container}/volumes/raw: --roi [0:5, 10:30, 0:20] "
        "(voxels) is not inside the raw's [10:50, 10:60, 0:60]"
    )
    assert not (tmp_path / "x.png").exists()


def test_plot_slice_draws_world_sections_of_a_crop_and_partial_labels(small_container, tmp_path):
    """A label covering part of the section is outlined where it is; --z and --roi are world
    voxels, so the picture of a crop shows the same section as the whole cell's."""
    import matplotlib.image

    from incasem.io import create_array

    part = create_array(small_container, "volumes/part", (5, 20, 20), (10, 5, 5), (250, 100, 50))
    data = np.zeros((5, 20, 20), np.uint8)
    data[:, 5:15, 5:15] = 1
    part[part.roi] = data
    whole, crop = tmp_path / "whole.png", tmp_path / "crop.png"
    common = ["plot-slice", str(small_container), "--labels", "volumes/part", "--z", "27"]
    assert main([*common, "-o", str(whole)]) == 0
    assert main([*common, "--roi", "25", "20", "10", "5", "20", "20", "-o", str(crop)]) == 0
    assert main([*common, "--z", "20", "-o", str(tmp_path / "x.png")]) == 2  # no overlap
    for path in (whole, crop):
        image = matplotlib.image.imread(path)
        red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.4)
        assert red.sum() > 20, path  # the outline was drawn


@pytest.mark.parametrize("command", [["--help"], ["validate", "--help"], ["phantom", "--help"]])
def test_console_script_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "incasem.cli.main", *command], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: incasem" in result.stdout


def test_example_data_configs_parse(repo_root: Path):
    from incasem.io.data_config import load_data_config

    for path in (repo_root / "configs" / "data").glob("*.json"):
        assert len(load_data_config(path)) >= 1
