"""Model export: one self-describing file from a checkpoint, original ASEM weights wrapped with
their published description, ``models list``. (Prediction with an exported file giving the
checkpoint's output exactly is part of tests/cli/test_runs_commands.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.predict.checkpoints import resolve_checkpoint
from incasem.torch.checkpoint import (
    DEFAULT_NORMALISATION,
    ModelCard,
    load_checkpoint,
    save_checkpoint,
)
from incasem.torch.export import describe_model, export_model, import_asem, list_models
from incasem.torch.models import ASEMUNet

VOXEL_SIZE = [8, 4, 4]


def _checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny two-level ASEMUNet (2 feature maps) with a card and optimizer state."""
    torch.manual_seed(seed)
    model = ASEMUNet(num_fmaps=2, downsample_factors=[[2, 2, 2]] * 2)
    with torch.no_grad():  # spread the logits so that the probabilities vary
        model.final_conv_pass.conv_pass[0].weight.mul_(20.0)
    card = ModelCard(
        hparams=model.hparams(),
        input_size_voxels=[84, 84, 84],
        output_size_voxels=list(model.output_shape([84, 84, 84])),
        voxel_size=VOXEL_SIZE,
        class_names=["background", "mito"],
        iteration=10,
        data_digest="abc123",
        metrics={"f1": 0.75},
    )
    optimizer = torch.optim.Adam(model.parameters())
    return save_checkpoint(path, model, card, optimizer)


@pytest.fixture
def run_checkpoint(tmp_path: Path) -> Path:
    """``runs/5/checkpoints/model_checkpoint_10.pt`` in a Sacred run folder."""
    run = tmp_path / "runs" / "5"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"training": {"data": "train.json"}, "validation": {"data": "val.json"}})
    )
    (run / "run.json").write_text(json.dumps({"experiment": {"name": "mito_cf"}}))
    return _checkpoint(run / "checkpoints" / "model_checkpoint_10.pt")


def _asem_state() -> dict[str, torch.Tensor]:
    """A state dict of the published architecture, as the original tool saved it."""
    torch.manual_seed(1)
    return {key: torch.randn_like(value) for key, value in ASEMUNet().state_dict().items()}


def test_export_is_self_describing(run_checkpoint, tmp_path):
    out = export_model(run_checkpoint, tmp_path / "models" / "mito.pt", description="demo")
    content = torch.load(out, weights_only=True)
    assert "optimizer_state_dict" not in content and content["kind"] == "exported-model"
    export = content["export"]
    assert export["context_voxels"] == [21, 21, 21]
    assert export["context_nm"] == [168, 84, 84]
    assert export["training_run"] == {
        "run_id": 5,
        "name": "mito_cf",
        "training_data": "train.json",
        "validation_data": "val.json",
    }
    assert export["description"] == "demo" and len(export["source_sha256"]) == 64
    info = describe_model(out)
    assert info.kind == "exported-model"
    assert info.card.voxel_size == VOXEL_SIZE and info.card.class_names == ["background", "mito"]
    assert info.card.metrics == {"f1": 0.75} and info.card.data_digest == "abc123"
    assert info.card.normalisation == DEFAULT_NORMALISATION
    original, exported = load_checkpoint(run_checkpoint).model, load_checkpoint(out).model
    for key, value in original.state_dict().items():
        assert torch.equal(value, exported.state_dict()[key])
    assert out.stat().st_size < run_checkpoint.stat().st_size  # no Adam moments

    with pytest.raises(IncasemError, match="already exists; pass --overwrite"):
        export_model(run_checkpoint, out)


def test_asem_weights_load_with_published_description(tmp_path):
    state = _asem_state()
    assert "unet.l_conv.3.conv_pass.2.weight" in state  # the original's parameter names
    weights = tmp_path / "model_checkpoint_1675.pth"
    torch.save({"model_state_dict": state, "optimizer_state_dict": {}}, weights)
    out = import_asem(weights, tmp_path / "mito_hpfs.pt", model_id=1675)
    loaded = load_checkpoint(out)
    card = loaded.card
    assert card.voxel_size == [4, 4, 4] and card.class_names == ["background", "mito"]
    assert (card.input_size_voxels, card.output_size_voxels) == ([204] * 3, [110] * 3)
    assert card.hparams == ASEMUNet().hparams()
    for key, value in state.items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert describe_model(out).export["asem_model_id"] == 1675

    bare = tmp_path / "bare.pth"  # a bare state dict, organelle and voxel size by hand
    torch.save(state, bare)
    card = load_checkpoint(import_asem(bare, tmp_path / "np.pt", None, "pores", [5, 5, 5])).card
    assert card.class_names == ["background", "pores"] and card.voxel_size == [5, 5, 5]


def test_asem_errors_are_one_line(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"model_state_dict": _asem_state()}, weights)
    with pytest.raises(IncasemError, match="--model-id 1234: not a published ASEM model"):
        import_asem(weights, tmp_path / "a.pt", model_id=1234)
    with pytest.raises(IncasemError, match="give --model-id, or --organelle and --voxel-size"):
        import_asem(weights, tmp_path / "a.pt")
    small = tmp_path / "small.pth"
    torch.save({"model_state_dict": ASEMUNet(num_fmaps=2).state_dict()}, small)
    with pytest.raises(
        IncasemError, match="small.pth: checkpoint does not fit the model: shape mismatches"
    ):
        import_asem(small, tmp_path / "a.pt", model_id=1847)
    # predict refuses unwrapped weights with the command that wraps them
    with pytest.raises(IncasemError, match="incasem export --asem"):
        resolve_checkpoint(weights, None, None, tmp_path)


def test_models_list(run_checkpoint, tmp_path, capsys):
    folder = tmp_path / "models"
    assert main(["export", str(run_checkpoint), "-o", str(folder / "mito.pt")]) == 0
    capsys.readouterr()
    torch.save({"model_state_dict": _asem_state()}, folder / "asem_1847.pth")
    (folder / "notes.pt").write_bytes(b"not a model")
    kinds = {i.path.name: i.kind for i in list_models(folder)}
    assert kinds == {"asem_1847.pth": "asem-weights", "mito.pt": "exported-model",
                     "notes.pt": "unknown"}  # fmt: skip
    assert main(["models", "list", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["file", "kind", "classes", "voxel"]
    mito = next(line for line in lines if line.startswith("mito.pt"))
    assert mito.split() == [
        "mito.pt", "exported-model", "mito", "8x4x4", "84x84x84", "->", "42x42x42", "10",
        "0.7500", "-", mito.split()[-2], "5",
    ]  # fmt: skip
    assert "incasem export --asem" in next(line for line in lines if "asem_1847" in line)
    assert main(["models", "list", str(tmp_path / "none")]) == 2
