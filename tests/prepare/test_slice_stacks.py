"""Slice stacks: natural section order, every header checked before any pixel is read, regions."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from incasem.errors import IncasemError
from incasem.prepare.stacks import open_slice_stack


def _numbered(write_slices, tmp_path: Path, count: int = 12) -> tuple[Path, np.ndarray]:
    volume = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None], (count, 6, 7))
    return write_slices(tmp_path / "stack", volume), volume


def test_sections_are_ordered_by_number_not_by_name(write_slices, tmp_path: Path):
    directory, volume = _numbered(write_slices, tmp_path)
    (directory / "notes.txt").write_text("not an image")
    stack = open_slice_stack(directory)
    assert [Path(p).name for p, _ in stack.slices[:3]] == ["s_1.tif", "s_2.tif", "s_3.tif"]
    assert stack.shape == (12, 6, 7) and stack.dtype == np.uint8
    np.testing.assert_array_equal(stack.read(slice(0, 12), slice(0, 6), slice(0, 7)), volume)


def test_region_reads_return_the_requested_box(write_slices, tmp_path: Path, rng):
    volume = rng.integers(0, 2**16, (5, 40, 50), dtype=np.uint16)
    stack = open_slice_stack(write_slices(tmp_path / "stack", volume))
    box = (slice(1, 4), slice(7, 30), slice(11, 12))
    np.testing.assert_array_equal(stack.read(*box), volume[box])


def test_a_missing_section_is_refused(write_slices, tmp_path: Path):
    directory, _ = _numbered(write_slices, tmp_path)
    (directory / "s_5.tif").unlink()
    (directory / "s_6.tif").unlink()
    with pytest.raises(IncasemError, match=r"section numbers 5 to 6 are missing between s_4.tif"):
        open_slice_stack(directory)


def test_repeated_section_numbers_are_refused(write_slices, tmp_path: Path):
    directory, volume = _numbered(write_slices, tmp_path, 3)
    tifffile.imwrite(directory / "s_02.tif", volume[1])
    with pytest.raises(IncasemError, match="both have section number 2"):
        open_slice_stack(directory)


@pytest.mark.parametrize(
    ("odd", "message"),
    [
        (np.zeros((6, 8), np.uint8), r"s_3.tif is \[6, 8\] uint8 but s_1.tif is \[6, 7\] uint8"),
        (np.zeros((6, 7), np.uint16), r"s_3.tif is \[6, 7\] uint16 but s_1.tif is \[6, 7\] uint8"),
    ],
)
def test_slices_of_another_size_or_dtype_are_refused(write_slices, tmp_path: Path, odd, message):
    directory, _ = _numbered(write_slices, tmp_path, 4)
    tifffile.imwrite(directory / "s_3.tif", odd)
    with pytest.raises(IncasemError, match=message):
        open_slice_stack(directory)


def test_no_matching_files_and_missing_paths_are_refused(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("")
    with pytest.raises(IncasemError, match=r"no files match .* \(1 other files\)"):
        open_slice_stack(tmp_path / "empty")
    with pytest.raises(IncasemError, match="no such file or directory"):
        open_slice_stack(tmp_path / "absent")
    with pytest.raises(IncasemError, match="needs a group capturing"):
        open_slice_stack(tmp_path / "empty", regex=r"\d+")


def test_a_custom_regex_picks_the_number_and_the_files(write_slices, tmp_path: Path):
    volume = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    directory = write_slices(tmp_path / "stack", volume, name="run7_z{}_final.tif", start=10)
    tifffile.imwrite(directory / "overview.tif", np.zeros((9, 9), np.uint8))
    stack = open_slice_stack(directory, regex=r"_z(?P<z>\d+)_")
    assert stack.shape == (3, 4, 5)
    np.testing.assert_array_equal(stack.read(slice(0, 3), slice(0, 4), slice(0, 5)), volume)


def test_a_multipage_tiff_is_one_stack(tmp_path: Path, rng):
    volume = rng.integers(0, 255, (6, 9, 11), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", volume)
    stack = open_slice_stack(tmp_path / "stack.tif")
    assert stack.shape == (6, 9, 11)
    np.testing.assert_array_equal(
        stack.read(slice(2, 5), slice(0, 9), slice(3, 8)), volume[2:5, :, 3:8]
    )


def test_png_slices_and_vast_rgb_ids(tmp_path: Path):
    ids = np.array([[0, 1, 256], [65536, 70000, 5]], dtype=np.uint32)
    rgb = np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    directory = tmp_path / "vast"
    directory.mkdir()
    for z in range(3):
        iio.imwrite(directory / f"seg_{z}.png", rgb)
    with pytest.raises(IncasemError, match="pass --rgb gray .* or --rgb id"):
        open_slice_stack(directory)
    stack = open_slice_stack(directory, rgb="id")
    assert stack.dtype == np.uint32
    np.testing.assert_array_equal(stack.read(slice(0, 3), slice(0, 2), slice(0, 3)), [ids] * 3)
    gray = open_slice_stack(directory, rgb="gray").read(slice(0, 1), slice(0, 2), slice(0, 3))
    assert gray.dtype == np.uint8 and gray.shape == (1, 2, 3)


def test_a_truncated_tiff_is_refused_not_shortened(tmp_path: Path, cli, rng):
    # tifffile only logs the pages it cannot find; a conversion used to keep 1 of 8 sections
    tifffile.imwrite(tmp_path / "full.tif", rng.integers(0, 255, (8, 64, 64), dtype=np.uint8))
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    code, _, err = cli("convert", "tiff-to-zarr", tmp_path / "cut.tif", "-o", tmp_path / "o.zarr",
                       "-d", "volumes/raw", "--resolution", 5, 5, 5)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"incasem convert: error: {tmp_path / 'cut.tif'}: damaged TIFF (")
    assert "the file is truncated or corrupt" in err
    assert not (tmp_path / "o.zarr").exists()
