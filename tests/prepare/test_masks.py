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


def _expected_band(inwards: float, outwards: float, voxel_size=(1, 1, 1)) -> np.ndarray:
    """City-block band around the two boxes, computed from distances instead of morphology;
    distances in the units of ``voxel_size`` (voxels by default, nm with the voxel size)."""
    grid = np.indices(SHAPE)
    band = np.zeros(SHAPE, bool)
    for lo, hi in (((10, 12, 14), (26, 30, 34)), ((30, 0, 40), (40, 8, 48))):
        outside = sum(
            v * np.maximum(0, np.maximum(a - g, g - (b - 1)))
            for g, a, b, v in zip(grid, lo, hi, voxel_size, strict=True)
        )
        # Distance to the nearest voxel beyond the box's faces that lie inside the volume (the
        # volume's faces do not count).
        depth = np.min(
            [
                np.where(a > 0, (g - a + 1) * v, np.inf)
                if side == 0
                else np.where(b < s, (b - g) * v, np.inf)
                for g, a, b, s, v in zip(grid, lo, hi, SHAPE, voxel_size, strict=True)
                for side in (0, 1)
            ],
            axis=0,
        )
        inside = outside == 0
        band |= (~inside & (outside <= outwards)) | (inside & (depth <= inwards))
    return band


@pytest.mark.parametrize(("inwards", "outwards"), [(4, 4), (1, 3), (0, 2)])
def test_metric_mask_band_has_exact_widths_blockwise(tmp_path: Path, inwards, outwards):
    container, _ = _labels_with_cubes(tmp_path)
    masks.create_metric_mask(
        container, "volumes/labels/mito", "volumes/metric_masks/mito", inwards, outwards,
        num_workers=0, progress=False, block_edge=16,  # 3 x 3 x 3 blocks cutting through the boxes
    )  # fmt: skip
    out = open_array(container, "volumes/metric_masks/mito")
    assert out.roi.offset == (80, 0, 40) and out.voxel_size == (8, 4, 4) and out.dtype == np.uint8
    expected = np.where(_expected_band(inwards, outwards), 0, 255)
    np.testing.assert_array_equal(out[out.roi], expected)


@pytest.mark.parametrize(("inwards", "outwards"), [(20, 20), (9, 16), (0, 7.5)])
def test_metric_mask_band_in_nm_on_anisotropic_voxels(tmp_path: Path, inwards, outwards):
    """On 8 x 4 x 4 nm voxels a 20 nm band is 2 voxels deep along z and 5 along y and x."""
    container, _ = _labels_with_cubes(tmp_path)
    masks.create_metric_mask(
        container, "volumes/labels/mito", "volumes/metric_masks/mito", inwards, outwards,
        num_workers=0, progress=False, units="nm", block_edge=16,
    )  # fmt: skip
    out = open_array(container, "volumes/metric_masks/mito")
    expected = np.where(_expected_band(inwards, outwards, (8, 4, 4)), 0, 255)
    np.testing.assert_array_equal(out[out.roi], expected)
    attrs = zarr.open(str(container), mode="r")["volumes/metric_masks/mito"].attrs
    assert attrs["incasem_metric_mask"]["exclude_inwards_nm"] == inwards


def test_foreground_mask_blockwise_equals_one_block(tmp_path: Path, rng):
    z, y, x = np.indices(SHAPE)
    cell = (z - 20) ** 2 + (y - 22) ** 2 + (x - 30) ** 2 < 22**2
    raw = np.where(cell, 120, 230) + rng.normal(0, 30, SHAPE)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    raw[0, 0, :4] = [2, 3, 179, 180]  # the bounds are exclusive
    container = tmp_path / "cell.zarr"
    array = create_array(container, "volumes/raw", SHAPE, (5, 5, 5), chunks=(8, 8, 8))
    array[array.roi] = raw
    # 3 x 3 x 3 blocks of 16 voxels, context 10
    masks.create_foreground_mask(
        container, "volumes/raw", num_workers=0, progress=False, block_edge=16
    )
    got = open_array(container, "volumes/mask")[array.roi]
    expected = masks.foreground_from_values(raw)
    np.testing.assert_array_equal(got, np.where(expected, 255, 0))
    assert 0.2 < expected.mean() < 0.8
    plain = masks.foreground_from_values(raw, 2, opening_radius=0, closing_radius=0)
    np.testing.assert_array_equal(plain[0, 0, :4], [False, True, True, False])


def test_mask_keeps_the_darkest_voxels_unless_told(tmp_path: Path, cli):
    """``incasem mask --max 256`` keeps every voxel of uint8 data: no lower bound unless --min
    sets one (6a96a73 kept its default of 2 and cut the darkest membrane pixels, 0 to 2, out of
    loss and metrics)."""
    raw = np.full(SHAPE, 120, np.uint8)
    raw[10:30, 20, :] = 0  # a membrane, one voxel thick, at the darkest gray value
    raw[10:30, 30, :] = 1
    raw[10:30, 40, :] = 255
    container = tmp_path / "tem.zarr"
    array = create_array(container, "volumes/raw", SHAPE, (50, 5, 5), chunks=(16, 16, 16))
    array[array.roi] = raw
    code, out, _ = cli("mask", container, "--max", 256, "--workers", 0)
    assert code == 0 and "keeps 100.0 % of the voxels" in out
    assert "outside (-inf, 256)" in out
    mask = open_array(container, "volumes/mask")
    assert (mask[mask.roi] == 255).all()
    code, _, _ = cli("mask", container, "--min", 2, "--max", 256, "--workers", 0,
                     "--out-dataset", "margin_mask", "--closing-radius", 0)  # fmt: skip
    assert code == 0
    told = open_array(container, "margin_mask")
    assert (told[told.roi][10:30, 20, :] == 0).all()  # the user asked for > 2


def test_metric_mask_cli_defaults_per_organelle(tmp_path: Path, cli, error_line):
    container, _ = _labels_with_cubes(tmp_path)
    code, out, _ = cli(
        "metric-mask", container, "-d", "volumes/labels/mito", "--organelle", "mito", "--workers", 0
    )
    assert code == 0 and "excluding 20 nm inwards, 20 nm outwards" in out
    attrs = zarr.open(str(container), mode="r")["volumes/metric_masks/mito"].attrs
    assert attrs["incasem_metric_mask"]["exclude_inwards_nm"] == 20
    got = open_array(container, "volumes/metric_masks/mito")
    expected = np.where(_expected_band(20, 20, (8, 4, 4)), 0, 255)
    np.testing.assert_array_equal(got[got.roi], expected)
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


def test_mask_says_what_it_keeps_and_warns_when_bounds_do_not_fit(tmp_path: Path, cli):
    """Tissue without resin: the default bounds (-inf, 180) cut out its bright half; mask says
    so."""
    container = tmp_path / "cell.zarr"
    raw = np.zeros(SHAPE, np.uint8)
    raw[:, :, :24] = 100  # tissue
    raw[:, :, 24:] = 200  # bright: resin for the defaults, or bright tissue
    array = create_array(container, "volumes/raw", SHAPE, (8, 4, 4), (0, 0, 0), np.uint8)
    array[array.roi] = raw
    code, out, err = cli("mask", container, "--workers", 0)
    assert code == 0
    assert "volumes/mask keeps 50.0 % of the voxels (sampled); it excludes gray values outside " \
        "(-inf, 180) after opening and closing" in out  # fmt: skip
    assert err.strip().startswith(
        f"warning: {container}/volumes/mask excludes 50 % of the volume: the bounds (-inf, 180) "
        "may not suit this data"
    )
    code, out, err = cli("mask", container, "--workers", 0, "--max", 256, "--overwrite")
    assert code == 0 and "keeps 100.0 % of the voxels" in out and "warning" not in err
