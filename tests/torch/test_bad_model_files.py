"""Model files that are not what they claim: named for what they are, in one line.

A hand-edited card (voxel size [-5, 5, 5]) is refused wherever a model is loaded (export,
models list, predict); random bytes and text are "not a checkpoint", not a pickle refusal or
``KeyError: 101``.
"""

from __future__ import annotations

import os

import pytest
import torch

from incasem.cli.main import main

from ..predict.conftest import file_tree, write_cell, write_checkpoint


@pytest.fixture
def edited(tmp_path):
    content = torch.load(write_checkpoint(tmp_path / "good.pt"), weights_only=True)
    content["card"]["voxel_size"] = [-5, 5, 5]
    path = tmp_path / "models" / "edited.pt"
    path.parent.mkdir()
    torch.save(content, path)
    return path


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_hand_edited_card_is_refused_on_load(edited, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cell = write_cell(tmp_path / "cell.zarr")
    before = file_tree(tmp_path)
    reason = f"{edited}: model card voxel_size [-5, 5, 5] must be 3 positive whole numbers"
    for argv in (
        ["export", str(edited), "-o", str(tmp_path / "out.pt")],
        ["predict", "--checkpoint", str(edited), "--input", str(cell), "--device", "cpu"],
    ):
        assert main(argv) == 2
        assert reason in _one_line(capsys.readouterr().err)
    assert main(["models", "list", str(edited.parent)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "edited.pt" in line)
    assert "unknown" in row and "voxel_size [-5, 5, 5] must be" in row
    assert file_tree(tmp_path) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (os.urandom(4096), "not a checkpoint: the file starts with bytes "),
        (b"weights: none\n" * 20, "not a checkpoint: the file is text, not a torch model file"),
        (b"", "not a checkpoint: the file is empty"),
    ],
)
def test_a_file_that_is_no_model_is_named_so(tmp_path, capsys, content, reason):
    path = tmp_path / "model.pt"
    path.write_bytes(content if content[:2] != b"PK" else b"x" + content)
    assert main(["export", str(path), "-o", str(tmp_path / "out.pt")]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"incasem export: error: {path}: {reason}")


def test_a_card_claiming_a_huge_network_is_refused_before_allocating(tmp_path, capsys):
    """Found by the property suite: hparams size the model, so 10^5 feature maps asked torch
    for a terabyte (RuntimeError); the card is now checked against the weights first."""
    content = torch.load(write_checkpoint(tmp_path / "good.pt"), weights_only=True)
    content["card"]["hparams"]["num_fmaps"] = 100_000
    torch.save(content, tmp_path / "huge.pt")
    assert main(["export", str(tmp_path / "huge.pt"), "-o", str(tmp_path / "out.pt")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"incasem export: error: {tmp_path / 'huge.pt'}: checkpoint does not ")
    assert "(model (100000, 1, 3, 3, 3))" in line
