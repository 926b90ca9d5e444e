"""End to end: a short training and a prediction of its best checkpoint, found with no database,
then ``runs list`` and ``runs plot`` on them, the PNGs training and prediction write, and the
exported best checkpoint predicting exactly what the checkpoint predicted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from incasem.cli.main import main
from incasem.io import open_array
from incasem.predict import predict
from incasem.torch.export import export_model

pytestmark = pytest.mark.slow


def _cubes(folder: Path, write_cubes) -> Path:
    """A 60³ voxel volume at 5 nm with dark labelled cubes, and a data config over all of it."""
    shape = (60, 60, 60)
    entry = write_cubes(shape, count=6, edge=12, corners=(5, 40))
    config = folder / "cubes.json"
    config.write_text(json.dumps({"cubes": {**entry, "offset": [0, 0, 0], "shape": list(shape)}}))
    return config


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=600
    )


def test_train_predict_then_list_and_plot(tmp_path, repo_root, monkeypatch, capsys, write_cubes):
    config = _cubes(tmp_path, write_cubes)
    train = _run(
        tmp_path, str(repo_root / "scripts" / "train.py"), "--name", "cubes", "with",
        f"training.data={config}", f"validation.data={config}", "directories.runs=runs",
        "directories.data=.", "model.num_fmaps=2", "model.downsample_factors=[[2,2,2],[2,2,2]]",
        "training.input_size_voxels=[52,52,52]", "training.output_size_voxels=[10,10,10]",
        "validation.input_size_voxels=[104,104,104]", "training.augmentation.elastic.enabled=false",
        "training.iterations=3", "validation.validate_every=3", "training.save_every=2",
        "training.snapshot.every=1000", "sacred.log_every=1", "torch.device=cpu",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    run = tmp_path / "runs" / "1"
    best = json.loads((run / "best.json").read_text())
    curves = iio.imread(run / "training_curves.png")  # drawn by training at its validations
    assert curves.shape[:2] == (400, 1100) and curves.std() > 10

    predicted = _run(
        tmp_path, "-m", "incasem.cli.main", "predict", "--run_id", "1", "--iteration", "best",
        "--data", str(config), "--data_root", ".", "--log_metrics", "--input_size", "104", "104",
        "104", "--device", "cpu", "--no-progress", "--json",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    result = json.loads(predicted.stdout[predicted.stdout.index("{") :])
    assert result["checkpoint"].endswith(f"model_checkpoint_{best['iteration']}.pt")
    report = iio.imread(tmp_path / "runs" / "predictions" / "1" / "cubes_report.png")
    assert report.shape[:2] == (960, 1500) and report.std() > 10

    # The exported model predicts exactly what its checkpoint predicted.
    exported = export_model(tmp_path / result["checkpoint"], tmp_path / "models" / "cubes.pt")
    again = predict(
        checkpoint=str(exported), data=str(config), data_root=str(tmp_path),
        input_size_voxels=[104, 104, 104], output_group="exported", device="cpu", progress=False,
    )  # fmt: skip
    datasets, again_datasets = result["entries"][0]["datasets"], again.entries[0].datasets
    assert datasets and len(datasets) == len(again_datasets)
    for a, b in zip(datasets, again_datasets, strict=True):
        left, right = (
            open_array(tmp_path / "cubes.zarr", a),
            open_array(again.entries[0].container, b),
        )
        assert left.roi == right.roi
        assert np.array_equal(left[left.roi], right[right.roi])

    monkeypatch.chdir(tmp_path)
    assert main(["runs", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"1", "p1"}
    assert (rows["1"]["kind"], rows["1"]["name"], rows["1"]["status"]) == (
        "training", "cubes", "COMPLETED"
    )  # fmt: skip
    assert rows["1"]["iterations"] == 3 and rows["1"]["best_iteration"] == best["iteration"]
    assert rows["1"]["best_f1"] == pytest.approx(best["value"])
    assert rows["1"]["data"] == [str(config), str(config)]
    assert (rows["p1"]["kind"], rows["p1"]["status"]) == ("prediction", "COMPLETED")
    assert rows["p1"]["iterations"] == best["iteration"]
    assert rows["p1"]["best_f1"] == pytest.approx(result["entries"][0]["scores"]["f1"])
    assert main(["runs", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["id", "1", "p1"]

    assert main(["runs", "plot", "1", "-o", "curves.png"]) == 0
    image = iio.imread(tmp_path / "curves.png")
    assert image.shape[:2] == (400, 1100) and image.std() > 10
