"""``incasem segment``: writes the thresholded dataset; bad input is one line."""

from __future__ import annotations

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array, open_array


def test_segment_command(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    p = create_array(container, "p", (8, 16, 16), (10, 5, 5), dtype=np.float32)
    p[p.roi] = np.linspace(0, 1, 8 * 16 * 16, dtype=np.float32).reshape(8, 16, 16)
    argv = ["segment", str(container), "-d", "p", "--out-dataset", "s", "--threshold", "0.75"]
    assert main([*argv, "--workers", "0", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(open_array(container, "s")[:], p[p.roi] >= 0.75)
    assert main([*argv, "--workers", "0", "--no-progress"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (
        main(["segment", str(container), "-d", "p", "--out-dataset", "t", "--threshold", "2"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("incasem segment: error: --threshold 2.0 must be a probability")
    assert len(err.strip().splitlines()) == 1
