"""Calibrated decisions in training: the threshold sweep at validation, the best checkpoint by
its best-threshold F1, a time budget and the learning-rate schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from incasem.metrics import ThresholdHistograms, best_threshold_scores, quantise
from incasem.torch.checkpoint import load_checkpoint
from incasem.tracking.run_folder import list_checkpoints, read_best
from incasem.training.config import parse_config
from incasem.training.loop import _Validator, train
from incasem.training.schedule import budget_fraction, learning_rate


def _histograms(probabilities: np.ndarray, truth: np.ndarray) -> ThresholdHistograms:
    levels = quantise(np.stack([1 - probabilities, probabilities]))
    return ThresholdHistograms.from_arrays(levels, truth, None)


def test_best_threshold_scores_find_the_separating_threshold():
    # Foreground at p 0.7-0.8, background at 0.55-0.65: 0.5 calls everything foreground (the
    # over-segmentation of a class-balanced loss); the sweep finds a threshold between them.
    rng = np.random.default_rng(0)
    truth = (rng.random((8, 8, 8)) < 0.2).astype(np.uint8)
    probabilities = np.where(truth > 0, rng.uniform(0.7, 0.8, truth.shape), 0.6)
    scores = best_threshold_scores(_histograms(probabilities, truth), ["background", "mito"])
    assert scores["best_f1"] == scores["mito/best_f1"] == 1.0
    assert scores["best_iou"] == scores["best_precision"] == scores["best_recall"] == 1.0
    assert 0.6 < scores["best_threshold"] <= 0.7
    assert scores["mito/best_threshold"] == scores["best_threshold"]


def test_best_checkpoint_follows_the_best_threshold_score(tmp_path: Path):
    config = parse_config({"directories": {"runs": str(tmp_path)}})
    validator = _Validator(config, data=[], run_dir=tmp_path)
    # Iteration 10 is better at 0.5, iteration 20 at its own best threshold: 20 wins.
    assert validator.is_best(10, {"f1": 0.6, "best_f1": 0.65, "best_threshold": 0.52})
    assert validator.is_best(20, {"f1": 0.4, "best_f1": 0.8, "best_threshold": 0.71})
    assert not validator.is_best(30, {"f1": 0.7, "best_f1": 0.75, "best_threshold": 0.5})
    best = read_best(tmp_path)
    assert best == {
        "iteration": 20,
        "checkpoint": "checkpoints/model_checkpoint_20.pt",
        "metric": "best_f1",
        "value": 0.8,
        "rule": "mean over foreground classes",
        "classes": {},
        "threshold": 0.71,
    }
    # A continued run keeps comparing against what the run already has.
    assert _Validator(config, data=[], run_dir=tmp_path).best_value == 0.8


def test_cosine_schedule_with_warmup():
    rate = [learning_rate(1e-3, "cosine", f, 100) for f in (0.0, 0.5, 1.0)]
    assert rate == pytest.approx([1e-3, 0.5 * (1e-3 + 1e-5), 1e-5])
    assert learning_rate(1e-3, "constant", 0.9, 100) == 1e-3
    # warm-up: linear over the first steps, then the schedule
    assert learning_rate(1e-3, "constant", 0.0, 1, warmup_iterations=4) == pytest.approx(2.5e-4)
    assert learning_rate(1e-3, "constant", 0.0, 4, warmup_iterations=4) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(1e-3, "step", 0.5, 1)


def test_budget_fraction_follows_the_closer_budget():
    assert budget_fraction(50, 100, 0.0, None) == 0.5
    assert budget_fraction(10, 100, 45.0, 1.0) == 0.75  # 45 s of 1 minute beats 10 %
    assert budget_fraction(90, 100, 6.0, 1.0) == 0.9
    assert budget_fraction(500, 100, 0.0, None) == 1.0


def test_training_stops_at_max_minutes_with_a_calibrated_final_checkpoint(
    tmp_path: Path, phantom_training
):
    config = phantom_training(
        (64, 64, 64),
        (0, 0, 0),
        (64, 64, 64),
        training={
            "iterations": 1000,
            "max_minutes": 0.05,  # 3 s
            "input_size_voxels": [108, 108, 108],
            "output_size_voxels": [14, 14, 14],
            "save_every": 1000,
            "optimizer": {"lr": 1e-3, "schedule": "cosine", "warmup_iterations": 2},
            "precache": {"num_workers": 1, "cache_size": 2},
        },
        validation={"validate_every": 1000, "input_size_voxels": [156, 156, 156]},
        model={"num_fmaps": 2},
        data={"class_names": ["background", "mito"]},
        sacred={"log_every": 1},
    )
    config.validation.data = config.training.data
    logged: dict[str, dict[int, float]] = {}

    def log_scalar(name: str, value: float, iteration: int) -> None:
        logged.setdefault(name, {})[iteration] = value

    run = tmp_path / "runs" / "1"
    result = train(config, run, log_scalar=log_scalar, progress=False)
    last = result.last_iteration
    assert 1 <= last < 1000
    # stopped by the clock: the final model is validated, saved with its threshold and is best
    assert list(list_checkpoints(run)) == [last]
    card = load_checkpoint(list_checkpoints(run)[last]).card
    assert (
        card.threshold
        == card.metrics["best_threshold"]
        == logged["validation/best_threshold"][last]
    )
    assert json.loads((run / "best.json").read_text())["threshold"] == card.threshold
    # and with the post-processing chosen there, on the same validation prediction
    assert card.fill_holes == bool(card.metrics["post_processing/fill_holes"])
    assert card.min_object_nm3 == card.metrics["post_processing/min_object_nm3"]
    assert card.metrics["post_processing/f1"] >= card.metrics["best_f1"] - 1e-6
    assert 3.0 <= logged["time/training_s"][last] < 60.0
    assert logged["time/training_s"][0] == 0.0
    # warm-up then cosine decay, logged per iteration
    rates = logged["learning_rate"]
    assert rates[1] == pytest.approx(5e-4)
    if last >= 2:  # a loaded machine may fit only one iteration into the 3 s
        assert rates[last] <= rates[2] <= 1e-3  # decays over the 3 s budget after the warm-up
