"""``incasem evaluate``: text and JSON reports with the sweep's best threshold."""

from __future__ import annotations

import json

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array


def test_evaluate_command(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    truth = np.zeros((8, 16, 16), np.uint8)
    truth[2:6, 4:12, 4:12] = 1
    probability = np.where(truth == 1, 180, 90).astype(np.uint8)  # p = 0.71 inside, 0.35 outside
    for name, data in (("t", truth), ("p", probability)):
        array = create_array(container, name, data.shape, (10, 5, 5))
        array[array.roi] = data
    report_path = tmp_path / "report.json"
    argv = ["evaluate", str(container), "--prediction", "p", "--truth", "t", "--threshold", "0.3",
            "--sweep", "0.1", "0.9", "0.2", "--objects", "--workers", "0",
            "--no-progress"]  # fmt: skip
    assert main([*argv, "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "best threshold 0.5: F1 1.0000" in out
    report = json.loads(report_path.read_text())
    assert report["classes"]["foreground"]["precision"] == truth.sum() / truth.size
    assert report["best"]["threshold"] == 0.5 and report["best"]["f1"] == 1.0
    assert report["objects"]["foreground"]["matched"] == 0  # everything is one object at 0.3
    assert main([*argv, "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["sweep"] == report["sweep"]
    assert main([*argv, "--json", str(report_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_evaluate_scores_only_the_roi(tmp_path, capsys):
    """``--roi Z Y X DZ DY DX`` (voxels): the user scores a part without splitting the data
    config; a box outside the prediction is one line."""
    container = tmp_path / "c.zarr"
    truth = np.zeros((8, 16, 16), np.uint8)
    truth[:, :, :8] = 1
    prediction = truth.copy()
    prediction[:, :, 8:12] = 1  # wrong only in x 8..11
    for name, data in (("t", truth), ("p", prediction)):
        array = create_array(container, name, data.shape, (10, 5, 5), offset=(20, 0, 0))
        array[array.roi] = data
    argv = ["evaluate", str(container), "--prediction", "p", "--truth", "t", "--workers", "0",
            "--no-progress", "--json", "-"]  # fmt: skip
    assert main([*argv, "--roi", "2", "0", "0", "8", "16", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["roi_nm"] == {"offset": [20, 0, 0], "shape": [80, 80, 40]}
    assert report["classes"]["class_1"]["precision"] == 1.0
    assert report["classes"]["class_1"]["tp"] == 8 * 16 * 8
    assert main([*argv, "--roi", "2", "0", "4", "8", "16", "8"]) == 0
    scores = json.loads(capsys.readouterr().out)["classes"]["class_1"]
    assert (scores["tp"], scores["fp"]) == (8 * 16 * 4, 8 * 16 * 4)

    assert main([*argv, "--roi", "0", "0", "0", "8", "16", "8"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"incasem evaluate: error: --roi (inside the prediction {container}/p) [0:8, 0:16, 0:8] "
        "(voxels) ends outside [2:10, 0:16, 0:16] (voxels)"
    )
