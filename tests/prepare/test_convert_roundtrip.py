"""``incasem convert tiff-to-zarr`` / ``zarr-to-tiff``: exact round trips, placement metadata,
and bad input refused with one line and nothing damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from incasem.io import create_array, open_array


@pytest.mark.parametrize(("dtype", "workers"), [(np.uint8, 0), (np.uint32, 2)])
def test_tiff_zarr_tiff_round_trip_is_byte_identical(
    tmp_path: Path, cli, rng, write_slices, read_slices, dtype, workers
):
    high = np.iinfo(dtype).max
    volume = rng.integers(0, high, (13, 70, 90), dtype=dtype, endpoint=True)
    stack = write_slices(tmp_path / "in", volume)  # s_1.tif ... s_13.tif, not zero-padded
    container = tmp_path / "cell.zarr"
    code, out, _ = cli(
        "convert", "tiff-to-zarr", stack, "-o", container, "-d", "volumes/raw",
        "--resolution", 10, 5, 4, "--offset", 2, 3, 4, "--chunks", 4, 32, 32,
        "--block-mb", 0.02, "--workers", workers,
    )  # fmt: skip
    assert code == 0, out
    array = open_array(container, "volumes/raw")
    assert array.voxel_size == (10, 5, 4) and array.roi.offset == (20, 15, 16)
    assert array.chunk_shape == (4, 32, 32) and array.dtype == dtype
    assert zarr.open(str(container), mode="r")["volumes/raw"].attrs["resolution"] == [10, 5, 4]

    code, out, _ = cli(
        "convert", "zarr-to-tiff", container, "-d", "volumes/raw", "-o", tmp_path / "out"
    )
    assert code == 0 and "wrote 13 sections" in out
    # named by world z: the dataset starts at section 2 (offset 20 nm, 10 nm sections)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names[:2] == ["section_0002.tif", "section_0003.tif"] and len(names) == 13
    assert names[-1] == "section_0014.tif"
    back = read_slices(tmp_path / "out")
    assert back.dtype == volume.dtype and back.tobytes() == volume.tobytes()


def test_one_call_imports_raw_and_labels(tmp_path: Path, cli, rng, write_slices):
    raw = rng.integers(0, 255, (4, 8, 9), dtype=np.uint8)
    labels = (raw > 128).astype(np.uint8)
    write_slices(tmp_path / "raw", raw)
    write_slices(tmp_path / "labels", labels, name="mask{}.tif", start=0)
    code, _, _ = cli(
        "convert", "tiff-to-zarr", tmp_path / "raw", tmp_path / "labels", "-o", tmp_path / "c.zarr",
        "-d", "volumes/raw", "volumes/labels/mito", "--dtype", "uint8", "uint32",
        "--resolution", 5, 5, 5, "--workers", 0,
    )  # fmt: skip
    assert code == 0
    got = open_array(tmp_path / "c.zarr", "volumes/labels/mito")
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got[got.roi], labels)
    np.testing.assert_array_equal(open_array(tmp_path / "c.zarr", "volumes/raw")[got.roi], raw)


def test_invert_and_uint16_to_uint8(tmp_path: Path, cli, write_slices):
    volume = np.array([[[0, 255, 256, 65535]]], dtype=np.uint16).repeat(2, axis=0)
    write_slices(tmp_path / "in", volume)
    code, _, _ = cli(
        "convert", "tiff-to-zarr", tmp_path / "in", "-o", tmp_path / "c.zarr", "-d", "raw",
        "--resolution", 1, 1, 1, "--dtype", "uint8", "--invert", "--workers", 0,
    )  # fmt: skip
    assert code == 0
    got = open_array(tmp_path / "c.zarr", "raw")
    np.testing.assert_array_equal(got[got.roi][0, 0], [255, 255, 254, 0])


def test_narrowing_that_loses_values_is_refused_with_the_block(
    tmp_path: Path, cli, write_slices, error_line
):
    volume = np.zeros((3, 4, 5), np.uint32)
    volume[2, 1, 1] = 300
    write_slices(tmp_path / "in", volume)
    code, _, err = cli(
        "convert", "tiff-to-zarr", tmp_path / "in", "-o", tmp_path / "c.zarr", "-d", "labels",
        "--resolution", 1, 1, 1, "--dtype", "uint8", "--workers", 0,
    )  # fmt: skip
    assert code == 2
    assert error_line(err).startswith(
        "incasem convert: error: convert-labels: block [0:3, 0:4, 0:5] (voxels): values 0..300 "
        "(uint32) do not fit uint8; choose a wider --dtype (worker logs: "
    )
    assert not (tmp_path / "c.zarr").exists()  # the failed job's new container is removed
    assert (tmp_path / "c.zarr.logs").is_dir()  # its worker logs stay beside it


def test_existing_output_is_refused_and_kept(tmp_path: Path, cli, write_slices, error_line):
    container = tmp_path / "c.zarr"
    old = create_array(container, "volumes/raw", (2, 3, 4), (1, 1, 1))
    old[old.roi] = np.full((2, 3, 4), 7, np.uint8)
    write_slices(tmp_path / "in", np.ones((5, 6, 7), np.uint8))
    args = ["convert", "tiff-to-zarr", tmp_path / "in", "-o", container, "-d", "volumes/raw"]
    args += ["--resolution", 1, 1, 1, "--workers", 0]
    code, _, err = cli(*args)
    assert code == 2
    assert error_line(err) == (
        f"incasem convert: error: {container}/volumes/raw already exists; pass --overwrite to "
        "replace it"
    )
    assert (open_array(container, "volumes/raw")[old.roi] == 7).all()
    code, _, _ = cli(*args, "--overwrite")
    assert code == 0
    replaced = open_array(container, "volumes/raw")
    assert replaced.shape == (5, 6, 7) and (replaced[replaced.roi] == 1).all()


def test_mixed_slice_sizes_write_nothing(tmp_path: Path, cli, write_slices, error_line):
    write_slices(tmp_path / "in", np.ones((3, 6, 7), np.uint8))
    tifffile.imwrite(tmp_path / "in" / "s_4.tif", np.ones((6, 8), np.uint8))
    code, _, err = cli(
        "convert", "tiff-to-zarr", tmp_path / "in", "-o", tmp_path / "c.zarr", "-d", "raw",
        "--resolution", 1, 1, 1,
    )  # fmt: skip
    assert code == 2
    assert error_line(err).startswith("incasem convert: error: s_4.tif is [6, 8] uint8 but")
    assert not (tmp_path / "c.zarr").exists()


def test_no_matching_files_and_input_count_mismatch(tmp_path: Path, cli, error_line):
    (tmp_path / "in").mkdir()
    code, _, err = cli(
        "convert", "tiff-to-zarr", tmp_path / "in", "-o", tmp_path / "c.zarr", "-d", "raw",
        "--resolution", 1, 1, 1,
    )  # fmt: skip
    assert code == 2 and "no files match" in error_line(err)
    code, _, err = cli(
        "convert", "tiff-to-zarr", tmp_path / "in", "-o", tmp_path / "c.zarr", "-d", "a", "b",
        "--resolution", 1, 1, 1,
    )  # fmt: skip
    assert code == 2 and "1 inputs but 2 datasets" in error_line(err)


def test_export_of_an_unknown_dataset_names_the_known_ones(tmp_path: Path, cli, error_line):
    create_array(tmp_path / "c.zarr", "volumes/raw", (2, 3, 4), (1, 1, 1))
    code, _, err = cli(
        "convert", "zarr-to-tiff", tmp_path / "c.zarr", "-d", "raw", "-o", tmp_path / "t"
    )
    assert code == 2
    assert error_line(err) == (
        f"incasem convert: error: {tmp_path / 'c.zarr'}: no dataset 'raw' (datasets in this "
        "container: volumes/raw)"
    )
    assert not (tmp_path / "t").exists()


def test_float_export_keeps_floats_or_scales_probabilities(
    tmp_path: Path, cli, read_slices, error_line
):
    probabilities = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    array = create_array(tmp_path / "c.zarr", "p", (2, 3, 4), (1, 1, 1), dtype=np.float32)
    array[array.roi] = probabilities
    assert (
        cli("convert", "zarr-to-tiff", tmp_path / "c.zarr", "-d", "p", "-o", tmp_path / "f")[0] == 0
    )
    np.testing.assert_array_equal(read_slices(tmp_path / "f"), probabilities)
    args = ["convert", "zarr-to-tiff", tmp_path / "c.zarr", "-d", "p", "-o", tmp_path / "u"]
    assert cli(*args, "--float-to-uint8", "--workers", 0)[0] == 0
    scaled = read_slices(tmp_path / "u")
    assert scaled.dtype == np.uint8
    np.testing.assert_array_equal(scaled, np.round(probabilities * 255).astype(np.uint8))

    array[array.roi] = probabilities * 2
    code, _, err = cli(*args, "--float-to-uint8", "--overwrite", "--workers", 0)
    assert code == 2 and "are not probabilities in [0, 1]" in error_line(err)
    np.testing.assert_array_equal(read_slices(tmp_path / "u"), scaled)  # old export kept


def test_labels_export_binarized(tmp_path: Path, cli, read_slices):
    ids = np.array([[[0, 1, 70000]]], dtype=np.uint32)
    array = create_array(tmp_path / "c.zarr", "l", (1, 1, 3), (1, 1, 1), dtype=np.uint32)
    array[array.roi] = ids
    args = ["convert", "zarr-to-tiff", tmp_path / "c.zarr", "-d", "l", "-o", tmp_path / "b"]
    assert cli(*args, "--binarize", "--workers", 0)[0] == 0
    np.testing.assert_array_equal(read_slices(tmp_path / "b"), [[[0, 255, 255]]])
