"""``incasem instances``: objects across blocks, size filter in nm³."""

from __future__ import annotations

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array, open_array


def test_instances_command(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    labels = np.zeros((80, 80, 80), np.uint8)
    labels[50:75, 50:75, 50:75] = 3  # crosses the 64-voxel block faces
    labels[5:8, 5:8, 5:8] = 3  # 27 voxels = 27000 nm³ at 10 nm
    labels[20:30, 5:8, 5:8] = 1
    array = create_array(container, "l", labels.shape, (10, 10, 10))
    array[array.roi] = labels
    argv = ["instances", str(container), "-d", "l", "--out-dataset", "i", "--class-id", "3",
            "--min-size", "30000", "--size-unit", "nm3", "--block-size", "64", "--workers", "0",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "1 objects (1 removed by the size filter)" in capsys.readouterr().out
    out = open_array(container, "i")[:]
    assert np.unique(out).tolist() == [0, 1] and (out == 1).sum() == 25**3
