"""Training as a SLURM batch job on a real single-node cluster (``.ci/services/slurm.sh``):
``sbatch --signal=B:TERM@60`` asks for SIGTERM a minute before the job's time limit, as a user
asks for time to save; training saves a checkpoint, marks the run INTERRUPTED, and a second
job with ``--continue_run`` finishes it under the same run id."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.slow


def _job_state(job: str) -> str | None:
    """The job's state while it is queued or running; None once it has ended."""
    queue = subprocess.run(
        ["squeue", "--noheader", "--jobs", job, "--format", "%T"], capture_output=True, text=True
    )
    return queue.stdout.strip() or None


def _elapsed_seconds(job: str) -> int:
    """How long the job has run, from ``squeue`` (``[D-][H:]M:S``)."""
    text = subprocess.run(
        ["squeue", "--noheader", "--jobs", job, "--format", "%M"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    days, _, clock = text.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + int(days or 0) * 86400


def test_sbatch_training_stopped_by_its_signal_resumes(
    tmp_path, repo_root, write_cubes, slurm_cluster
):
    entry = write_cubes((140, 140, 140), count=12, edge=20, corners=(10, 110))
    train = tmp_path / "train.json"
    train.write_text(
        json.dumps({"train": {**entry, "offset": [0, 0, 0], "shape": [100, 140, 140]}})
    )
    command = [
        sys.executable, str(repo_root / "scripts" / "train.py"), "with", f"training.data={train}",
        "directories.runs=runs", "directories.data=.", "model.num_fmaps=2",
        "training.input_size_voxels=[108,108,108]", "training.output_size_voxels=[14,14,14]",
        "training.iterations=100000", "training.save_every=100000", "sacred.log_every=1",
    ]  # fmt: skip
    name = f"incasem-train-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    job = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", "--time=10", "--signal=B:TERM@60",
         f"--chdir={tmp_path}", f"--output={tmp_path / 'job.out'}",
         "--wrap", f"exec {shlex.join(command)}"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    run = tmp_path / "runs" / "1"
    deadline = time.monotonic() + 300
    while not (run / "metrics.json").is_file() or "loss" not in (run / "metrics.json").read_text():
        assert _job_state(job) is not None, (tmp_path / "job.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.5)
    # Training runs: bring its time limit to one or two minutes from now, so that SLURM sends
    # the signal it asked for (a minute before the limit) within the next minute.
    minutes = _elapsed_seconds(job) // 60 + 2
    subprocess.run(["scontrol", "update", f"JobId={job}", f"TimeLimit={minutes}"], check=True)
    while _job_state(job) is not None:
        assert time.monotonic() < deadline + 120, "the job did not end at its signal"
        time.sleep(0.5)

    message = (tmp_path / "job.out").read_text().strip().splitlines()[-1]
    assert message.startswith("train.py: stopped by SIGTERM at iteration ")
    assert message.endswith("resume with --continue_run 1")
    stopped = int(message.split("at iteration ")[1].split()[0])
    assert json.loads((run / "run.json").read_text())["status"] == "INTERRUPTED"
    assert (run / "checkpoints" / f"model_checkpoint_{stopped}.pt").is_file()

    resume = [*command[:2], "--continue_run", "1", "with", f"training.iterations={stopped + 1}"]
    subprocess.run(
        ["sbatch", "--wait", f"--job-name={name}", f"--chdir={tmp_path}",
         f"--output={tmp_path / 'resumed.out'}", "--wrap", f"exec {shlex.join(resume)}"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "COMPLETED", (tmp_path / "resumed.out").read_text()[-3000:]
    assert [s["status"] for s in record["sessions"]] == ["INTERRUPTED"]
    assert record["result"]["iterations"][-1] == stopped + 1
    assert not (tmp_path / "runs" / "2").exists()  # the same run id
    jobs = subprocess.run(
        ["sacct", "--completion", "--noheader", "--parsable2", "--format", "JobName,State"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert f"{name}|COMPLETED" in jobs and len([j for j in jobs if j.startswith(name)]) == 2
