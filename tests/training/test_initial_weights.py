"""Fine-tuning (``--start_from``) and continuing (``--continue_run``) start from the checkpoint's
weights: after one step at a negligible learning rate (1e-12) the new checkpoint holds the
source checkpoint's tensors, while a fresh start (the seed's initialisation) is 1e-2 away."""

from __future__ import annotations

from pathlib import Path

import torch

from incasem.torch.checkpoint import read_model_file
from incasem.tracking.run_folder import list_checkpoints
from incasem.training.loop import train

#: Far below one Adam step at lr 1e-2 (each weight moves by about 1e-2), far above float noise.
TOLERANCE = 1e-6


def _config(phantom_training):
    """One iteration on a 64³ synthetic cell, at lr 1e-2 (the source run's weights move away
    from the seed's initialisation)."""
    return phantom_training(
        (64, 64, 64),
        (0, 0, 0),
        (64, 64, 64),
        training={
            "iterations": 1,
            "input_size_voxels": [108, 108, 108],
            "output_size_voxels": [14, 14, 14],
            "save_every": 1,
            "optimizer": {"lr": 1e-2},
            "precache": {"num_workers": 1, "cache_size": 2},
        },
        model={"num_fmaps": 2},
        data={"class_names": ["background", "mito"]},
    )


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return read_model_file(checkpoint)["model_state_dict"]


def _assert_same_tensors(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(
            got[key],
            expected[key],
            rtol=0,
            atol=TOLERANCE,
            msg=lambda text, key=key: f"{key}: {text}",
        )


def test_fine_tuning_starts_from_the_checkpoints_weights(tmp_path: Path, phantom_training):
    config = _config(phantom_training)
    source_run = tmp_path / "runs" / "1"
    train(config, source_run, progress=False)
    source = list_checkpoints(source_run)[1]

    config.training.optimizer.lr = 1e-12
    tuned_run = tmp_path / "runs" / "2"
    train(config, tuned_run, start_from=source, progress=False)

    # the iteration count starts fresh: the first step is iteration 1 of the new run
    assert list(list_checkpoints(tuned_run)) == [1]
    _assert_same_tensors(_weights(list_checkpoints(tuned_run)[1]), _weights(source))


def test_continuing_starts_from_the_last_checkpoints_weights(tmp_path: Path, phantom_training):
    config = _config(phantom_training)
    run = tmp_path / "runs" / "1"
    train(config, run, progress=False)

    config.training.optimizer.lr = 1e-12
    config.training.iterations = 2
    result = train(config, run, resume=True, progress=False)

    assert result.first_iteration == 1 and list(list_checkpoints(run)) == [1, 2]
    checkpoints = list_checkpoints(run)
    _assert_same_tensors(_weights(checkpoints[2]), _weights(checkpoints[1]))


def test_recipe_options_train_into_the_card_and_refuse_asem_weights(
    tmp_path: Path, phantom_training
):
    """A run with group normalisation and residual passes writes them into its card, its
    checkpoint predicts with the same network, and fine-tuning it with ASEM's plain network
    configured is refused in one line naming the keys."""
    import pytest

    from incasem.errors import IncasemError
    from incasem.torch.checkpoint import load_checkpoint

    config = _config(phantom_training)
    config.model.normalisation = "group"
    config.model.residual = True
    run = tmp_path / "runs" / "1"
    train(config, run, progress=False)
    checkpoint = load_checkpoint(list_checkpoints(run)[1])
    assert checkpoint.card.hparams["normalisation"] == "group"
    assert checkpoint.card.hparams["residual"] is True
    assert any(isinstance(m, torch.nn.GroupNorm) for m in checkpoint.model.modules())

    config.model.normalisation, config.model.residual = "none", False
    with pytest.raises(IncasemError, match="normalisation") as refused:
        train(config, tmp_path / "runs" / "2", start_from=list_checkpoints(run)[1], progress=False)
    assert "\n" not in str(refused.value)


def test_deep_supervision_trains_its_heads_and_keeps_them_in_the_card(
    tmp_path: Path, phantom_training
):
    """With ``model.deep_supervision`` the aux heads get gradients (one step at lr 1e-2 moves
    them away from the seed's initialisation), and the card rebuilds the network."""
    from incasem.torch.checkpoint import load_checkpoint
    from incasem.training.model_setup import build_model, seed_everything

    config = _config(phantom_training)
    config.model.deep_supervision = True
    run = tmp_path / "runs" / "1"
    train(config, run, progress=False)
    checkpoint = load_checkpoint(list_checkpoints(run)[1])
    assert checkpoint.card.hparams["deep_supervision"] is True
    seed_everything(config.training.seed)
    initial = build_model(config).state_dict()
    trained = _weights(list_checkpoints(run)[1])
    heads = [key for key in trained if key.startswith("aux_heads")]
    assert len(heads) == 4  # weight and bias of 2 heads
    for key in heads:
        assert (trained[key] - initial[key]).abs().max() > 1e-3, key
