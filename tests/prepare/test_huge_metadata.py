"""``incasem equalize`` on a dataset whose metadata claims 10^5 voxels per axis: refused before
anything is written, in one line naming the input, and no staging dataset is left behind."""

from __future__ import annotations

import numpy as np
import zarr

from incasem.cli.main import main as incasem_main
from incasem.io import create_array


def test_equalize_refuses_a_plan_larger_than_the_disk(tmp_path, capsys):
    huge = tmp_path / "huge.zarr"
    create_array(huge, "volumes/raw", (100_000,) * 3, (5, 5, 5), chunks=(64, 64, 64))
    zarr.open(str(huge), mode="r+")["volumes/raw"][:64, :64, :64] = np.full((64,) * 3, 9, np.uint8)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert incasem_main(["equalize", str(huge)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"incasem equalize: error: equalize {huge}/volumes/raw: the output ")
    assert "PB (uncompressed)" in line
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no .incomplete dataset


def test_equalize_names_the_input_not_its_staging_dataset(tmp_path, capsys):
    container = tmp_path / "empty.zarr"
    data = zarr.open_group(str(container), mode="w").create_dataset(
        "volumes/raw", shape=(0, 64, 64), chunks=(64, 64, 64), dtype=np.uint8
    )
    data.attrs.update({"resolution": [5, 5, 5], "offset": [0, 0, 0]})
    assert incasem_main(["equalize", str(container)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"incasem equalize: error: {container}/volumes/raw: shape [0, 64, 64] has an axis of "
        "length 0 (no voxels)"
    )
    assert sorted(p.name for p in (container / "volumes").iterdir()) == [".zgroup", "raw"]


def test_reading_a_roi_larger_than_memory_is_refused_in_one_line(tmp_path):
    from funlib.geometry import Roi

    from incasem.errors import IncasemError
    from incasem.io import open_array
    from incasem.io.arrays import read_padded

    huge = tmp_path / "huge.zarr"
    create_array(huge, "volumes/raw", (100_000,) * 3, (5, 5, 5), chunks=(64, 64, 64))
    array = open_array(huge, "volumes/raw")
    try:
        read_padded(array, Roi((0, 0, 0), (500_000,) * 3))
    except IncasemError as error:
        message = str(error)
    assert (
        message.startswith(f"{huge} ROI ") and "[100000, 100000, 100000] voxels of uint8" in message
    )
    assert "would need 1 PB of memory, more than the limit of" in message and "\n" not in message
