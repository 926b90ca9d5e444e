"""A prediction's run id and its output group agree: run pN writes ``predict_<N>``."""

from __future__ import annotations

from incasem.cli.main import main

from .conftest import write_cell, write_checkpoint


def test_prediction_group_is_named_by_the_run_id(tmp_path, capsys):
    cell = write_cell(tmp_path / "cell.zarr")
    runs = tmp_path / "runs"
    first, second = write_checkpoint(tmp_path / "a.pt"), write_checkpoint(tmp_path / "b.pt", seed=1)
    for checkpoint in (first, second):  # two models: each has its own folder of predictions
        argv = ["predict", "--checkpoint", str(checkpoint), "--input", str(cell), "--device",
                "cpu", "--runs_dir", str(runs), "--num_workers", "1", "--no-progress"]  # fmt: skip
        assert main(argv) == 0
    capsys.readouterr()
    groups = sorted(
        f"{model.name}/{group.name}"
        for model in (cell / "volumes" / "predictions").iterdir()
        if model.is_dir()
        for group in model.iterdir()
        if group.is_dir()
    )
    assert groups == ["a/predict_0001", "b/predict_0002"]  # p1 and p2
    assert sorted(p.name for p in (runs / "predictions").iterdir() if p.name.isdigit()) == [
        "1",
        "2",
    ]
    assert main(["runs", "show", "p2", "--runs-dir", str(runs)]) == 0
    assert "outputs:    volumes/predictions/b/predict_0002 (resume with --resume 2)" in (
        capsys.readouterr().out
    )
