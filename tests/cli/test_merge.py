"""``incasem merge``: labels, per-class thresholds and the contested report."""

from __future__ import annotations

import json

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array, open_array


def test_merge_command(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    mito = np.zeros((8, 8, 8), np.uint8)
    mito[:, :4] = 200
    er = np.zeros((8, 8, 8), np.float32)
    er[:, 2:] = 0.5
    for name, data in (("mito", mito), ("er", er)):
        array = create_array(container, name, data.shape, (10, 5, 5), dtype=data.dtype)
        array[array.roi] = data
    report = tmp_path / "merge.json"
    argv = ["merge", str(container), "--input", "mito=mito", "--input", "er=er",
            "--threshold", "er=0.4", "--out-dataset", "m", "--json", str(report),
            "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "mito/er: 128" in capsys.readouterr().out  # y 2..3 claimed by both
    labels = open_array(container, "m")[:]
    assert (labels[:, :4] == 1).all() and (labels[:, 4:] == 2).all()
    assert json.loads(report.read_text())["contested_pairs"] == {"mito/er": 128}
    assert main([*argv[:-3], "--threshold", "golgi=0.5", "--workers", "0"]) == 2
    assert "no --input named 'golgi'" in capsys.readouterr().err
