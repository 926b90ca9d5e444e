"""Runs are recorded without a server, and in MongoDB when asked (tested against mongomock:
no MongoDB server can be installed on these machines)."""

from __future__ import annotations

import json

import mongomock
import mongomock.gridfs
import pytest
from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver

from incasem.errors import IncasemError
from incasem.tracking.observers import add_observers
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
    assert kinds == [FileStorageObserver, MongoObserver]


def test_bad_mongodb_url_is_one_line_error(tmp_path):
    with pytest.raises(IncasemError, match="expected mongodb://HOST"):
        add_observers(_experiment(), tmp_path, "localhost:27017")
