"""End to end: scripts/train.py trains, checkpoints, snapshots, logs, resumes and fine-tunes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from incasem.io import open_array
from incasem.torch.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def _make_data(folder: Path, write_cubes) -> tuple[Path, Path]:
    """A 140x140x140 voxel volume with dark cubes labelled as class 1 and two data configs."""
    entry = write_cubes((140, 140, 140), count=12, edge=20, corners=(10, 110))
    train = folder / "train.json"
    train.write_text(
        json.dumps({"train": {**entry, "offset": [0, 0, 0], "shape": [100, 140, 140]}})
    )
    validation = folder / "validation.json"
    validation.write_text(
        json.dumps({"val": {**entry, "offset": [100, 0, 0], "shape": [40, 140, 140]}})
    )
    return train, validation


def _train(repo_root: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(repo_root / "scripts" / "train.py"), *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_train_continue_and_fine_tune(tmp_path, repo_root, write_cubes):
    train, validation = _make_data(tmp_path, write_cubes)
    common = [
        f"training.data={train}",
        f"validation.data={validation}",
        "directories.runs=runs",
        "directories.data=.",
        "model.num_fmaps=2",
        "training.input_size_voxels=[108,108,108]",
        "training.output_size_voxels=[14,14,14]",
        "validation.input_size_voxels=[140,236,236]",
        "training.save_every=2",
        "validation.validate_every=2",
        "training.snapshot.every=2",
        "sacred.log_every=1",
    ]
    first = _train(repo_root, tmp_path, "--name", "cubes", "with", *common, "training.iterations=4")
    assert first.returncode == 0, first.stderr[-3000:]
    # The loss goes to the progress bar, not to one log line per iteration; the run ends by
    # saying whether batch preparation kept up.
    assert "Train process:" not in first.stderr
    assert "waited for prepared batches" in first.stderr
    run = tmp_path / "runs" / "1"
    assert json.loads((run / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((run / "run.json").read_text())["experiment"]["name"] == "cubes"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["model_checkpoint_2.pt", "model_checkpoint_4.pt"]
    card = load_checkpoint(run / "checkpoints" / "model_checkpoint_4.pt").card
    assert card.iteration == 4 and card.output_size_voxels == [14, 14, 14]
    assert card.voxel_size == [5, 5, 5] and "f1" in card.metrics
    best = json.loads((run / "best.json").read_text())
    # The best checkpoint is chosen by F1 at its own best threshold, which best.json and that
    # checkpoint's card both carry.
    assert best["iteration"] in (2, 4) and best["metric"] == "best_f1"
    best_card = load_checkpoint(run / "checkpoints" / f"model_checkpoint_{best['iteration']}.pt")
    assert best["value"] == pytest.approx(best_card.card.metrics["best_f1"])
    assert best["threshold"] == best_card.card.threshold == best_card.card.metrics["best_threshold"]
    assert best_card.card.metrics["best_f1"] >= best_card.card.metrics["f1"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    snapshot = next((run / "snapshots").glob("*.zarr"))
    raw = open_array(snapshot, "volumes/raw")[...]
    labels = open_array(snapshot, "volumes/labels")[...]
    assert raw.shape == (108, 108, 108) and labels.shape == (14, 14, 14)
    assert raw.dtype == np.float32  # float16 in transit, float32 on disk for viewers
    assert raw.std() > 0.05 and -1 <= raw.min() < raw.max() <= 1  # augmented, not flat
    assert open_array(snapshot, "volumes/prediction").shape == (2, 14, 14, 14)
    metrics = _metrics(run)
    assert metrics["loss"]["steps"] == [1, 2, 3, 4]
    assert metrics["validation/f1"]["steps"] == [0, 2, 4]
    assert all(np.isfinite(metrics["loss"]["values"]))

    resumed = _train(repo_root, tmp_path, "--continue_run", "1", "with", "training.iterations=6")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # one run, one id: the continuation is run 1 again, recorded in its folder
    assert 'Started run with ID "1"' in resumed.stderr
    assert not (tmp_path / "runs" / "2").exists()
    assert (run / "checkpoints" / "model_checkpoint_6.pt").is_file()
    assert _metrics(run)["loss"]["steps"] == [1, 2, 3, 4, 5, 6]
    assert _metrics(run)["validation/f1"]["steps"] == [0, 2, 4, 6]
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["continue_id"] == "1"
    record = json.loads((run / "run.json").read_text())
    assert record["experiment"]["name"] == "cubes"  # the continuation keeps the run's name
    assert record["status"] == "COMPLETED" and record["result"]["iterations"] == [4, 6]
    assert [s["status"] for s in record["sessions"]] == ["COMPLETED"]
    assert record["sessions"][0]["result"]["iterations"] == [0, 4]
    # runs show reports the checkpoint best.json names, which prediction uses
    shown = subprocess.run(
        [sys.executable, "-m", "incasem.cli.main", "runs", "show", "1", "--runs-dir", "runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    best = json.loads((run / "best.json").read_text())  # the continuation validated again
    assert f"best F1:    {best['value']:.4f} at iteration {best['iteration']}" in shown.stdout
    assert "sessions:   2 (continued with --continue_run)" in shown.stdout

    # fine-tuning needs nothing but the checkpoint: network and sizes come from its card
    data_only = [f"training.data={train}", "directories.runs=runs", "directories.data=."]
    mismatch = _train(
        repo_root, tmp_path, "--start_from", "1", "with", *data_only, "model.num_fmaps=4"
    )
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert mismatch.stderr.strip().splitlines()[-1] == (
        f"train.py: error: --start_from runs/1/{best['checkpoint']}: "
        "the configured network differs from the checkpoint's: model.num_fmaps 4 (the "
        "checkpoint's: 2) (leave these keys unset to take them from the checkpoint)"
    )
    assert not (tmp_path / "runs" / "2").exists()  # no FAILED run left behind
    tuned = _train(
        repo_root, tmp_path, "--start_from", "1", "best", "with", *data_only,
        "training.iterations=2", "training.save_every=2",
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    run2 = tmp_path / "runs" / "2"
    assert load_checkpoint(run2 / "checkpoints" / "model_checkpoint_2.pt").card.iteration == 2
    tuned_config = json.loads((run2 / "config.json").read_text())
    assert tuned_config["training"]["start_from"].endswith(
        f"model_checkpoint_{best['iteration']}.pt"
    )
    assert tuned_config["model"]["num_fmaps"] == 2
    assert tuned_config["training"]["input_size_voxels"] == [108, 108, 108]
    assert tuned_config["training"]["output_size_voxels"] == [14, 14, 14]


def test_bad_config_fails_before_training_in_one_line(tmp_path, repo_root, write_cubes):
    train, _ = _make_data(tmp_path, write_cubes)
    result = _train(
        repo_root,
        tmp_path,
        "with",
        f"training.data={train}",
        "training.input_size_voxels=[110,110,110]",
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "train.py: error: training.input_size_voxels [110, 110, 110]: input size 110 along z"
        )
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*/checkpoints"))


def test_sigterm_saves_marks_interrupted_and_resumes(tmp_path, repo_root, write_cubes):
    # What SLURM and LSF do at a job's time limit.
    train, _ = _make_data(tmp_path, write_cubes)
    command = [
        sys.executable, str(repo_root / "scripts" / "train.py"), "with", f"training.data={train}",
        "directories.runs=runs", "directories.data=.", "model.num_fmaps=2",
        "training.input_size_voxels=[108,108,108]", "training.output_size_voxels=[14,14,14]",
        "training.iterations=100000", "training.save_every=100000", "sacred.log_every=1",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "1"
    deadline = time.monotonic() + 300
    while not (run / "metrics.json").is_file() or "loss" not in _metrics(run):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("train.py: stopped by SIGTERM at iteration ")
    assert message.endswith("resume with --continue_run 1") and "Traceback" not in stderr
    stopped = int(message.split("at iteration ")[1].split()[0])
    assert json.loads((run / "run.json").read_text())["status"] == "INTERRUPTED"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == [f"model_checkpoint_{stopped}.pt"]

    resumed = _train(
        repo_root, tmp_path, "--continue_run", "1", "with", f"training.iterations={stopped + 1}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(run)["loss"]["steps"][-2:] == [stopped, stopped + 1]
    assert not (tmp_path / "runs" / "2").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "COMPLETED"
    assert [s["status"] for s in record["sessions"]] == ["INTERRUPTED"]
    assert (run / "checkpoints" / f"model_checkpoint_{stopped + 1}.pt").is_file()
