"""A dataset whose metadata claims 10^5 voxels per axis, with chunks only in one corner.

Nothing stops metadata from claiming that much. Plans sized by it are refused before anything
is allocated or written, in one line that names the dataset (`incasem.io.budget`), and reading
a small ROI of it costs what the ROI costs (`incasem.io.arrays.ZarrArray`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from funlib.geometry import Roi

from incasem.cli.main import main as incasem_main
from incasem.io import create_array, open_array

from .conftest import file_tree, write_checkpoint

HUGE = (100_000,) * 3


def write_huge(path: Path, voxel_size=(8, 4, 4)) -> Path:
    """A uint8 raw of 10^15 voxels (metadata only) with one 64³ chunk written in the corner."""
    create_array(path, "volumes/raw", HUGE, voxel_size, dtype=np.uint8, chunks=(64, 64, 64))
    corner = np.random.default_rng(0).integers(0, 255, (64, 64, 64), dtype=np.uint8)
    zarr.open(str(path), mode="r+")["volumes/raw"][:64, :64, :64] = corner
    return path


def test_predict_refuses_a_plan_larger_than_the_disk(tmp_path, capsys):
    huge = write_huge(tmp_path / "huge.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2")
    before = file_tree(tmp_path)
    code = incasem_main(
        ["predict", "--checkpoint", str(checkpoint), "--input", str(huge), "--device", "cpu"]
    )
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"incasem predict: error: predict {huge}/volumes/raw: the output ")
    assert "(uncompressed)" in line and "PB" in line and "free" in line
    assert file_tree(tmp_path) == before  # no prediction group, no staging, no logs


def test_a_small_roi_of_a_huge_dataset_reads_only_its_chunks(tmp_path):
    huge = open_array(write_huge(tmp_path / "huge.zarr"), "volumes/raw")
    corner = huge[Roi((0, 0, 0), (64 * 8, 64 * 4, 64 * 4))]
    # funlib's dask view would slice a graph of 4·10^9 chunks here and never return
    assert corner.shape == (64, 64, 64) and corner.any()
