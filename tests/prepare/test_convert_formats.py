"""Import from HDF5 (ilastik), N5 (OpenOrganelle/COSEM) and OME-Zarr with voxel size and offset
carried over, and from plain zarr arrays."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from incasem.io import open_array


def test_ilastik_hdf5_export(tmp_path: Path, cli, rng):
    labels = rng.integers(0, 3, (6, 7, 8), dtype=np.uint8)
    axistags = {"axes": [{"key": k, "typeFlags": 2} for k in "zyx"] + [{"key": "c"}]}
    with h5py.File(tmp_path / "export.h5", "w") as f:
        dataset = f.create_dataset("exported_data", data=labels[..., None], chunks=(2, 7, 8, 1))
        dataset.attrs["axistags"] = json.dumps(axistags)
    code, out, _ = cli(
        "convert", "h5-to-zarr", tmp_path / "export.h5", "-o", tmp_path / "c.zarr",
        "-d", "volumes/labels/er", "--resolution", 5, 4, 4, "--offset", 1, 0, 2,
        "--dtype", "uint32", "--workers", 0,
    )  # fmt: skip
    assert code == 0, out
    got = open_array(tmp_path / "c.zarr", "volumes/labels/er")
    assert got.dtype == np.uint32 and got.roi.offset == (5, 0, 8) and got.voxel_size == (5, 4, 4)
    np.testing.assert_array_equal(got[got.roi], labels)


def test_hdf5_channel_first_with_explicit_axes(tmp_path: Path, cli, rng, error_line):
    data = rng.random((2, 4, 5, 6)).astype(np.float32)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["probabilities"] = data
    args = ["convert", "h5-to-zarr", tmp_path / "p.h5", "--h5-dataset", "probabilities"]
    args += ["-o", tmp_path / "c.zarr", "-d", "p", "--resolution", 1, 1, 1, "--workers", 0]
    code, _, err = cli(*args, "--axes", "czyx")
    assert code == 2 and "axis 'c' has 2 entries; pass --channel N" in error_line(err)
    assert cli(*args, "--axes", "czyx", "--channel", 1)[0] == 0
    got = open_array(tmp_path / "c.zarr", "p")
    np.testing.assert_array_equal(got[got.roi], data[1])
    code, _, err = cli(*args, "--h5-dataset", "nope", "--overwrite")
    assert code == 2 and "no dataset 'nope' (datasets in this file: probabilities)" in err


def _cosem_n5(path: Path, s0: np.ndarray) -> None:
    """An OpenOrganelle-style N5 multiscale group em/fibsem-uint8 with s0 and s1."""
    root = zarr.open_group(zarr.N5Store(str(path)), mode="w")
    group = root.create_group("em/fibsem-uint8")
    entries = []
    for level, data in enumerate((s0, s0[::2, ::2, ::2])):
        scale = [5.0 * 2**level, 4.0 * 2**level, 4.0 * 2**level]
        translate = [100.0 * 2**level, 0.0, 40.0 * 2**level]
        transform = {"axes": ["z", "y", "x"], "scale": scale, "translate": translate,
                     "units": ["nm", "nm", "nm"]}  # fmt: skip
        array = group.create_dataset(f"s{level}", data=data, chunks=(4, 8, 8))
        array.attrs["transform"] = transform
        array.attrs["pixelResolution"] = {"dimensions": scale[::-1], "unit": "nm"}
        entries.append({"path": f"s{level}", "transform": transform})
    group.attrs["multiscales"] = [{"datasets": entries, "name": "fibsem-uint8"}]


@pytest.mark.filterwarnings("ignore:The N5Store is deprecated:FutureWarning")
def test_openorganelle_n5_level_with_placement(tmp_path: Path, cli, rng):
    s0 = rng.integers(0, 255, (8, 16, 24), dtype=np.uint8)
    _cosem_n5(tmp_path / "jrc_cell.n5", s0)
    base = [
        "convert",
        "n5-to-zarr",
        tmp_path / "jrc_cell.n5",
        "--source-dataset",
        "em/fibsem-uint8",
    ]
    base += ["-o", tmp_path / "c.zarr", "--workers", 0]
    assert cli(*base, "-d", "raw_s0")[0] == 0
    got = open_array(tmp_path / "c.zarr", "raw_s0")
    assert got.voxel_size == (5, 4, 4) and got.roi.offset == (100, 0, 40)
    np.testing.assert_array_equal(got[got.roi], s0)
    assert cli(*base, "-d", "raw_s1", "--scale", "s1")[0] == 0
    coarse = open_array(tmp_path / "c.zarr", "raw_s1")
    assert coarse.voxel_size == (10, 8, 8) and coarse.roi.offset == (200, 0, 80)
    np.testing.assert_array_equal(coarse[coarse.roi], s0[::2, ::2, ::2])


@pytest.mark.filterwarnings("ignore:The N5Store is deprecated:FutureWarning")
def test_fractional_voxel_sizes_are_rounded_with_the_exact_value_kept(tmp_path: Path, cli, rng):
    path = tmp_path / "a.n5"
    root = zarr.open_group(zarr.N5Store(str(path)), mode="w")
    array = root.create_dataset("raw", data=rng.integers(0, 9, (4, 5, 6), dtype=np.uint16))
    array.attrs["pixelResolution"] = {"dimensions": [4.0, 4.0, 3.24], "unit": "nm"}
    base = ["convert", "n5-to-zarr", path, "--source-dataset", "raw", "-o", tmp_path / "c.zarr"]
    base += ["--workers", 0, "--dtype", "uint8"]
    code, out, _ = cli(*base, "-d", "raw")
    assert code == 0
    assert (
        f"{path}/raw: voxel size [3.24, 4.0, 4.0] nm is recorded as [3, 4, 4] nm (incasem "
        "computes on whole nm); the exact value is kept in the attribute voxel_size_exact_nm"
    ) in out
    got = open_array(tmp_path / "c.zarr", "raw")
    assert got.voxel_size == (3, 4, 4) and got.dtype == np.uint8
    attrs = zarr.open(str(tmp_path / "c.zarr"), mode="r")["raw"].attrs
    assert attrs["voxel_size_exact_nm"] == [3.24, 4.0, 4.0] and attrs["resolution"] == [3, 4, 4]
    # --resolution takes decimals too (a serial-section stack at 40 x 5.9 x 5.9 nm)
    code, out, _ = cli(*base, "-d", "raw2", "--resolution", 40, 5.9, 5.9)
    assert code == 0 and "is recorded as [40, 6, 6] nm" in out
    exact = zarr.open(str(tmp_path / "c.zarr"), mode="r")["raw2"].attrs["voxel_size_exact_nm"]
    assert exact == [40.0, 5.9, 5.9]
    # whole values are recorded as they are, without the extra attribute
    assert cli(*base, "-d", "raw3", "--resolution", 3, 4, 4)[0] == 0
    assert "voxel_size_exact_nm" not in zarr.open(str(tmp_path / "c.zarr"), mode="r")["raw3"].attrs


def test_ome_zarr_multiscale_in_micrometers(tmp_path: Path, cli, rng):
    data = rng.integers(0, 255, (1, 6, 8, 10), dtype=np.uint8)
    root = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    root.create_dataset("0", data=data, chunks=(1, 3, 4, 5))
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "c", "type": "channel"}]
            + [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1, 0.008, 0.004, 0.004]},
                        {"type": "translation", "translation": [0, 0.08, 0, 0.012]},
                    ],
                }
            ],
        }
    ]
    code, out, _ = cli(
        "convert", "ome-zarr-to-zarr", tmp_path / "ome.zarr", "-o", tmp_path / "c.zarr",
        "-d", "volumes/raw", "--workers", 0,
    )  # fmt: skip
    assert code == 0, out
    got = open_array(tmp_path / "c.zarr", "volumes/raw")
    assert got.voxel_size == (8, 4, 4) and got.roi.offset == (80, 0, 12)
    np.testing.assert_array_equal(got[got.roi], data[0])


def test_plain_zarr_array_with_gunpowder_attributes(tmp_path: Path, cli, rng):
    data = rng.integers(0, 2**16, (3, 4, 5), dtype=np.uint16)
    array = zarr.open_group(str(tmp_path / "in.zarr"), mode="w").create_dataset("raw", data=data)
    array.attrs.update({"resolution": [8, 4, 4], "offset": [16, 0, 4]})
    code, _, _ = cli(
        "convert", "n5-to-zarr", tmp_path / "in.zarr", "--source-dataset", "raw",
        "-o", tmp_path / "c.zarr", "-d", "raw", "--workers", 0,
    )  # fmt: skip
    assert code == 0
    got = open_array(tmp_path / "c.zarr", "raw")
    assert got.voxel_size == (8, 4, 4) and got.roi.offset == (16, 0, 4)
    np.testing.assert_array_equal(got[got.roi], data)
