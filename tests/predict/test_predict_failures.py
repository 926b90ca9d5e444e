"""Failed blocks: named with their ROI and error, exit code != 0, and a resume redoes only them.

A corrupt chunk of the mask makes exactly the one block whose write ROI covers it fail. After
the chunk is repaired, ``resume`` computes that block and skips the seven others; a resume with
another checkpoint recomputes everything (with ``overwrite``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from incasem.predict import predict

from .conftest import read_dataset, write_cell, write_checkpoint, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_failed_block_is_reported_and_resumed(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    config = write_config(
        tmp_path / "config.json",
        {"roi": {"offset": [10, 10, 0], "shape": [48, 56, 64], "mask": "volumes/mask"}},
    )
    chunk = cell / "volumes/mask/0.0.0"
    original = chunk.read_bytes()
    chunk.write_bytes(b"not a blosc chunk" * 10)

    command = [
        sys.executable, str(REPO / "scripts" / "predict.py"),
        "--checkpoint", str(checkpoint), "--data", str(config), "--data_root", str(tmp_path),
        "--input_size", "84", "84", "84",  # 40-voxel blocks: 2 x 2 x 2
        "--num_workers", "1", "--device", "cpu", "--no-progress",
        "--runs_dir", str(tmp_path / "runs"),
        "with", "prediction.pipeline=baseline",  # the original's keys are accepted (and unused)
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    failed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert failed.returncode != 0
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("predict: error: 1 of 8 blocks failed (first: block")
    assert "block [10:50, 10:50, 0:40]" in error and "--resume 1" in error
    # the cause the worker recorded, not only which block failed, in the words of every
    # blockwise job (`incasem.blockwise.failures.block_subject`)
    assert "block [10:50, 10:50, 0:40] (voxels): " in error
    group = cell / "volumes/predictions/model/predict_0001/roi"
    log = "".join(p.read_text() for p in (group / ".daisy/logs").rglob("worker_*.err"))
    assert "block [10:50, 10:50, 0:40] (voxels) failed" in log
    assert zarr.open_group(str(cell), "r")[str(group.relative_to(cell))].attrs["status"] == (
        "incomplete"
    )

    chunk.write_bytes(original)
    common = {
        "checkpoint": str(checkpoint),
        "data": str(config),
        "data_root": str(tmp_path),
        "input_size_voxels": [84, 84, 84],
        "num_workers": 1,
        "device": "cpu",
        "progress": False,
        "resume": 1,
    }
    resumed = predict(**common)
    (entry,) = resumed.entries
    assert (entry.computed, entry.skipped, entry.failed) == (1, 7, 0)
    before = read_dataset(cell, entry.datasets[1])

    write_checkpoint(checkpoint, "unet2", seed=5)  # same file, other weights
    redone = predict(**common, overwrite=True)
    (entry,) = redone.entries
    assert (entry.computed, entry.skipped) == (8, 0)  # nothing reused from the old model
    assert not np.array_equal(read_dataset(cell, entry.datasets[1]), before)
