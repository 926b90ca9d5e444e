"""The model's calibrated threshold decides by default, everywhere a probability becomes a
decision: prediction, an exported model, ``segment`` and ``instances``; ``--threshold`` wins."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.io import create_array, open_array
from incasem.metrics import quantise
from incasem.predict import predict
from incasem.torch.checkpoint import load_checkpoint
from incasem.torch.export import export_model

from .conftest import read_dataset, write_checkpoint

ROI = [10, 10, 0, 32, 48, 48]  # voxels: offset, shape


def _decided(probability: np.ndarray, segmentation: np.ndarray, threshold: float) -> None:
    """``segmentation`` is p >= threshold, except where rounding to uint8 levels may decide
    otherwise (p within half a level of the threshold)."""
    clear = np.abs(probability - threshold) > 0.5 / 255
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(segmentation[clear] > 0, probability[clear] >= threshold)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from .conftest import write_cell

    folder = tmp_path_factory.mktemp("threshold")
    cell = write_cell(folder / "cell.zarr")
    checkpoint = write_checkpoint(folder / "model.pt", "unet3", threshold=0.7)
    common = {"input": str(cell), "roi": ROI, "input_size_voxels": [132] * 3, "device": "cpu"}
    default = predict(checkpoint=str(checkpoint), output_group="default", progress=False, **common)
    given = predict(
        checkpoint=str(checkpoint), threshold=0.3, output_group="given", progress=False, **common
    )
    return {"folder": folder, "cell": cell, "checkpoint": checkpoint, "default": default,
            "given": given}  # fmt: skip


def test_prediction_uses_the_models_threshold_and_says_so(calibrated):
    cell, default, given = calibrated["cell"], calibrated["default"], calibrated["given"]
    assert default.threshold == 0.7
    assert "foreground threshold 0.7 (the model's, chosen on its validation data)" in (
        default.summary()
    )
    assert given.threshold == 0.3 and "foreground threshold 0.3 (--threshold)" in given.summary()
    for result, threshold in ((default, 0.7), (given, 0.3)):
        datasets = result.entries[0].datasets
        probability = read_dataset(cell, datasets[1]).astype(np.float64) / 255
        _decided(probability, read_dataset(cell, datasets[2]), threshold)
        # recorded where segment and instances find it
        assert open_array(cell, datasets[1]).attrs["threshold"] == threshold
        assert "threshold" not in open_array(cell, datasets[0]).attrs


def test_exported_model_keeps_its_threshold(calibrated, tmp_path):
    exported = export_model(calibrated["checkpoint"], tmp_path / "mito.pt")
    assert load_checkpoint(exported).card.threshold == 0.7
    # a model that was never validated decides at 0.5 and says why
    plain = load_checkpoint(write_checkpoint(tmp_path / "plain.pt")).card
    assert plain.decision_threshold() == (0.5, "0.5, the model has no calibrated threshold")


def test_segment_and_instances_default_to_the_recorded_threshold(calibrated, capsys):
    cell = str(calibrated["cell"])
    datasets = calibrated["default"].entries[0].datasets
    probabilities, segmentation = datasets[1], datasets[2]
    run = ["--workers", "0", "--no-progress", "--overwrite"]
    assert main(["segment", cell, "-d", probabilities, "--out-dataset", "seg", *run]) == 0
    out = capsys.readouterr().out
    assert f"threshold 0.7 (recorded on {cell}/{probabilities} by its prediction" in out
    np.testing.assert_array_equal(
        read_dataset(calibrated["cell"], "seg"), read_dataset(calibrated["cell"], segmentation)
    )
    assert main(["instances", cell, "-d", probabilities, "--out-dataset", "obj", *run]) == 0
    assert "threshold 0.7 (recorded on" in capsys.readouterr().out
    objects = read_dataset(calibrated["cell"], "obj")
    np.testing.assert_array_equal(objects > 0, read_dataset(calibrated["cell"], segmentation) > 0)
    # --threshold overrides
    argv = ["segment", cell, "-d", probabilities, "--out-dataset", "seg", "--threshold", "0.3"]
    assert main([*argv, *run]) == 0
    assert "recorded" not in capsys.readouterr().out
    np.testing.assert_array_equal(
        read_dataset(calibrated["cell"], "seg"),
        read_dataset(calibrated["cell"], calibrated["given"].entries[0].datasets[2]),
    )


def test_probabilities_without_a_threshold(tmp_path, capsys):
    container = tmp_path / "c.zarr"
    p = create_array(
        container, "p", (8, 16, 16), (5, 5, 5), attrs={"value": "probability * 255, rounded"}
    )
    p[p.roi] = quantise(np.linspace(0, 1, 8 * 16 * 16).reshape(8, 16, 16))
    # instances refuses to make one object of every p > 0 voxel
    argv = ["instances", str(container), "-d", "p", "--out-dataset", "obj", "--workers", "0"]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"incasem instances: error: {container}/p holds probabilities but records no threshold: "
        "pass --threshold (e.g. --threshold 0.5), or --class-id for a label dataset"
    )
    assert not (container / "obj").exists()
    # segment falls back to 0.5 and says so
    argv = ["segment", str(container), "-d", "p", "--out-dataset", "s", "--workers", "0"]
    assert main([*argv, "--no-progress"]) == 0
    assert f"threshold 0.5 (the default; {container}/p records none" in capsys.readouterr().out
    np.testing.assert_array_equal(open_array(container, "s")[:], p[p.roi] >= 128)
