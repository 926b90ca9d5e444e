"""Serial-section TEM at 50 x 4.6 x 4.6 nm: ``convert`` records the exact voxel size beside the
whole-nm grid; every command deriving a dataset carries it over, and ``measure`` computes
lengths, areas and volumes with it and says so. Sphericity stays at or below 1 for objects one
or two sections deep."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from incasem.cli.main import main
from incasem.io import create_array

EXACT = [50.0, 4.6, 4.6]
GRID = [50, 5, 5]


def _run(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _attrs(container: Path, dataset: str) -> dict:
    return zarr.open(str(container), mode="r")[dataset].attrs.asdict()


@pytest.fixture
def sections(tmp_path: Path) -> Path:
    """PNG-like label slices (as TIFF): a 20 x 10 x 10 voxel box (code 2, mitochondrion) and a
    disc one section deep (code 2) beside membrane pixels (code 1), at 50 x 4.6 x 4.6 nm."""
    labels = np.zeros((6, 40, 40), np.uint8)
    labels[1:3, 5:25, 5:15] = 2
    yy, xx = np.mgrid[0:40, 0:40]
    labels[4][(yy - 28) ** 2 + (xx - 28) ** 2 <= 8**2] = 2
    labels[:, 0, :] = 1
    folder = tmp_path / "labels"
    folder.mkdir()
    for z, plane in enumerate(labels):
        tifffile.imwrite(folder / f"s_{z}.tif", plane)
    return folder


def test_relabel_instances_measure_use_the_exact_voxel_size(tmp_path: Path, capsys, sections):
    container = tmp_path / "tem.zarr"
    out = _run(capsys, "convert", "tiff-to-zarr", sections, "-o", container, "-d", "labels",
               "--resolution", *EXACT, "--workers", 0)  # fmt: skip
    assert "is recorded as [50, 5, 5] nm" in out
    _run(capsys, "relabel", container, "-d", "labels", "--out-dataset", "mito", "--map", "2:1",
         "--workers", 0)  # fmt: skip
    _run(capsys, "instances", container, "-d", "mito", "--out-dataset", "mito_objects",
         "--workers", 0, "--no-progress")  # fmt: skip
    for dataset in ("mito", "mito_objects"):
        assert _attrs(container, dataset)["voxel_size_exact_nm"] == EXACT, dataset
        assert _attrs(container, dataset)["resolution"] == GRID, dataset

    table = tmp_path / "objects.csv"
    out = _run(capsys, "measure", container, "-d", "mito_objects", "-o", table, "--no-parquet",
               "--workers", 0, "--no-progress")  # fmt: skip
    assert "lengths, areas and volumes use the voxel size 50 x 4.6 x 4.6 nm (exact, " in out
    rows = {int(r["voxels"]): r for r in csv.DictReader(table.open())}
    box = rows[2 * 20 * 10]
    # 2 sections x 20 x 10 pixels = 100 nm x 92 nm x 46 nm, not 100 x 100 x 50 (18 % more)
    assert float(box["volume_nm3"]) == pytest.approx(100 * 92 * 46)
    for row in rows.values():
        assert 0 < float(row["sphericity"]) <= 1.0
    # the one-section disc of radius 8 pixels = 36.8 nm: its area includes its 50 nm rim
    disc = rows[min(rows)]
    top_and_bottom = 2 * math.pi * 36.8**2
    assert float(disc["surface_area_nm2"]) > top_and_bottom + 0.7 * 2 * math.pi * 36.8 * 50


@pytest.mark.parametrize("depth", [1, 2])
def test_sphericity_of_thin_slabs_stays_at_or_below_one(tmp_path: Path, capsys, depth: int):
    """Discs and squares one or two sections deep at 50 x 4.6 x 4.6 nm (6a96a73: 1.03 to 1.3)."""
    labels = np.zeros((5, 64, 64), np.uint32)
    yy, xx = np.mgrid[0:64, 0:64]
    for k, radius in enumerate((4, 8, 14), start=1):
        centre = 10 + 18 * (k - 1)
        labels[1 : 1 + depth][:, (yy - centre) ** 2 + (xx - centre) ** 2 <= radius**2] = k
    labels[1 : 1 + depth, 50:60, 5:15] = 4
    container = tmp_path / "slabs.zarr"
    array = create_array(container, "objects", labels.shape, GRID, dtype=np.uint32,
                         attrs={"voxel_size_exact_nm": EXACT})  # fmt: skip
    array[array.roi] = labels
    table = tmp_path / "slabs.csv"
    _run(capsys, "measure", container, "-d", "objects", "-o", table, "--no-parquet",
         "--workers", 0, "--no-progress", "--block-size", 16)  # fmt: skip
    sphericity = [float(r["sphericity"]) for r in csv.DictReader(table.open())]
    assert len(sphericity) == 4
    assert all(0.3 < s <= 1.0 for s in sphericity), sphericity


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("crop", ["--offset", "0", "0", "0", "--shape", "4", "20", "20", "-o", "{out}"]),
        ("pyramid", ["--factors", "1", "2", "2", "--levels", "1"]),
        ("mask", ["--min", "1", "--out-dataset", "cell"]),
        (
            "metric-mask",
            [
                "--exclude-inwards-nm",
                "10",
                "--exclude-outwards-nm",
                "10",
                "--out-dataset",
                "metric",
            ],
        ),  # fmt: skip
        ("equalize", ["--kernel-size", "8", "--out-dataset", "eq"]),
        ("segment", ["--threshold", "0.5", "--out-dataset", "seg"]),
    ],
)
def test_derived_datasets_carry_the_exact_voxel_size(tmp_path: Path, capsys, command, args):
    container = tmp_path / "c.zarr"
    array = create_array(container, "raw", (8, 32, 32), GRID, attrs={"voxel_size_exact_nm": EXACT})
    array[array.roi] = np.random.default_rng(0).integers(0, 255, (8, 32, 32), dtype=np.uint8)
    before = set(_datasets(container))
    out = tmp_path / "out.zarr"
    argv = [command, container, "-d", "raw", *[a.replace("{out}", str(out)) for a in args]]
    _run(capsys, *argv, "--workers", 0)
    written = out if out.exists() else container
    (new,) = set(_datasets(written)) - (before if written == container else set())
    factor = [1, 2, 2] if command == "pyramid" else [1, 1, 1]
    carried = _attrs(written, new)["voxel_size_exact_nm"]
    assert carried == pytest.approx([e * f for e, f in zip(EXACT, factor, strict=True)])


def _datasets(container: Path) -> list[str]:
    found: list[str] = []
    zarr.open(str(container), mode="r").visititems(
        lambda name, item: found.append(name) if isinstance(item, zarr.Array) else None
    )
    return found
