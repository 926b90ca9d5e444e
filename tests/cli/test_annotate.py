"""``incasem annotate strokes`` and ``graphcut``: several blocks in a worker process, the printed
data-config entry, plane-file seeds, one-line errors."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from incasem.annotate import CutSettings
from incasem.cli.annotate import cut_settings
from incasem.cli.main import build_parser, main
from incasem.io import open_array
from incasem.io.data_config import DataEntry
from incasem.metrics import ConfusionCounts
from incasem.phantom import write_cell


@pytest.mark.slow
def test_strokes_then_graphcut_over_two_blocks_with_a_worker(tmp_path, capsys):
    cell = tmp_path / "cell.zarr"
    write_cell(cell, shape=(160, 64, 64))
    assert main(["annotate", "strokes", "-f", str(cell), "--labels", "volumes/labels/mito",
                 "-o", "volumes/seeds/mito", "--planes", "3"]) == 0  # fmt: skip
    assert "% of the volume" in capsys.readouterr().out
    argv = ["annotate", "graphcut", "-f", str(cell), "--seeds", "volumes/seeds/mito",
            "-o", "volumes/labels/gc", "--no-progress", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    entry = json.loads(out[out.index("{") :])
    parsed = DataEntry(name="gc", **entry["gc"])
    assert parsed.shape == [160, 64, 64] and parsed.mask == "volumes/masks/gc"
    labels = open_array(cell, "volumes/labels/gc")[:] != 0  # z blocks 0:128, 128:160
    truth = open_array(cell, "volumes/labels/mito")[:] != 0
    assert ConfusionCounts.from_arrays(labels, truth, None, 2).class_scores(1)["f1"] >= 0.9
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_plane_seeds_and_one_line_errors(tmp_path, capsys):
    cell = tmp_path / "cell.zarr"
    write_cell(cell, shape=(48, 48, 48))
    truth = open_array(cell, "volumes/labels/mito")[:]
    planes = tmp_path / "strokes"
    planes.mkdir()
    plane = np.where(truth[24] > 0, 1, 2).astype(np.uint8)
    iio.imwrite(planes / "z_0024.png", plane)
    base = ["annotate", "graphcut", "-f", str(cell), "-o", "volumes/labels/gc", "--no-progress"]
    assert main([*base, "--seeds", str(planes), "--workers", "0"]) == 0
    labels = open_array(cell, "volumes/labels/gc")[:]
    np.testing.assert_array_equal(labels[24], plane == 1)
    capsys.readouterr()

    iio.imwrite(planes / "z_0024.png", np.ones_like(plane))
    iio.imwrite(planes / "x_0040.png", np.zeros((48, 48), np.uint8))
    for extra, message in [
        ([], "only one class; mark some background (2) voxels too"),
        (["--roi", "0", "0", "0", "48", "48", "32"], "x_0040.png: plane x = 40 lies outside"),
        (["--roi", "0", "0", "0", "4", "4", "4", "--seeds", "volumes/labels/er"], "no seeds"),
    ]:
        seeds = [] if "--seeds" in extra else ["--seeds", str(planes)]
        assert main([*base, "-o", "volumes/labels/x", *seeds, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("incasem annotate: error: ") and message in err
        assert len(err.strip().splitlines()) == 1


def test_cli_defaults_are_the_library_defaults():
    """The parser repeats CutSettings' defaults (so --help imports nothing heavy); a default
    changed in one place only would make the CLI cut differently from the library."""
    args = build_parser().parse_args(
        ["annotate", "graphcut", "-f", "x.zarr", "--seeds", "s", "-o", "volumes/labels/o"]
    )
    assert cut_settings(args) == CutSettings()
