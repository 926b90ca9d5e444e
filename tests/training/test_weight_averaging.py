"""Weight averaging: validation, checkpoints and prediction use the exponential moving average
of the weights; the optimizer's own weights are kept so a continued run goes on with both."""

from __future__ import annotations

from pathlib import Path

import torch

from incasem.io import open_array
from incasem.io.intensity import sample_histogram
from incasem.torch.checkpoint import load_checkpoint, read_model_file
from incasem.tracking.run_folder import list_checkpoints
from incasem.training.config import parse_config
from incasem.training.loop import build_weight_average, train


def _config(phantom_training, iterations: int, decay: float = 0.5):
    return phantom_training(
        (64, 64, 64),
        (0, 0, 0),
        (64, 64, 64),
        training={
            "iterations": iterations,
            "input_size_voxels": [108, 108, 108],
            "output_size_voxels": [14, 14, 14],
            "save_every": 1,
            "optimizer": {"lr": 1e-2},
            "precache": {"num_workers": 1, "cache_size": 2},
            "weight_averaging": {"enabled": True, "decay": decay},
        },
        model={"num_fmaps": 2},
        data={"class_names": ["background", "mito"]},
    )


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[key].float() - b[key].float()).abs().max()) for key in a)


def test_checkpoints_hold_the_average_and_the_training_weights(tmp_path: Path, phantom_training):
    run = tmp_path / "runs" / "1"
    config = _config(phantom_training, 2)
    train(config, run, progress=False)
    first = read_model_file(list_checkpoints(run)[2])
    average, trained = first["model_state_dict"], first["training_state_dict"]
    assert average.keys() == trained.keys()
    # lr 1e-2 moves the weights; with decay 0.5 the average lags behind them
    assert _max_difference(average, trained) > 1e-4
    # the model prediction builds is the average
    loaded = load_checkpoint(list_checkpoints(run)[2])
    assert _max_difference(loaded.model.state_dict(), average) == 0.0
    assert _max_difference(loaded.training_state, trained) == 0.0
    # the card records the training raw's grey values (one 64³ cube of the 64³ block here)
    raw = open_array(config.directories.data + "/cell.zarr", "volumes/raw")
    assert loaded.card.raw_histogram == sample_histogram(raw).tolist()
    assert sum(loaded.card.raw_histogram) == 64**3

    # Continuing goes on with both: the optimizer steps the training weights, and the average
    # takes them in as its third (bias-corrected: it keeps d (1 - d^2) / (1 - d^3) = 3/7 of
    # the average of two at decay 0.5) instead of restarting from either.
    config.training.iterations = 3
    train(config, run, resume=True, progress=False)
    third = read_model_file(list_checkpoints(run)[3])
    assert _max_difference(third["training_state_dict"], trained) > 1e-4
    keep = 3 / 7
    expected = {
        key: keep * average[key].float() + (1 - keep) * third["training_state_dict"][key].float()
        for key in average
    }
    assert _max_difference(third["model_state_dict"], expected) < 1e-6


def test_a_short_run_does_not_validate_its_initial_weights():
    """63 iterations at decay 0.99 (a memory of 100): the plain EMA of 6a96a73 still held 0.99^62
    = 54 % of the first weights when the run validated and saved; the bias-corrected average
    weights every iteration seen by d^(n-t) / sum d^(n-t)."""
    config = parse_config({"training": {"weight_averaging": {"enabled": True, "decay": 0.99}}})
    model = torch.nn.Linear(4, 2)
    averaged = build_weight_average(config, model)
    assert averaged is not None
    trajectory = []
    for step in range(63):  # the first step's weights are 0, every later step's are 1
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(0.0 if step == 0 else 1.0)
        trajectory.append(0.0 if step == 0 else 1.0)
        averaged.update_parameters(model)
    weights = 0.99 ** torch.arange(62, -1, -1, dtype=torch.float64)
    expected = float(
        (weights * torch.tensor(trajectory, dtype=torch.float64)).sum() / weights.sum()
    )
    assert expected > 0.98
    for parameter in averaged.module.parameters():
        assert torch.allclose(parameter, torch.full_like(parameter, expected), atol=1e-5)
    # long runs are the plain EMA: the correction fades as 0.99^n
    for _ in range(2000):
        averaged.update_parameters(model)
    assert all(
        torch.allclose(p, torch.ones_like(p), atol=1e-6) for p in averaged.module.parameters()
    )
