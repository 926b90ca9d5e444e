"""A prediction with failed blocks leaves outputs that no reader takes for complete: ``segment``,
``instances``, ``measure`` and ``evaluate`` refuse them in one line naming the dataset and how to
finish it (6a96a73 scored them silently: ``f1 0.0000 (tp 0, fp 0, fn 23)``), unless
``INCASEM_ALLOW_INCOMPLETE=1`` says to read them as they are."""

from __future__ import annotations

import pytest

from incasem.cli.main import main
from incasem.predict import PredictionFailed, predict

from .conftest import write_cell, write_checkpoint


@pytest.mark.slow
def test_readers_refuse_the_outputs_of_a_failed_prediction(tmp_path, capsys, monkeypatch):
    cell = write_cell(tmp_path / "cell.zarr")  # raw chunks of 32 voxels, 48 x 56 x 64
    (cell / "volumes" / "raw" / "1.1.0").unlink()  # one block fails: a missing chunk
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    with pytest.raises(PredictionFailed) as failed:
        predict(checkpoint=str(checkpoint), input=str(cell), input_size_voxels=[84] * 3,
                device="cpu", progress=False)  # fmt: skip
    (entry,) = failed.value.result.entries
    assert entry.failed > 0
    probabilities, segmentation = entry.datasets[1], entry.datasets[-1]
    labels = "volumes/labels/mito"

    commands = {
        "segment": ["segment", cell, "-d", probabilities, "--out-dataset", "seg"],
        "instances": ["instances", cell, "-d", segmentation, "--out-dataset", "objects"],
        "measure": ["measure", cell, "-d", segmentation, "-o", tmp_path / "t.csv"],
        "evaluate": [
            "evaluate",
            cell,
            "--prediction",
            segmentation,
            "--truth",
            labels,
            "--json",
            tmp_path / "scores.json",
        ],  # fmt: skip
    }
    for name, argv in commands.items():
        assert main([str(a) for a in [*argv, "--workers", "0"]]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{cell}/{segmentation if name != 'segment' else probabilities}: " in err
        assert "unfinished output (status 'incomplete', " in err and "blocks failed" in err
        assert "the same predict command plus --resume 1" in err, err
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "scores.json").exists()

    monkeypatch.setenv("INCASEM_ALLOW_INCOMPLETE", "1")
    argv = commands["segment"]
    assert main([str(a) for a in [*argv, "--workers", "0"]]) == 0
