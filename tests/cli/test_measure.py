"""``incasem measure``: CSV table with filters; Parquet when pyarrow is installed."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array


def test_measure_command(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    labels = np.zeros((20, 20, 20), np.uint64)
    labels[2:12, 2:12, 2:12] = 5
    labels[15:17, 15:17, 15:17] = 9
    array = create_array(container, "i", labels.shape, (10, 10, 10), dtype=np.uint64)
    array[array.roi] = labels
    table = tmp_path / "objects.csv"
    argv = ["measure", str(container), "-d", "i", "-o", str(table), "--filter", "voxels>=100",
            "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "1 objects ->" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert [(r["id"], r["voxels"], float(r["volume_nm3"])) for r in rows] == [("5", "1000", 1e6)]
    assert float(rows[0]["centroid_z_nm"]) == 70.0
    parquet = table.with_suffix(".parquet")
    has_pyarrow = importlib.util.find_spec("pyarrow") is not None
    assert parquet.exists() == has_pyarrow
    assert main([*argv[:-5], "--filter", "volume>1", "--workers", "0", "--overwrite"]) == 2
    assert "no column 'volume'" in capsys.readouterr().err
