"""``incasem proofread``: the block made uncertain on purpose comes first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.postprocess.proofread import rank_blocks, uncertainty_score
from incasem.postprocess.sources import DatasetRef


def _prediction(tmp_path: Path) -> Path:
    """uint8 probabilities (10 nm) over 64x64x96 voxels at offset (20, 0, 0) voxels: confident
    everywhere (background 3/255, a confident organelle 252/255) except block (1, 0, 2) of
    32³, where the model half-sees an organelle (p 0.59-0.8)."""
    rng = np.random.default_rng(0)
    p = np.full((64, 64, 96), 3, np.uint8)
    p[5:25, 5:25, 5:25] = 252
    p[32:64, 0:32, 64:96] = rng.integers(150, 205, (32, 32, 32))
    container = tmp_path / "cell.zarr"
    array = create_array(container, "pred/class_1", p.shape, (10, 10, 10), (200, 0, 0))
    array[array.roi] = p
    zarr.open(str(container), "r+")["pred/class_1"].attrs["threshold"] = 0.6
    return container


def test_the_uncertain_block_comes_first(tmp_path: Path):
    container = _prediction(tmp_path)
    blocks, threshold = rank_blocks(
        DatasetRef(str(container), "pred/class_1"), (32, 32, 32), top=3, progress=False
    )
    assert threshold == 0.6  # recorded by the prediction
    assert [b.rank for b in blocks] == [1, 2, 3]
    first = blocks[0]
    assert first.offset == (52, 0, 64) and first.shape == (32, 32, 32)
    assert first.foreground > 0.5 and first.score > 0.5
    assert blocks[1].score < first.score / 4
    assert uncertainty_score(np.array([0.0, 1.0])) == pytest.approx(0, abs=1e-9)
    assert uncertainty_score(np.array([0.5])) == pytest.approx(0.5)


def test_the_command_prints_the_ranking_and_refuses_bad_input(tmp_path: Path, capsys):
    container = _prediction(tmp_path)
    argv = ["proofread", str(container), "-p", "pred/class_1", "--block-size", "32", "32", "32",
            "--top", "2", "--no-progress"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert ranking["threshold"] == 0.6 and len(ranking["blocks"]) == 2
    assert ranking["blocks"][0]["offset"] == [52, 0, 64]
    assert main(argv) == 0
    assert "   1  [52:84, 0:32, 64:96]" in capsys.readouterr().out
    create_array(container, "labels", (4, 4, 4), (10, 10, 10), dtype=np.uint32)
    assert main(["proofread", str(container), "-p", "labels"]) == 2
    assert "probabilities must be uint8 (p * 255) or float" in capsys.readouterr().err
    with pytest.raises(IncasemError, match=r"--block-size \[0, 4, 4\]"):
        rank_blocks(DatasetRef(str(container), "pred/class_1"), (0, 4, 4), progress=False)
