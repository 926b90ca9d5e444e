"""``--precision bfloat16|float16`` runs the network under autocast; ``--workers-per-gpu`` sets
the worker count from the GPUs."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from incasem.errors import IncasemError
from incasem.predict import predict
from incasem.predict.settings import PredictionSettings

from .conftest import read_dataset, write_cell, write_checkpoint

ROI = [10, 10, 0, 32, 48, 48]  # voxels: offset, shape


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision")
    cell = write_cell(folder / "cell.zarr")
    checkpoint = write_checkpoint(folder / "model.pt", "unet3")
    common = {"checkpoint": str(checkpoint), "input": str(cell), "roi": ROI, "device": "cpu",
              "input_size_voxels": [132] * 3, "probabilities": "float32",
              "progress": False}  # fmt: skip
    results = {
        precision: predict(output_group=precision, precision=precision, **common)
        for precision in ("float32", "bfloat16")
    }
    return cell, results


def test_bfloat16_autocast_stays_close_to_float32_and_is_recorded(predictions):
    cell, results = predictions
    p32 = read_dataset(cell, results["float32"].entries[0].datasets[1])
    p16 = read_dataset(cell, results["bfloat16"].entries[0].datasets[1])
    assert p16.dtype == np.float32 and p16.shape == p32.shape == (32, 48, 48)
    difference = np.abs(p16 - p32)
    assert 0 < difference.max() < 0.1  # it did run in 16 bits, and bfloat16 keeps ~3 digits
    assert difference.mean() < 0.01
    group = results["bfloat16"].entries[0].group.rsplit("/", 1)[0]
    record = zarr.open_group(str(cell), mode="r")[group].attrs["incasem_prediction"]
    assert record["settings"]["precision"] == "bfloat16"


def test_precision_and_workers_per_gpu_are_checked_and_resolved(tmp_path):
    common = {"checkpoint": "model.pt", "input": "cell.zarr"}
    with pytest.raises(IncasemError, match="precision must be one of .*'half'"):
        PredictionSettings(precision="half", **common)
    assert PredictionSettings(gpus="0,1", workers_per_gpu=3, **common).num_workers == 6
    assert PredictionSettings(workers_per_gpu=2, **common).num_workers == 2  # one GPU
    with pytest.raises(IncasemError, match="workers_per_gpu must be a positive integer"):
        PredictionSettings(workers_per_gpu=0, **common)
