"""The run store read from hand-written Sacred folders: the table, one run, the curves PNG."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import imageio.v3 as iio
import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.tracking import runs as runs_module
from incasem.tracking.run_folder import run_name
from incasem.tracking.runs import (
    find_run,
    format_run,
    format_table,
    list_runs,
    read_run,
    resumed_curves,
    run_location,
    training_history,
)
from incasem.viz.curves import training_curves_figure


def _sacred_run(folder: Path, config: dict, info: dict, metrics: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _metric(steps, values) -> dict:
    return {"steps": steps, "values": values, "timestamps": ["2026-01-01T00:00:00"] * len(steps)}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Training run 1 (completed), training run 2 (killed: RUNNING, old heartbeat) and
    prediction 1 (scored on two entries with model run 1 iteration 20)."""
    root = tmp_path / "runs"
    _sacred_run(
        root / "1",
        {"training": {"data": "configs/train.json"}, "validation": {"data": "configs/val.json"}},
        {
            "experiment": {"name": "mito"},
            "status": "COMPLETED",
            "start_time": "2026-01-01T10:00:00.123456",
            "stop_time": "2026-01-01T11:00:00.000000",
            "heartbeat": "2026-01-01T11:00:00.000000",
            "result": {"iterations": [0, 30], "best_iteration": 20},
        },
        {
            "loss": _metric([10, 20, 30], [0.7, 0.5, 0.4]),
            # Iteration 0 (untrained) scores highest but has no checkpoint: not the best.
            "validation/f1": _metric([0, 10, 20, 30], [0.9, 0.3, 0.6, 0.5]),
            "validation/iou": _metric([0, 10, 20, 30], [0.8, 0.2, 0.45, 0.35]),
        },
    )
    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    _sacred_run(
        root / "2",
        {"training": {"data": "a.json,b.json"}, "validation": {"data": None}},
        {
            "experiment": {"name": "er"},
            "status": "RUNNING",
            "start_time": "2026-01-02T10:00:00",
            "heartbeat": stale.replace(tzinfo=None).isoformat(),
        },
        {"loss": _metric([5, 10], [0.9, 0.8])},
    )
    _sacred_run(
        root / "predictions" / "1",
        {"prediction": {"data": "configs/test.json", "run_id_training": 1, "iteration": "best"}},
        {
            "experiment": {"name": "incasem_prediction"},
            "status": "COMPLETED",
            "start_time": "2026-01-03T10:00:00",
            "result": {"checkpoint": "runs/1/checkpoints/model_checkpoint_20.pt"},
        },
        {
            "cell_a/f1": _metric([0], [0.5]),
            "cell_a/mito/f1": _metric([0], [0.5]),
            "cell_b/f1": _metric([0], [0.7]),
            "cell_b/iou": _metric([0], [0.6]),
        },
    )
    (root / "3").mkdir()  # a run starting right now: no run.json yet
    return root


def test_list_runs_reads_both_kinds(runs):
    records = list_runs(runs)
    assert [(r.id, r.kind) for r in records] == [
        ("1", "training"),
        ("2", "training"),
        ("p1", "prediction"),
    ]
    first, killed, prediction = records
    assert (first.name, first.status, first.start) == ("mito", "COMPLETED", "2026-01-01 10:00:00")
    assert first.iterations == 30
    assert (first.best_f1, first.best_iteration) == (0.6, 20)
    assert first.data == ["configs/train.json", "configs/val.json"]
    assert killed.status == "STALE" and killed.iterations == 10 and killed.best_f1 is None
    assert killed.data == ["a.json", "b.json"]
    assert prediction.iterations == 20 and prediction.best_iteration == 20
    assert prediction.best_f1 == pytest.approx(0.6)  # mean of the entries' class-1 F1
    assert prediction.data == ["configs/test.json"]


def test_table_has_one_row_per_run(runs):
    lines = format_table(list_runs(runs)).splitlines()
    assert lines[0].split()[:4] == ["id", "name", "kind", "status"]
    assert len(lines) == 4
    assert lines[1].split() == [
        "1", "mito", "training", "COMPLETED", "2026-01-01", "10:00:00", "30", "0.6000", "@", "20",
        "train.json,", "val.json",
    ]  # fmt: skip
    assert "STALE" in lines[2] and lines[3].startswith("p1 ")


def test_run_ids_and_errors(runs):
    assert run_location(runs, "p1") == (runs / "predictions" / "1", "prediction")
    assert run_location(runs, "predictions/1") == (runs / "predictions" / "1", "prediction")
    assert run_location(runs, "2") == (runs / "2", "training")
    with pytest.raises(IncasemError, match=r"runs/7: no such run"):
        run_location(runs, "7")
    with pytest.raises(IncasemError, match="expected N .training. or pN"):
        run_location(runs, "latest")
    with pytest.raises(IncasemError, match="no runs folder"):
        list_runs(runs / "missing")


def test_broken_run_json_is_one_line_error(runs):
    (runs / "1" / "run.json").write_text("{not json")
    with pytest.raises(IncasemError, match=r"runs/1/run.json: unreadable"):
        list_runs(runs)


def test_run_name_reads_run_json(runs):
    assert run_name(runs / "1") == "mito"
    assert run_name(runs / "3") == ""  # no run.json yet
    (runs / "2" / "run.json").write_text("{not json")
    assert run_name(runs / "2") == ""


def test_show_summarises_curves(runs):
    text = format_run(find_run(runs, "1"))
    assert "status:     COMPLETED" in text
    assert "loss: 3; 0.7000 @ 10; 0.4000 @ 30; 0.4000 @ 30; 0.7000 @ 10" in text
    assert "validation/f1: 4; 0.9000 @ 0; 0.5000 @ 30; 0.3000 @ 10; 0.9000 @ 0" in text


def test_training_figure_axes_are_labelled():
    curves = {
        "loss": (list(range(1, 41)), [1 / i for i in range(1, 41)]),
        "validation/f1": ([10, 20], [0.2, 0.4]),
        "validation/iou": ([10, 20], [0.1, 0.3]),
    }
    figure = training_curves_figure(curves, "run 1")
    left, right = figure.axes
    assert (left.get_xlabel(), left.get_ylabel()) == ("iteration", "training loss")
    assert (right.get_xlabel(), right.get_ylabel()) == ("iteration", "validation score")
    assert [line.get_label() for line in right.get_lines()] == ["f1", "iou"]
    assert list(right.get_lines()[0].get_xdata()) == [10, 20]


def test_runs_cli_list_show_plot(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "p1" in out and "prediction" in out and "0.6000 @ 20" in out
    assert main(["runs", "list", "--runs-dir", str(runs), "--kind", "prediction", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["p1"] and rows[0]["iterations"] == 20
    assert main(["runs", "show", "p1", "--runs-dir", str(runs)]) == 0
    shown = capsys.readouterr().out
    assert "cell_b/iou: 1;" in shown
    assert "model:      runs/1/checkpoints/model_checkpoint_20.pt (iteration 20)" in shown

    assert main(["runs", "plot", "1", "--runs-dir", str(runs)]) == 0
    png = tmp_path / "run_1_curves.png"
    assert iio.imread(png).shape[:2] == (400, 1100)
    assert main(["runs", "plot", "1", "--runs-dir", str(runs)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["runs", "plot", "p1", "--runs-dir", str(runs)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "run p1 is a prediction" in error[0]


def test_prediction_experiment_mirrors_to_mongodb(tmp_path):
    import mongomock
    import mongomock.gridfs
    from sacred.observers import MongoObserver

    from incasem.cli.predict import build_experiment
    from incasem.tracking.observers import ContinuingFileStorageObserver

    mongomock.gridfs.enable_gridfs_integration()
    with mongomock.patch(servers=(("localhost", 27017),)):
        experiment = build_experiment(tmp_path / "runs", "mongodb://localhost:27017/omniboard")
        kinds = [type(o) for o in experiment.observers]
        assert kinds == [ContinuingFileStorageObserver, MongoObserver]
        assert experiment.observers[0].basedir == str(tmp_path / "runs" / "predictions")
        assert experiment.observers[1].runs.database.name == "omniboard"


def test_continued_run_history_is_merged(runs, tmp_path, monkeypatch):
    _sacred_run(
        runs / "4",
        {"training": {"data": "configs/train.json", "continue_id": "1"}},
        {
            "experiment": {"name": "mito"},
            "status": "COMPLETED",
            "start_time": "2026-01-04T10:00:00",
        },
        {"loss": _metric([30, 40, 50], [0.35, 0.3, 0.2]), "validation/f1": _metric([50], [0.8])},
    )
    reads = []
    monkeypatch.setattr(runs_module, "read_run", lambda *a: reads.append(a[0]) or read_run(*a))
    for run_id in ("1", "4"):
        reads.clear()
        history = training_history(runs, find_run(runs, run_id))
        assert reads.count(runs / run_id) == 1  # the run's own folder is read once
        assert len(reads) == 2  # and the other run of the history once
        assert history["loss"].steps == [10, 20, 30, 40, 50]
        assert history["loss"].values == [0.7, 0.5, 0.35, 0.3, 0.2]  # the later run wins at 30
        assert history["validation/f1"].steps == [0, 10, 20, 30, 50]
    assert "continues:  run 1" in format_run(find_run(runs, "4"))
    resumed = resumed_curves(runs / "1", 40)
    assert resumed["loss"] == ([10, 20, 30, 40], [0.7, 0.5, 0.35, 0.3])
    assert set(resumed) == {"loss", "validation/f1", "validation/iou"}
    assert resumed_curves(tmp_path / "not_a_run", 40) == {}
