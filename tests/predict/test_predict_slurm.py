"""Prediction workers as SLURM jobs: ``--worker-command 'srun ... {command}'`` on a real
single-node cluster (``.ci/services/slurm.sh``) writes exactly what local workers write, every
worker is a job that ``sacct`` lists, and a worker job cancelled with ``scancel`` mid-way is
replaced by daisy with the output still identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from .conftest import read_dataset, write_cell, write_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _predict(cell: Path, checkpoint: Path, group: str, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "incasem.cli.main", "predict", "--checkpoint", str(checkpoint),
        "--input", str(cell), "--output_group", group, "--input_size", "64", "64", "64",
        "--num_workers", "2", "--device", "cpu", "--deterministic", "--no-progress",
        "--runs_dir", str(cell.parent / "runs"), "--json", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, cwd=cell.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    (entry,) = json.loads(stdout[stdout.index("{") :])["entries"]
    return entry


def _jobs(name: str, *states: str) -> list[str]:
    """Ids of the finished jobs called ``name`` (in ``states``), from ``sacct``."""
    listed = subprocess.run(
        ["sacct", "--completion", "--noheader", "--parsable2", "--format", "JobID,JobName,State"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    jobs = [line.split("|") for line in listed]
    return [job for job, job_name, state in jobs if job_name == name and state in states]


def _running(name: str) -> list[str]:
    queue = subprocess.run(
        ["squeue", "--noheader", "--name", name, "--states", "RUNNING", "--format", "%i"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return queue.stdout.split()


def _outputs(cell: Path, entry: dict) -> list[np.ndarray]:
    return [read_dataset(cell, dataset) for dataset in entry["datasets"]]


@pytest.mark.slow
def test_predict_through_srun_equals_local_workers_and_survives_scancel(tmp_path, slurm_cluster):
    cell = write_cell(tmp_path / "cell.zarr", shape=(40, 40, 60))
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    local = _finish(_predict(cell, checkpoint, "local"))
    assert local["blocks"] == 12 and local["failed"] == 0

    name = f"incasem-test-{uuid.uuid4().hex[:8]}"
    template = f"srun --ntasks=1 --job-name={name} {{command}}"
    through_slurm = _finish(_predict(cell, checkpoint, "slurm", "--worker-command", template))
    assert through_slurm["computed"] == 12 and through_slurm["failed"] == 0
    for ours, reference in zip(_outputs(cell, through_slurm), _outputs(cell, local), strict=True):
        np.testing.assert_array_equal(ours, reference)
    assert len(_jobs(name, "COMPLETED")) == 2  # one job per worker, as sacct records them

    # Cancel one worker's job while it works: daisy starts another, the output is the same.
    cancelled = f"{name}-scancel"
    process = _predict(
        cell, checkpoint, "cancelled", "--worker-command",
        f"srun --ntasks=1 --job-name={cancelled} {{command}}",
    )  # fmt: skip
    probabilities = cell / "cancelled/cell/prob_maps/class_0"
    deadline = time.monotonic() + 300
    while not (_running(cancelled) and probabilities.is_dir() and len(os.listdir(probabilities))):
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no worker job started"
        time.sleep(0.2)
    victim = _running(cancelled)[0]
    subprocess.run(["scancel", victim], check=True)
    entry = _finish(process)
    assert entry["failed"] == 0 and entry["computed"] == 12
    for ours, reference in zip(_outputs(cell, entry), _outputs(cell, local), strict=True):
        np.testing.assert_array_equal(ours, reference)
    assert victim in _jobs(cancelled, "CANCELLED")
    assert len(_jobs(cancelled, "COMPLETED")) >= 2  # the survivor and the replacement
