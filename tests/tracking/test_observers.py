"""Runs are recorded without a server, and in MongoDB when asked (here against mongomock, for
speed; test_mongodb_server.py runs the same on a real server and with a stopped one)."""

from __future__ import annotations

import json

import mongomock
import mongomock.gridfs
import pytest
from sacred import Experiment
from sacred.observers import MongoObserver

from incasem.errors import IncasemError
from incasem.tracking.observers import ContinuingFileStorageObserver, add_observers
from incasem.training.cli import build_training_experiment


def _experiment() -> Experiment:
    experiment = Experiment("tiny", save_git_info=False)
    experiment.add_config({"value": 3})

    @experiment.main
    def _main(value, _run):
        for step in range(3):
            _run.log_scalar("loss", value - step, step)
        return value * 2

    return experiment


def test_file_observer_records_run_without_server(tmp_path):
    experiment = _experiment()
    add_observers(experiment, tmp_path / "runs")
    experiment.run()
    run = json.loads((tmp_path / "runs" / "1" / "run.json").read_text())
    assert run["status"] == "COMPLETED" and run["result"] == 6
    metrics = json.loads((tmp_path / "runs" / "1" / "metrics.json").read_text())
    assert metrics["loss"]["values"] == [3, 2, 1]


def test_mongodb_observer_records_run_and_metrics(tmp_path):
    mongomock.gridfs.enable_gridfs_integration()
    with mongomock.patch(servers=(("localhost", 27017),)):
        experiment = _experiment()
        add_observers(experiment, tmp_path / "runs", "mongodb://localhost:27017/incasem_test")
        experiment.run()
        observer = next(o for o in experiment.observers if isinstance(o, MongoObserver))
        database = observer.runs.database
        assert database.name == "incasem_test"
        run = database.runs.find_one()
        assert run["status"] == "COMPLETED" and run["result"] == 6
        metric = database.metrics.find_one({"name": "loss"})
        assert metric["values"] == [3, 2, 1]
    assert (tmp_path / "runs" / "1" / "run.json").is_file()  # the file record is always kept


def test_training_experiment_gets_both_observers(tmp_path):
    mongomock.gridfs.enable_gridfs_integration()
    with mongomock.patch(servers=(("localhost", 27017),)):
        experiment = build_training_experiment(str(tmp_path / "runs"), "mongodb://localhost")
    kinds = [type(o) for o in experiment.observers]
    assert kinds == [ContinuingFileStorageObserver, MongoObserver]


def test_bad_mongodb_url_is_one_line_error(tmp_path):
    with pytest.raises(IncasemError, match="expected mongodb://HOST"):
        add_observers(_experiment(), tmp_path, "localhost:27017")


def test_continued_run_keeps_its_id_in_the_folder_and_in_mongodb(tmp_path):
    """--continue_run N records run N again: the same folder (metrics appended, earlier
    sessions listed in run.json) and the same MongoDB document."""
    mongomock.gridfs.enable_gridfs_integration()
    url = "mongodb://localhost:27017/incasem_test"
    with mongomock.patch(servers=(("localhost", 27017),)):
        first = _experiment()
        add_observers(first, tmp_path / "runs", url)
        first.run()
        again = _experiment()
        add_observers(again, tmp_path / "runs", url, continue_id="1")
        run = again.run(config_updates={"value": 10}, options={"--id": "1"})
        assert run._id == "1"
        database = again.observers[1].runs.database
        documents = list(database.runs.find())
        assert [d["_id"] for d in documents] == [1] and documents[0]["result"] == 20
    folder = tmp_path / "runs" / "1"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["1", "_sources"]
    record = json.loads((folder / "run.json").read_text())
    assert record["result"] == 20 and record["sessions"][0]["result"] == 6
    assert record["sessions"][0]["status"] == "COMPLETED"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["loss"]["values"] == [3, 2, 1, 10, 9, 8]


def test_continuing_a_missing_run_is_one_line(tmp_path):
    experiment = _experiment()
    add_observers(experiment, tmp_path / "runs", continue_id="7")
    with pytest.raises(IncasemError, match=r"--continue_run 7: .*runs/7 holds no run"):
        experiment.run(options={"--id": "7"})


@pytest.mark.parametrize("command", [["board"], ["runs", "list"]])
def test_a_stopped_server_is_one_line_for_board_and_runs(command, unreachable_mongodb, capsys):
    from incasem.cli.main import main

    assert main([*command, "--mongodb", unreachable_mongodb]) == 2
    address = unreachable_mongodb.split("//")[1].split("/")[0]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"incasem {command[0]}: error: --mongodb {unreachable_mongodb}: ")
    assert line.endswith(f"{address}: [Errno 111] Connection refused)") or line.endswith(
        f"{address}: [Errno 111] Connection refused"
    )
