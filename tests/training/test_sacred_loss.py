"""What Sacred records as ``loss`` (and ``incasem runs plot`` draws): the mean of the iterations
since its previous point, not the one iteration that happens to fall on ``sacred.log_every``
(6a96a73: a sample, whose spike at the end of a run looked like divergence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from incasem.training.loop import train


def test_sacred_loss_is_the_mean_of_its_interval(tmp_path: Path, phantom_training):
    config = phantom_training(
        (64, 64, 64),
        (0, 0, 0),
        (64, 64, 64),
        training={
            "iterations": 6,
            "input_size_voxels": [108, 108, 108],
            "output_size_voxels": [14, 14, 14],
            "save_every": 6,
            "optimizer": {"lr": 1e-2},
            "precache": {"num_workers": 1, "cache_size": 2},
        },
        model={"num_fmaps": 2},
        sacred={"log_every": 3},
    )
    logged: dict[str, dict[int, float]] = {}
    result = train(
        config,
        tmp_path / "runs" / "1",
        log_scalar=lambda name, value, step: logged.setdefault(name, {}).update({step: value}),
        progress=False,
    )
    losses = result.losses  # every iteration's, in order (iterations 1..6)
    assert len(losses) == 6 and len(set(losses)) > 1
    assert sorted(logged["loss"]) == [3, 6]
    assert logged["loss"][3] == pytest.approx(sum(losses[:3]) / 3)
    assert logged["loss"][6] == pytest.approx(sum(losses[3:]) / 3)
