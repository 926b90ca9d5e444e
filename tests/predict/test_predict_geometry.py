"""Block layout: grid-aligned write blocks, context, and the same tiling daisy produces."""

from __future__ import annotations

import daisy.v2 as daisy
import pytest
from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.predict.geometry import BlockLayout


def test_default_network_layout():
    layout = BlockLayout.for_network((204, 204, 204), (5, 5, 5))
    assert layout.output_shape == (110, 110, 110)
    assert layout.write_shape == (104, 104, 104)  # a multiple of the 8-voxel grid
    assert layout.context == (47, 47, 47) and layout.grid == (8, 8, 8)
    assert layout.block_read_roi == Roi((-235, -235, -235), (1020, 1020, 1020))
    assert layout.block_write_roi == Roi((0, 0, 0), (520, 520, 520))
    assert BlockLayout.from_description(layout.describe()) == layout


def test_anisotropic_factors_and_voxels():
    layout = BlockLayout.for_network((60, 132, 132), (20, 5, 5), [[1, 2, 2]] * 3)
    assert layout.grid == (1, 8, 8)
    assert layout.write_shape == (layout.output_shape[0], 32, 32)


@pytest.mark.parametrize(
    ("size", "message"),
    [((100, 100, 100), "smaller than the"), ((200, 204, 204), "not valid")],
)
def test_bad_input_sizes(size, message):
    with pytest.raises(IncasemError, match=message):
        BlockLayout.for_network(size, (5, 5, 5))


def test_write_rois_cover_roi_exactly_and_match_daisy():
    layout = BlockLayout.for_network((132, 132, 132), (8, 4, 4))
    roi = Roi((88, 68, 36), Coordinate(30, 37, 45) * layout.voxel_size)
    ours = list(layout.write_rois(roi))
    assert len(ours) == layout.num_blocks(roi) == 1 * 2 * 2
    assert sum(r.size for r in ours) == roi.size
    assert all(roi.contains(r) for r in ours)
    graph = daisy.BlockwiseDependencyGraph(
        "t",
        layout.block_read_roi,
        layout.block_write_roi,
        False,
        "overhang",
        total_read_roi=layout.total_read_roi(roi),
    )
    theirs = sorted(
        (tuple(b.write_roi.begin), b.read_roi) for b, _ in graph.enumerate_all_dependencies()
    )
    assert [begin for begin, _ in theirs] == sorted(tuple(r.begin) for r in ours)
    for begin, read_roi in theirs:
        write_roi = Roi(begin, layout.block_write_roi.shape)
        assert read_roi == layout.read_roi_for(write_roi)
