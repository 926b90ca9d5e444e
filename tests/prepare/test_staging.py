"""Staged outputs: a dataset gets its name only when complete; a failure changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.io import create_array, list_datasets, open_array
from incasem.io.staging import staged_dataset


def test_the_dataset_appears_only_when_complete(tmp_path: Path):
    container = tmp_path / "c.zarr"
    with staged_dataset(container, "volumes/mask", (2, 3, 4), (5, 5, 5), (10, 0, 0)) as staged:
        assert staged.staging_name.startswith("volumes/.mask.incomplete-")
        # The staging dataset exists but is hidden from listings (and so from users).
        assert open_array(container, staged.staging_name).shape == (2, 3, 4)
        assert list_datasets(container) == []
        staged.array[staged.array.roi] = np.ones((2, 3, 4), np.uint8)
    assert list_datasets(container) == ["volumes/mask"]
    mask = open_array(container, "volumes/mask")
    assert mask.roi.offset == (10, 0, 0) and (mask[mask.roi] == 1).all()


def test_a_failed_overwrite_keeps_the_old_dataset(tmp_path: Path):
    container = tmp_path / "c.zarr"
    old = create_array(container, "volumes/mask", (2, 2, 2), (1, 1, 1))
    old[old.roi] = np.full((2, 2, 2), 9, np.uint8)
    with pytest.raises(RuntimeError, match="worker died"):
        with staged_dataset(container, "volumes/mask", (4, 4, 4), (1, 1, 1), overwrite=True):
            raise RuntimeError("worker died")
    assert list_datasets(container) == ["volumes/mask"]
    assert (open_array(container, "volumes/mask")[old.roi] == 9).all()
    with staged_dataset(container, "volumes/mask", (4, 4, 4), (1, 1, 1), overwrite=True):
        pass
    assert open_array(container, "volumes/mask").shape == (4, 4, 4)
    assert list_datasets(container) == ["volumes/mask"]


def test_n5_outputs_are_refused(tmp_path: Path):
    with pytest.raises(IncasemError, match="writes zarr containers only"):
        with staged_dataset(tmp_path / "c.n5", "raw", (1, 1, 1), (1, 1, 1)):
            pass
    assert not (tmp_path / "c.n5").exists()
