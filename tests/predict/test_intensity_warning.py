"""The model card's grey-value histogram and the warning when prediction raw looks different
(plain raw given to a model trained on CLAHE-equalised raw)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from skimage.exposure import equalize_adapthist

from incasem.io import create_array, open_array
from incasem.io.intensity import histogram_distance, percentiles, sample_histogram
from incasem.predict import predict

from .conftest import write_cell, write_checkpoint


def _clahe_copy(cell: Path, target: Path) -> Path:
    raw = open_array(cell, "volumes/raw")
    values = raw[raw.roi]
    equalised = np.stack([equalize_adapthist(plane, clip_limit=0.02) for plane in values])
    array = create_array(target, "volumes/raw", values.shape, raw.voxel_size, raw.roi.offset)
    array[array.roi] = (equalised * 255).astype(np.uint8)
    return target


def test_histograms_sample_cubes_and_measure_distance_in_grey_levels(tmp_path: Path):
    cell = write_cell(tmp_path / "cell.zarr")
    raw = open_array(cell, "volumes/raw")
    counts = sample_histogram(raw, cubes_per_axis=2, edge_voxels=16)
    assert counts.shape == (256,) and counts.sum() == 8 * 16**3
    # the same intensities shifted by 20 levels are 20 levels apart
    band = np.zeros(256, np.int64)
    band[100:140] = 5
    assert abs(histogram_distance(band, np.roll(band, 20)) - 20) < 1e-6
    assert histogram_distance(counts, counts) == 0
    low, median, high = percentiles(counts)
    assert low < median < high and 100 < median < 160  # the cell's raw is noise around 128


def test_prediction_warns_when_raw_differs_from_the_training_raw(tmp_path: Path, caplog):
    cell = write_cell(tmp_path / "cell.zarr")
    trained_on = sample_histogram(open_array(cell, "volumes/raw"))
    checkpoint = write_checkpoint(tmp_path / "model.pt", raw_histogram=trained_on.tolist())
    common = {
        "checkpoint": str(checkpoint),
        "roi": [10, 10, 0, 16, 16, 16],
        "input_size_voxels": [132] * 3,
        "device": "cpu",
        "progress": False,
    }
    with caplog.at_level(logging.WARNING, logger="incasem"):
        predict(input=str(cell), **common)
    assert not [r for r in caplog.records if "grey values" in r.getMessage()]

    equalised = _clahe_copy(cell, tmp_path / "clahe.zarr")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="incasem"):
        predict(input=str(equalised), **common)
    (warning,) = [r.getMessage() for r in caplog.records if "grey values" in r.getMessage()]
    assert f"{equalised}/volumes/raw: its grey values" in warning
    assert "incasem equalize" in warning
