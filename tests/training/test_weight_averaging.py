"""Weight averaging: validation, checkpoints and prediction use the exponential moving average
of the weights; the optimizer's own weights are kept so a continued run goes on with both."""

from __future__ import annotations

from pathlib import Path

import torch

from incasem.io import open_array
from incasem.io.intensity import sample_histogram
from incasem.torch.checkpoint import load_checkpoint, read_model_file
from incasem.tracking.run_folder import list_checkpoints
from incasem.training.loop import train


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
    # takes them in with the configured decay (0.5) instead of restarting from either.
    config.training.iterations = 3
    train(config, run, resume=True, progress=False)
    third = read_model_file(list_checkpoints(run)[3])
    assert _max_difference(third["training_state_dict"], trained) > 1e-4
    expected = {
        key: 0.5 * average[key].float() + 0.5 * third["training_state_dict"][key].float()
        for key in average
    }
    assert _max_difference(third["model_state_dict"], expected) < 1e-6
