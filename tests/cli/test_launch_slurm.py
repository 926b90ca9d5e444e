"""Data preparation with workers as SLURM jobs: ``incasem equalize --worker-command 'srun ...
{command}'`` on a real single-node cluster (``.ci/services/slurm.sh``) writes bit for bit what
local workers write, and ``sacct`` lists the worker jobs."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.io import create_array, open_array


@pytest.mark.slow
def test_equalize_through_srun_equals_local_workers(tmp_path: Path, capsys, slurm_cluster):
    container = tmp_path / "cell.zarr"
    raw = create_array(container, "raw", (48, 64, 64), (10, 5, 5), chunks=(16, 32, 32))
    raw[raw.roi] = np.random.default_rng(0).integers(0, 255, (48, 64, 64), dtype=np.uint8)
    name = f"incasem-test-{uuid.uuid4().hex[:8]}"
    template = f"srun --ntasks=1 --job-name={name} {{command}}"
    for out, launch in (("local", []), ("slurm", ["--worker-command", template])):
        argv = ["equalize", str(container), "-d", "raw", "--kernel-size", "16", "--workers", "2",
                "--out-dataset", out, "--no-progress", *launch]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
    local, slurm = (open_array(container, name) for name in ("local", "slurm"))
    np.testing.assert_array_equal(slurm[slurm.roi], local[local.roi])
    jobs = subprocess.run(
        ["sacct", "--completion", "--noheader", "--parsable2", "--format", "JobName,State"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert jobs.count(f"{name}|COMPLETED") == 2  # one job per worker
