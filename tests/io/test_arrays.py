"""One metadata contract: what incasem writes, gunpowder, funlib.persistence and incasem read
identically; what gunpowder or funlib.persistence wrote, incasem reads right."""

from __future__ import annotations

import json
from pathlib import Path

import gunpowder as gp
import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array, open_ds, prepare_ds

from incasem.errors import IncasemError
from incasem.io import (
    atomic_container,
    create_array,
    list_datasets,
    open_array,
    roi_from_voxels,
    roi_to_voxels,
)

VOXEL_SIZE = (10, 5, 5)
OFFSET = (100, 50, 0)
SHAPE = (12, 16, 20)


def _written_by_incasem(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "c.zarr"
    data = np.arange(np.prod(SHAPE), dtype=np.uint32).reshape(SHAPE)
    array = create_array(path, "volumes/raw", SHAPE, VOXEL_SIZE, OFFSET, dtype=np.uint32)
    array[array.roi] = data
    return path, data


def test_incasem_dataset_read_by_gunpowder(tmp_path):
    path, data = _written_by_incasem(tmp_path)
    key = gp.ArrayKey("RAW")
    source = gp.ZarrSource(
        str(path), {key: "volumes/raw"}, {key: gp.ArraySpec(interpolatable=True)}
    )
    roi = Roi((120, 60, 10), (30, 20, 25))
    request = gp.BatchRequest()
    request[key] = gp.ArraySpec(roi=roi)
    with gp.build(source):
        assert source.spec[key].voxel_size == Coordinate(VOXEL_SIZE)
        assert source.spec[key].roi == Roi(OFFSET, Coordinate(SHAPE) * Coordinate(VOXEL_SIZE))
        batch = source.request_batch(request)
    np.testing.assert_array_equal(batch[key].data, data[2:5, 2:6, 2:7])


def test_incasem_dataset_read_by_funlib_persistence_defaults(tmp_path):
    path, data = _written_by_incasem(tmp_path)
    array = open_ds(str(path / "volumes/raw"))
    assert array.voxel_size == Coordinate(VOXEL_SIZE)
    assert array.offset == Coordinate(OFFSET)
    np.testing.assert_array_equal(array[array.roi], data)


def test_incasem_dataset_read_by_incasem(tmp_path):
    path, data = _written_by_incasem(tmp_path)
    array = open_array(path, "volumes/raw")
    assert array.voxel_size == Coordinate(VOXEL_SIZE)
    assert array.roi == roi_from_voxels((10, 10, 0), SHAPE, VOXEL_SIZE)
    np.testing.assert_array_equal(array[array.roi], data)
    assert zarr.open_group(str(path), mode="r") is not None  # root group exists


def test_gunpowder_written_dataset_read_by_incasem(tmp_path):
    path = tmp_path / "gp.zarr"
    key = gp.ArrayKey("RAW")
    data = np.random.default_rng(1).integers(0, 255, SHAPE, dtype=np.uint8)
    roi = Roi(OFFSET, Coordinate(SHAPE) * Coordinate(VOXEL_SIZE))
    source = gp.ArraySource(key, Array(data, offset=OFFSET, voxel_size=VOXEL_SIZE), True)
    pipeline = source + gp.ZarrWrite({key: "volumes/raw"}, store=str(path))
    request = gp.BatchRequest()
    request[key] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        pipeline.request_batch(request)
    attrs = json.loads((path / "volumes/raw/.zattrs").read_text())
    assert "resolution" in attrs and "voxel_size" not in attrs
    array = open_array(path, "volumes/raw")
    assert array.voxel_size == Coordinate(VOXEL_SIZE)
    assert array.roi == roi
    np.testing.assert_array_equal(array[roi], data)


def test_funlib_written_dataset_read_by_incasem(tmp_path):
    path = tmp_path / "fl.zarr"
    data = np.random.default_rng(2).random(SHAPE).astype(np.float32)
    array = prepare_ds(str(path / "volumes/pred"), SHAPE, offset=OFFSET, voxel_size=VOXEL_SIZE)
    array[array.roi] = data
    attrs = json.loads((path / "volumes/pred/.zattrs").read_text())
    assert "voxel_size" in attrs and "resolution" not in attrs
    ours = open_array(path, "volumes/pred")
    assert ours.voxel_size == Coordinate(VOXEL_SIZE)
    assert ours.offset == Coordinate(OFFSET)
    np.testing.assert_array_equal(ours[ours.roi], data)


def test_n5_attributes_are_reversed(tmp_path):
    path = tmp_path / "c.n5"
    root = zarr.open_group(str(path), mode="w")
    dataset = root.create_dataset("raw", shape=SHAPE, dtype=np.uint8, chunks=(4, 4, 4))
    dataset.attrs.update({"resolution": VOXEL_SIZE[::-1], "offset": OFFSET[::-1]})
    array = open_array(path, "raw")
    assert array.voxel_size == Coordinate(VOXEL_SIZE)
    assert array.offset == Coordinate(OFFSET)
    assert array.shape == SHAPE


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"resolution": [5.5, 5, 5]}, "'resolution' is [5.5, 5, 5], but incasem needs integer nm"),
        ({"resolution": [5, 5, 5], "voxel_size": [1, 1, 1]}, "conflicting voxel sizes"),
        ({"resolution": [5, 5]}, "expected 3 numbers"),
        ({"resolution": [0, 5, 5]}, "must be positive"),
        ({"resolution": [5, 5, 5], "offset": [3, 0, 0]}, "offset [3, 0, 0] nm is not a multiple"),
    ],
)
def test_bad_metadata_gives_clear_error(tmp_path, attrs, message):
    path = tmp_path / "bad.zarr"
    root = zarr.open_group(str(path), mode="w")
    dataset = root.create_dataset("volumes/raw", shape=SHAPE, dtype=np.uint8)
    dataset.attrs.update(attrs)
    with pytest.raises(IncasemError) as error:
        open_array(path, "volumes/raw")
    assert message in str(error.value)
    assert f"{path}/volumes/raw" in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_container_and_dataset_are_named(tmp_path, small_container):
    with pytest.raises(IncasemError, match="no such file or directory"):
        open_array(tmp_path / "nothing.zarr", "volumes/raw")
    with pytest.raises(IncasemError, match=r"no dataset 'volumes/rwa'.*volumes/raw"):
        open_array(small_container, "volumes/rwa")
    assert "volumes/labels/mito" in list_datasets(small_container)


def test_create_refuses_to_overwrite_without_flag(tmp_path):
    path, data = _written_by_incasem(tmp_path)
    with pytest.raises(IncasemError, match="already exists; pass --overwrite"):
        create_array(path, "volumes/raw", SHAPE, VOXEL_SIZE, OFFSET)
    np.testing.assert_array_equal(open_array(path, "volumes/raw")[...], data)
    replaced = create_array(path, "volumes/raw", (4, 4, 4), VOXEL_SIZE, overwrite=True)
    assert replaced.shape == (4, 4, 4)


def test_create_returns_chunks_and_channels(tmp_path):
    path = tmp_path / "c.zarr"
    array = create_array(
        path, "p", (100, 70, 30), (5, 5, 5), num_channels=2, chunks=(40, 40, 40), dtype=np.float32
    )
    assert array.chunk_shape == Coordinate((2, 40, 40, 30))  # clipped to the shape
    assert array.shape == (2, 100, 70, 30)
    assert array.voxel_size == Coordinate((5, 5, 5))
    assert create_array(path, "q", (100, 70, 30), (5, 5, 5)).chunk_shape == (64, 64, 30)


def test_create_rejects_offset_off_grid(tmp_path):
    with pytest.raises(IncasemError, match="not a multiple of the voxel size"):
        create_array(tmp_path / "c.zarr", "raw", SHAPE, VOXEL_SIZE, (1, 0, 0))


def test_roi_conversions_round_trip():
    roi = roi_from_voxels((1, 2, 3), (4, 5, 6), VOXEL_SIZE)
    assert roi == Roi((10, 10, 15), (40, 25, 30))
    offset, shape = roi_to_voxels(roi, VOXEL_SIZE)
    assert tuple(offset) == (1, 2, 3) and tuple(shape) == (4, 5, 6)
    with pytest.raises(IncasemError, match="not aligned"):
        roi_to_voxels(Roi((3, 0, 0), (10, 10, 10)), VOXEL_SIZE)


def test_atomic_container_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError), atomic_container(target) as tmp:
        create_array(tmp, "raw", (4, 4, 4), (1, 1, 1))
        raise RuntimeError("crash while writing")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_container(target) as tmp:
        create_array(tmp, "raw", (4, 4, 4), (1, 1, 1))
    assert open_array(target, "raw").shape == (4, 4, 4)
    with pytest.raises(IncasemError, match="already exists"), atomic_container(target):
        pass
