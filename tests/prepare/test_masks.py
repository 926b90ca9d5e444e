"""Cell masks and metric exclusion zones: exact widths, exact blockwise results, defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from incasem.cli import metric_mask as metric_mask_cli
from incasem.io import create_array, open_array
from incasem.prepare import masks

SHAPE = (40, 44, 48)


def _labels_with_cubes(tmp_path: Path) -> tuple[Path, np.ndarray]:
    labels = np.zeros(SHAPE, np.uint32)
    labels[10:26, 12:30, 14:34] = 7  # inside the volume
    labels[30:40, 0:8, 40:48] = 3  # touching three faces of the volume
    container = tmp_path / "cell.zarr"
    array = create_array(
        container, "volumes/labels/mito", SHAPE, (8, 4, 4), (80, 0, 40), np.uint32, chunks=(8, 8, 8)
    )
    array[array.roi] = labels
    return container, labels


def _expected_band(inwards: int, outwards: int) -> np.ndarray:
    """City-block band around the two boxes, computed from distances instead of morphology."""
    grid = np.indices(SHAPE)
    band = np.zeros(SHAPE, bool)
    for lo, hi in (((10, 12, 14), (26, 30, 34)), ((30, 0, 40), (40, 8, 48))):
        outside = sum(
            np.maximum(0, np.maximum(a - g, g - (b - 1)))
            for g, a, b in zip(grid, lo, hi, strict=True)
        )
        # Distance to the box's faces that lie inside the volume (the volume's faces do not count).
        depth = np.min(
            [
                np.where(a > 0, g - a, np.inf) if side == 0 else np.where(b < s, b - 1 - g, np.inf)
                for g, a, b, s in zip(grid, lo, hi, SHAPE, strict=True)
                for side in (0, 1)
            ],
            axis=0,
        )
        inside = outside == 0
        band |= (~inside & (outside <= outwards)) | (inside & (depth < inwards))
    return band


@pytest.mark.parametrize(("inwards", "outwards"), [(4, 4), (1, 3), (0, 2)])
def test_metric_mask_band_has_exact_widths_blockwise(
    tmp_path: Path, monkeypatch, inwards, outwards
):
    container, _ = _labels_with_cubes(tmp_path)
    monkeypatch.setattr(masks, "_BLOCK_EDGE", 16)  # 3 x 3 x 3 blocks cutting through the boxes
    masks.create_metric_mask(
        container, "volumes/labels/mito", "volumes/metric_masks/mito", inwards, outwards,
        num_workers=0, progress=False,
    )  # fmt: skip
    out = open_array(container, "volumes/metric_masks/mito")
    assert out.roi.offset == (80, 0, 40) and out.voxel_size == (8, 4, 4) and out.dtype == np.uint8
    expected = np.where(_expected_band(inwards, outwards), 0, 255)
    np.testing.assert_array_equal(out[out.roi], expected)


def test_foreground_mask_blockwise_equals_one_block(tmp_path: Path, rng, monkeypatch):
    z, y, x = np.indices(SHAPE)
    cell = (z - 20) ** 2 + (y - 22) ** 2 + (x - 30) ** 2 < 22**2
    raw = np.where(cell, 120, 230) + rng.normal(0, 30, SHAPE)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    raw[0, 0, :4] = [2, 3, 179, 180]  # the bounds are exclusive
    container = tmp_path / "cell.zarr"
    array = create_array(container, "volumes/raw", SHAPE, (5, 5, 5), chunks=(8, 8, 8))
    array[array.roi] = raw
    monkeypatch.setattr(masks, "_BLOCK_EDGE", 16)  # 3 x 3 x 3 blocks of 16 voxels, context 10
    masks.create_foreground_mask(container, "volumes/raw", num_workers=0, progress=False)
    got = open_array(container, "volumes/mask")[array.roi]
    expected = masks.foreground_from_values(raw)
    np.testing.assert_array_equal(got, np.where(expected, 255, 0))
    assert 0.2 < expected.mean() < 0.8
    plain = masks.foreground_from_values(raw, opening_radius=0, closing_radius=0)
    np.testing.assert_array_equal(plain[0, 0, :4], [False, True, True, False])


def test_metric_mask_cli_defaults_per_organelle(tmp_path: Path, cli, error_line):
    container, _ = _labels_with_cubes(tmp_path)
    code, out, _ = cli(
        "metric-mask", container, "-d", "volumes/labels/mito", "--organelle", "mito", "--workers", 0
    )
    assert code == 0 and "excluding 4 voxels inwards, 4 outwards" in out
    attrs = zarr.open(str(container), mode="r")["volumes/metric_masks/mito"].attrs
    assert attrs["incasem_metric_mask"]["exclude_inwards_voxels"] == 4
    code, _, err = cli("metric-mask", container, "-d", "volumes/labels/mito", "--workers", 0)
    assert code == 2 and "give --organelle or both --exclude-inwards" in error_line(err)
    code, _, err = cli(
        "metric-mask",
        container,
        "-d",
        "volumes/labels/mito",
        "--organelle",
        "er",
        "--workers",
        0,
        "--out-dataset",
        "volumes/metric_masks/mito",
    )
    assert code == 2 and "already exists; pass --overwrite" in error_line(err)


def test_help_lists_the_library_defaults():
    listed = ", ".join(f"{k} {i}/{o}" for k, (i, o) in masks.EXCLUSION_DEFAULTS.items())
    assert metric_mask_cli._DEFAULTS_HELP == listed
