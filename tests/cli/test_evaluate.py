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
