"""Killed runs resume to the same output; done markers belong to one provenance.

End to end through ``scripts/predict.py`` (Sacred, real daisy workers): the scheduler is killed
with SIGKILL mid-run, no worker survives it, and ``--resume`` skips exactly the blocks marked
done, survives a worker killed with SIGKILL, launches its workers through a ``bash -c`` template,
and ends with output identical to one whole-volume pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.metrics import quantise
from incasem.predict import predict

from .conftest import done_markers, read_dataset, single_pass, write_cell, write_checkpoint

REPO = Path(__file__).resolve().parents[2]
SHAPE = (56, 64, 72)
OFFSET_VOXELS = (10, 10, 0)


def _children(pid: int) -> list[int]:
    """Direct children of a process (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _descendants(pid: int) -> list[int]:
    result = []
    for child in _children(pid):
        result += [child, *_descendants(child)]
    return result


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _chunks(dataset: Path) -> int:
    return sum(1 for p in dataset.iterdir() if not p.name.startswith("."))


def _wait_for(process: subprocess.Popen, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"exited ({process.returncode}) before {what}: {process.stderr.read()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_scheduler_and_worker_then_resume(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr", shape=SHAPE)
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    command = [
        sys.executable, str(REPO / "scripts" / "predict.py"),
        "--checkpoint", str(checkpoint), "--input", str(cell),
        "--input_size", "64", "64", "64",  # 20-voxel blocks: 3 x 4 x 4 = 48 blocks
        "--num_workers", "2", "--device", "cpu", "--deterministic", "--no-progress",
        "--runs_dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    group = cell / "volumes/predictions/model/predict_0001/cell"
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(
        first,
        lambda: (
            (group / "prob_maps/class_0").is_dir() and _chunks(group / "prob_maps/class_0") >= 6
        ),
        240,
        "the first blocks",
    )
    workers = _descendants(first.pid)
    assert first.poll() is None and workers, "the run finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in workers):  # no orphans: workers exit with their scheduler
        assert time.monotonic() < deadline, "workers survived their scheduler"
        time.sleep(0.2)

    (tracking,) = (group / ".daisy").glob("blocks-*")
    done = done_markers(tracking)
    assert 0 < done < 48

    template = "bash -c 'exec \"$@\"' bash {command}"
    resumed = subprocess.Popen(
        [*command, "--resume", "1", "--worker-command", template, "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def inner_workers() -> list[int]:
        return [
            p
            for p in _descendants(resumed.pid)
            if _cmdline(p).startswith(f"{sys.executable} -m incasem.predict.worker")
        ]

    before = _chunks(group / "prob_maps/class_0")
    _wait_for(
        resumed,
        lambda: len(inner_workers()) >= 1 and _chunks(group / "prob_maps/class_0") >= before + 2,
        240,
        "the resumed workers",
    )
    os.kill(inner_workers()[0], signal.SIGKILL)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-3000:]
    result = json.loads(stdout[stdout.index("{") :])
    (entry,) = result["entries"]
    assert entry["skipped"] == done  # exactly the blocks marked done, nothing else
    assert entry["computed"] + entry["skipped"] == entry["blocks"] == 48
    assert entry["failed"] == 0
    # the killed worker was replaced and every block done: no error to report
    assert entry["first_error"] is None

    reference = quantise(single_pass(checkpoint, cell, OFFSET_VOXELS, SHAPE, deterministic=True))
    ours = np.stack([read_dataset(cell, d) for d in entry["datasets"][:-1]])
    np.testing.assert_array_equal(ours, reference)

    logs = "".join(p.read_text() for p in (group / ".daisy" / "logs").rglob("worker_*.out"))
    assert "launching worker: bash -c" in logs
    assert not (tmp_path / "daisy_logs").exists()  # worker logs stay beside the output
    runs = sorted((tmp_path / "runs" / "predictions").glob("[0-9]*"))
    assert [json.loads((r / "run.json").read_text())["status"] for r in runs] == [
        "RUNNING",  # the killed scheduler never reported back
        "COMPLETED",
    ]
    config = json.loads((runs[1] / "config.json").read_text())
    assert config["prediction"]["resume"] == 1 and config["prediction"]["num_workers"] == 2

    # the same prediction with another threshold may not reuse a single block
    with pytest.raises(IncasemError, match="different inputs.*--overwrite"):
        predict(
            checkpoint=str(checkpoint),
            input=str(cell),
            input_size_voxels=[64, 64, 64],
            resume=1,
            threshold=0.6,
            device="cpu",
            deterministic=True,
            progress=False,
        )
