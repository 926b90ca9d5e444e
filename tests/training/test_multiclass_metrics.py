"""Membrane = 1 and mito = 2 in one model: every foreground class counts. The validation scores,
the best checkpoint and ``best.json``, ``runs list``/``show``, the training-curve figure and the
prediction report cover both classes; the rule is the mean over foreground classes (6a96a73
followed class 1 alone: the checkpoint was chosen on membranes and mitochondria appeared nowhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.metrics import ConfusionCounts, ThresholdHistograms, quantise
from incasem.predict.evaluate import entry_scores
from incasem.tracking.run_folder import read_best
from incasem.training.config import parse_config
from incasem.training.loop import _Validator
from incasem.viz.curves import training_curves_figure

NAMES = ["background", "membrane", "mito"]


def _truth() -> np.ndarray:
    truth = np.zeros((4, 32, 32), np.uint8)
    truth[:, :, 10:12] = 1  # membrane
    truth[:, 16:28, 16:28] = 2  # mito
    return truth


def _scores(membrane_hit: float, mito_hit: float, seed: int) -> dict[str, float]:
    """Validation scores of a model that finds each class's voxels with the given rates."""
    rng = np.random.default_rng(seed)
    truth = _truth()
    prediction = np.zeros_like(truth)
    for class_id, rate in ((1, membrane_hit), (2, mito_hit)):
        prediction[(truth == class_id) & (rng.random(truth.shape) < rate)] = class_id
    p = np.zeros((3, *truth.shape))
    for class_id in range(3):
        p[class_id] = np.where(prediction == class_id, 0.8, 0.1)
    counts = ConfusionCounts.from_arrays(prediction, truth, None, 3)
    histograms = ThresholdHistograms.from_arrays(quantise(p / p.sum(0)), truth, None)
    return entry_scores(counts, histograms, class_names=NAMES)


def test_the_best_checkpoint_is_chosen_on_every_foreground_class(tmp_path: Path):
    good_membranes = _scores(0.95, 0.2, seed=1)  # iteration 10: membranes only
    balanced = _scores(0.85, 0.85, seed=2)  # iteration 20: both classes
    assert good_membranes["membrane/best_f1"] > balanced["membrane/best_f1"]
    for scores in (good_membranes, balanced):
        assert scores["best_f1"] == pytest.approx(
            (scores["membrane/best_f1"] + scores["mito/best_f1"]) / 2
        )
        assert scores["f1"] == pytest.approx((scores["membrane/f1"] + scores["mito/f1"]) / 2)
        assert "best_threshold" not in scores  # argmax decides with three classes

    config = parse_config(
        {
            "directories": {"runs": str(tmp_path)},
            "data": {"num_classes": 3, "class_names": NAMES},
        }
    )
    validator = _Validator(config, data=[], run_dir=tmp_path)
    assert validator.is_best(10, good_membranes)
    assert validator.is_best(20, balanced)
    best = read_best(tmp_path)
    assert best["iteration"] == 20 and best["rule"] == "mean over foreground classes"
    assert best["classes"] == {
        "membrane": balanced["membrane/best_f1"],
        "mito": balanced["mito/best_f1"],
    }
    assert best["value"] == pytest.approx(sum(best["classes"].values()) / 2)


def test_runs_list_show_and_plot_cover_every_class(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"training": {"data": "t.json"}}))
    info = {
        "experiment": {"name": "tem"},
        "status": "COMPLETED",
        "start_time": "2026-01-01T10:00:00",
    }
    (run / "run.json").write_text(json.dumps(info))

    def metric(values: list[float]) -> dict:
        return {"steps": [10, 20], "values": values, "timestamps": ["2026-01-01T10:00:00"] * 2}

    metrics = {
        "loss": metric([0.9, 0.5]),
        "validation/f1": metric([0.5, 0.7]),
        "validation/best_f1": metric([0.55, 0.75]),
        "validation/membrane/f1": metric([0.9, 0.8]),
        "validation/mito/f1": metric([0.1, 0.6]),
        "validation/membrane/best_f1": metric([0.92, 0.82]),
        "validation/mito/best_f1": metric([0.18, 0.68]),
    }
    (run / "metrics.json").write_text(json.dumps(metrics))

    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "0.7500 @ 20 (membrane 0.8200, mito 0.6800)" in capsys.readouterr().out
    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["class_f1"] == {"membrane": 0.82, "mito": 0.68}
    assert main(["runs", "show", "1", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "per class:  membrane 0.8200, mito 0.6800 (best F1 is their mean)" in (
        capsys.readouterr().out
    )

    curves = {name: (m["steps"], m["values"]) for name, m in metrics.items()}
    right = training_curves_figure(curves, "run 1").axes[1]
    labels = [line.get_label() for line in right.get_lines()]
    assert labels == ["f1 (mean)", "membrane f1", "mito f1"]
    assert right.get_title() == "validation (mean over 2 foreground classes)"
    assert main(["runs", "plot", "1", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "run_1_curves.png").stat().st_size > 0
