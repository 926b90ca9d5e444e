"""Per-object measurements: analytic ellipsoids, blockwise equals whole, filters, table files."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from incasem.errors import IncasemError
from incasem.postprocess.measure import measure, parse_filter, write_table
from incasem.postprocess.sources import DatasetRef

VOXEL_SIZE = (8, 4, 4)
OFFSET = (80, 40, 0)
SHAPE = (48, 96, 112)
# (centre nm relative to the offset, semi-axes nm along z, y, x)
ELLIPSOIDS = (((200, 190, 160), (120, 80, 50)), ((110, 90, 340), (45, 45, 45)))


def _ellipsoid_area(a: float, b: float, c: float) -> float:
    # Knud Thomsen's approximation, within 1.1 % of the exact value.
    p = 1.6075
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


@pytest.fixture
def ellipsoids(write):
    centres = [(np.arange(n) + 0.5) * v for n, v in zip(SHAPE, VOXEL_SIZE, strict=True)]
    z, y, x = np.meshgrid(*centres, indexing="ij")
    labels = np.zeros(SHAPE, np.uint32)
    for k, ((cz, cy, cx), (a, b, c)) in enumerate(ELLIPSOIDS, start=1):
        labels[((z - cz) / a) ** 2 + ((y - cy) / b) ** 2 + ((x - cx) / c) ** 2 <= 1] = 7 * k
    probability = np.where(labels == 7, 204, np.where(labels == 14, 102, 0)).astype(np.uint8)
    container = write("inst", labels, voxel_size=VOXEL_SIZE, offset=OFFSET)
    write("prob", probability, voxel_size=VOXEL_SIZE, offset=OFFSET)
    return container


def test_ellipsoids_match_analytic_values(ellipsoids):
    table = measure(
        DatasetRef(ellipsoids, "inst"),
        probabilities=DatasetRef(ellipsoids, "prob"),
        block_edge=32,
        num_workers=0,
        progress=False,
    )
    assert table["id"].tolist() == [7, 14]
    for row, ((cz, cy, cx), (a, b, c)) in enumerate(ELLIPSOIDS):
        assert table["volume_nm3"][row] == pytest.approx(4 / 3 * math.pi * a * b * c, rel=0.02)
        got = [table[f"centroid_{n}_nm"][row] for n in "zyx"]
        assert got == pytest.approx([cz + OFFSET[0], cy + OFFSET[1], cx + OFFSET[2]], abs=0.5)
        axes = [table[f"axis_{n}_nm"][row] for n in ("major", "middle", "minor")]
        assert axes == pytest.approx(sorted([2 * a, 2 * b, 2 * c], reverse=True), rel=0.02)
        area = _ellipsoid_area(a, b, c)
        assert table["surface_area_nm2"][row] == pytest.approx(area, rel=0.03)
        begin = [table[f"bbox_begin_{n}_nm"][row] - o for n, o in zip("zyx", OFFSET, strict=True)]
        end = [table[f"bbox_end_{n}_nm"][row] - o for n, o in zip("zyx", OFFSET, strict=True)]
        for lo, hi, centre, semi, size in zip(
            begin, end, (cz, cy, cx), (a, b, c), VOXEL_SIZE, strict=True
        ):
            assert centre - semi - size <= lo <= centre - semi + size
            assert centre + semi - size <= hi <= centre + semi + size
    assert table["eccentricity"][0] == pytest.approx(math.sqrt(1 - (50 / 120) ** 2), rel=0.02)
    assert table["eccentricity"][1] < 0.2
    assert table["elongation"][0] == pytest.approx(120 / 50, rel=0.03)
    assert 0.96 <= table["sphericity"][1] <= 1.0  # z's 2:1 staircase is not smoothed away
    assert table["mean_probability"].tolist() == pytest.approx([0.8, 0.4])


def test_blockwise_with_workers_equals_one_block(ellipsoids):
    ref = DatasetRef(ellipsoids, "inst")
    blockwise = measure(ref, block_edge=32, num_workers=1, progress=False)
    whole = measure(ref, block_edge=128, num_workers=0, progress=False)
    assert list(blockwise) == list(whole)
    for column in whole:
        # areas and enclosed volumes are float sums over triangles in block order
        rtol = 1e-7 if column in ("surface_area_nm2", "sphericity") else 1e-9
        np.testing.assert_allclose(blockwise[column], whole[column], rtol=rtol, err_msg=column)


def test_filters_and_table_files(ellipsoids, tmp_path):
    table = measure(
        DatasetRef(ellipsoids, "inst"),
        filters=["volume_nm3 > 1e6", "eccentricity>=0.5"],
        num_workers=0,
        progress=False,
    )
    assert table["id"].tolist() == [7]
    written = write_table(table, str(tmp_path / "t.csv"))
    with open(written[0]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == [7]
    assert float(rows[0]["volume_nm3"]) == table["volume_nm3"][0]
    with pytest.raises(IncasemError, match="already exists"):
        write_table(table, str(tmp_path / "t.csv"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("volume_nm3 >> 3", "is not COLUMN OP NUMBER"),
        ("__import__('os')", "is not COLUMN OP NUMBER"),
        ("volume_nm3 > big", "not a number"),
    ],
)
def test_filter_expressions_are_parsed_not_evaluated(text, message):
    with pytest.raises(IncasemError, match=message):
        parse_filter(text)


def test_unknown_filter_column_and_non_integer_ids(ellipsoids, write):
    with pytest.raises(IncasemError, match="no column 'size'"):
        measure(DatasetRef(ellipsoids, "inst"), filters=["size>3"], num_workers=0, progress=False)
    write("floats", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(IncasemError, match="must be integers"):
        measure(DatasetRef(ellipsoids, "floats"), num_workers=0, progress=False)
