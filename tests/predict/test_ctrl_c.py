"""Ctrl-C during ``incasem predict``: one line that says how to go on, exit code 130, no
traceback (the terminal sends SIGINT to the whole process group: driver and workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .conftest import write_cell, write_checkpoint


def test_ctrl_c_during_predict_is_one_line_with_the_resume_command(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    command = [sys.executable, "-m", "incasem.cli.main", "predict", "--checkpoint",
               str(checkpoint), "--input", str(cell), "--device", "cpu", "--input_size",
               "84", "84", "84", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: pytest-xdist's workers and background jobs ignore SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in process.stderr:  # wait until the blocks are being computed
        seen.append(line)
        if " blocks of " in line:
            break
    os.killpg(process.pid, signal.SIGINT)
    seen += process.stderr.readlines()
    assert process.wait(timeout=120) == 130, "".join(seen)
    assert not any("Traceback" in line or "KeyboardInterrupt" in line for line in seen), seen
    assert seen[-1].strip() == (
        "incasem predict: interrupted; the blocks done are kept in "
        "volumes/predictions/model/predict_0001: run again with --resume 1 to compute the rest"
    )
