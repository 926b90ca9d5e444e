"""A model file is data, never code: a pickle payload is refused by every command that reads a
model, in one line, and never runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.torch.checkpoint import load_checkpoint
from incasem.torch.models import ASEMUNet

from ..predict.conftest import file_tree, write_cell, write_checkpoint, write_config


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the side effect a real attack would hide."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint that looks like ours (weights, card) plus a payload; and the payload's
    marker file, which exists only if the payload ran."""
    good = torch.load(write_checkpoint(tmp_path / "good.pt"), weights_only=True)
    marker = tmp_path / "payload_ran"
    good["extra"] = _Payload(marker)
    path = tmp_path / "models" / "hostile.pt"
    path.parent.mkdir()
    torch.save(good, path)
    # the original ASEM layout too: {"model_state_dict": ...} with a payload beside it
    asem = tmp_path / "asem.pth"
    torch.save({"model_state_dict": ASEMUNet().state_dict(), "x": _Payload(marker)}, asem)
    return path, marker


def _one_line_refusal(err: str, path: Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{path}: refused: the file holds Python objects other than weights" in lines[0]


def test_library_refuses_the_payload(hostile):
    path, marker = hostile
    with pytest.raises(IncasemError) as error:
        load_checkpoint(path)
    _one_line_refusal(str(error.value), path)
    assert not marker.exists()


def test_commands_refuse_the_payload(hostile, tmp_path, capsys, monkeypatch):
    path, marker = hostile
    cell = write_cell(tmp_path / "cell.zarr")
    monkeypatch.chdir(tmp_path)
    before = file_tree(tmp_path)
    commands = {
        "predict": ["predict", "--checkpoint", str(path), "--input", str(cell), "--device", "cpu"],
        "export": ["export", str(path), "-o", str(tmp_path / "out.pt")],
        "export --asem": ["export", "--asem", str(tmp_path / "asem.pth"), "--model-id", "1847",
                          "-o", str(tmp_path / "out.pt")],
    }  # fmt: skip
    for name, argv in commands.items():
        assert main(argv) == 2, name
        refused = tmp_path / "asem.pth" if name == "export --asem" else path
        _one_line_refusal(capsys.readouterr().err, refused)
    assert main(["models", "list", str(path.parent)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "hostile.pt" in line)
    assert "unknown" in row and "refused" in row
    assert not marker.exists()
    assert file_tree(tmp_path) == before  # nothing written: no output, no run record


@pytest.mark.slow
def test_fine_tuning_refuses_the_payload(hostile, tmp_path, repo_root):
    path, marker = hostile
    write_cell(tmp_path / "cell.zarr")
    write_config(tmp_path / "data.json", {"block": {"offset": [10, 10, 0], "shape": [40, 40, 40]}})
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "train.py"), "--start_from", str(path),
         "with", "training.data=data.json", "directories.data=.", "data.voxel_size=[8,4,4]",
         "directories.runs=runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refused: the file holds Python objects" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
