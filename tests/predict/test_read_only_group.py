"""A read-only group inside a writable output container: one line, not ``KeyError: .zgroup``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import file_tree, write_cell, write_checkpoint


def test_predict_into_a_read_only_group_is_one_line(tmp_path):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE (a plain user sees it anyway)")
    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    (cell / "volumes").chmod(0o555)
    before = file_tree(cell)
    drop = "-dac_override,-dac_read_search"
    try:
        done = subprocess.run(
            ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", sys.executable,
             "-m", "incasem.cli.main", "predict", "--checkpoint", str(checkpoint), "--input",
             str(cell), "--device", "cpu", "--roi", "10", "10", "0", "8", "8", "8"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    finally:
        (cell / "volumes").chmod(0o755)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "error" in x]
    assert line.startswith(f"incasem predict: error: {cell}: cannot write there (Permission denied")
    assert file_tree(cell) == before
