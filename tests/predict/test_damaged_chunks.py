"""A damaged copy of the raw data is never predicted silently: a deleted chunk (which zarr
would read as zeros) and a corrupt one both fail with the dataset and chunk named."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.arrays import read_checked
from incasem.predict import PredictionFailed, predict

from .conftest import write_cell, write_checkpoint


@pytest.fixture
def damaged(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr")  # raw chunks of 32 voxels, 48 x 56 x 64
    (cell / "volumes" / "raw" / "1.1.0").unlink()
    (cell / "volumes" / "raw" / "0.0.1").write_bytes(b"not a blosc frame" * 10)
    return cell


def test_missing_and_corrupt_chunks_are_named(damaged, monkeypatch):
    raw = open_array(damaged, "volumes/raw")
    begin = raw.roi.begin
    with pytest.raises(IncasemError) as error:
        read_checked(raw, raw.roi)
    assert str(error.value) == (
        f"{damaged}/volumes/raw: chunk 1.1.0 is missing (zarr would read it as zeros; the copy "
        "is incomplete or damaged): restore it or convert the data again, or set "
        "INCASEM_ALLOW_MISSING_CHUNKS=1 if its missing chunks are meant as zeros"
    )
    corner = Roi(begin, (8 * 8, 4 * 8, 4 * 40))  # touches chunks 0.0.0 and 0.0.1 only
    with pytest.raises(IncasemError, match=r"volumes/raw: chunk 0\.0\.1 cannot be read \("):
        read_checked(raw, corner)
    intact = Roi(begin, (8 * 8, 4 * 8, 4 * 8))
    assert read_checked(raw, intact).shape == (8, 8, 8)
    assert np.array_equal(read_checked(raw, intact), raw[intact])
    # data from tools that omit all-zero chunks: missing chunks read as zeros when allowed
    monkeypatch.setenv("INCASEM_ALLOW_MISSING_CHUNKS", "1")
    missing = Roi(begin + Coordinate(8 * 32, 4 * 32, 0), (8 * 8, 4 * 8, 4 * 8))  # chunk 1.1.0
    assert read_checked(raw, missing).max() == 0


def test_incasem_stores_all_zero_chunks(tmp_path):
    # so that a missing chunk always means a damaged copy
    from incasem.io import create_array

    array = create_array(tmp_path / "c.zarr", "zeros", (64, 64, 64), (1, 1, 1), chunks=(32,) * 3)
    array[array.roi] = np.zeros((64, 64, 64), np.uint8)
    assert len(list((tmp_path / "c.zarr" / "zeros").glob("*.*.*"))) == 8


def test_prediction_fails_on_a_missing_chunk(damaged, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "model.pt")
    with pytest.raises(PredictionFailed) as error:
        predict(checkpoint=str(checkpoint), input=str(damaged), input_size_voxels=[132] * 3,
                device="cpu", progress=False)  # fmt: skip
    message = str(error.value)
    assert "\n" not in message and "volumes/raw: chunk" in message
    assert "is missing" in message or "cannot be read" in message
