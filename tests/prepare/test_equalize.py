"""CLAHE: the same numbers as scikit-image, and blockwise results identical to one block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage.exposure import equalize_adapthist

from incasem.io import create_array, open_array
from incasem.prepare import equalize as clahe


def _raw(rng, shape) -> np.ndarray:
    gradient = 60 * np.linspace(0, 1, shape[0])[:, None, None]
    data = np.clip(rng.normal(120, 40, shape) + gradient, 0, 255).astype(np.uint8)
    data.flat[0], data.flat[-1] = 0, 255  # spans the dtype, as scikit-image then scales alike
    return data


@pytest.mark.parametrize(
    ("shape", "kernel"), [((40, 50, 60), 16), ((33, 47, 29), (8, 16, 10)), ((64, 64, 64), 32)]
)
def test_equals_scikit_image_up_to_its_output_stretch(rng, shape, kernel):
    from skimage.exposure import rescale_intensity
    from skimage.exposure._adapthist import _clahe

    data = _raw(rng, shape)
    ours = clahe.equalize_array(data, kernel, clip_limit=0.02)
    assert ours.dtype == np.uint8 and ours.shape == shape
    # scikit-image's algorithm on the same 14-bit input, before its output stretch: identical.
    kernel3 = [kernel] * 3 if isinstance(kernel, int) else list(kernel)
    levels = np.round(rescale_intensity(data.astype(np.uint16) * 257, out_range=(0, 2**14 - 1)))
    inner = _clahe(levels.astype(np.uint16), kernel3, 0.02, 256)
    np.testing.assert_array_equal(ours, np.round(inner * (255 / (2**14 - 1))).astype(np.uint8))
    # Its public function stretches the output by the output's own min and max; we scale the
    # fixed range instead, so values may differ by one gray level.
    theirs = equalize_adapthist(data, kernel_size=kernel, clip_limit=0.02)
    assert np.abs(ours.astype(int) - np.round(theirs * 255).astype(int)).max() <= 1


def test_blockwise_in_workers_equals_one_block(tmp_path: Path, rng):
    data = _raw(rng, (72, 80, 96))
    container = tmp_path / "cell.zarr"
    raw = create_array(
        container, "volumes/raw", data.shape, (10, 5, 5), (100, 50, 0), chunks=(16, 16, 32)
    )
    raw[raw.roi] = data
    # 5 x 5 x 3 pass-2 blocks, 2 x 2 x 2 tiles
    path = clahe.equalize(
        container, "volumes/raw", kernel_size=24, num_workers=2, progress=False, block_edge=16
    )
    assert path == f"{container}/volumes/raw_equalized_0.02"
    out = open_array(container, "volumes/raw_equalized_0.02")
    assert out.roi == raw.roi and out.voxel_size == raw.voxel_size and out.dtype == np.uint8
    assert out.chunk_shape == (16, 16, 32)
    np.testing.assert_array_equal(out[out.roi], clahe.equalize_array(data, 24, 0.02))
    attrs = zarr.open(str(container), mode="r")["volumes/raw_equalized_0.02"].attrs["incasem_clahe"]
    assert attrs["kernel_size_voxels"] == [24, 24, 24] and attrs["clip_limit"] == 0.02


def test_one_large_block_equals_many_small_ones(tmp_path: Path, rng):
    data = (_raw(rng, (30, 40, 50)).astype(np.uint16) * 257).astype(np.uint16)
    container = tmp_path / "cell.zarr"
    raw = create_array(container, "raw", data.shape, (1, 1, 1), dtype=np.uint16, chunks=(8, 8, 8))
    raw[raw.roi] = data
    results = []
    for edge, name in ((16, "small"), (64, "large")):
        clahe.equalize(
            container, "raw", name, kernel_size=(6, 10, 12), num_workers=0, progress=False,
            block_edge=edge,
        )  # fmt: skip
        results.append(open_array(container, name)[raw.roi])
    np.testing.assert_array_equal(results[0], results[1])


def test_cli_refuses_float_data(tmp_path: Path, cli, error_line):
    create_array(tmp_path / "c.zarr", "volumes/raw", (4, 4, 4), (1, 1, 1), dtype=np.float32)
    code, _, err = cli("equalize", tmp_path / "c.zarr", "--workers", 0)
    assert code == 2
    assert error_line(err).endswith("CLAHE needs uint8 or uint16 raw data, not float32")


def test_cli_no_progress_writes_no_bar(tmp_path: Path, cli, rng):
    raw = create_array(tmp_path / "c.zarr", "volumes/raw", (8, 16, 16), (1, 1, 1))
    raw[raw.roi] = _raw(rng, (8, 16, 16))
    code, out, err = cli("equalize", tmp_path / "c.zarr", "--workers", 0, "--no-progress",
                         "--kernel-size", 8)  # fmt: skip
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'c.zarr'}/volumes/raw_equalized_0.02"
    assert "%|" not in err  # no progress bar
