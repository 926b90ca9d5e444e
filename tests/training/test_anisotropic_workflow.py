"""End to end on real serial-section data (CDeep3M mitochondria, 40 x 5.9 x 5.9 nm) given as a
stack of unpadded TIFF names, with no hand-set sizes or factors: convert -> equalize -> mask ->
metric-mask -> plan -> train -> predict (auto blocks) -> evaluate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from incasem.cli.main import main
from incasem.io import open_array
from incasem.prepare.masks import exclusion_band

pytestmark = pytest.mark.slow

CROP = (slice(None), slice(256, 512), slice(256, 512))  # all 20 sections, 256 x 256 pixels


def _write_stack(folder: Path, volume: np.ndarray) -> None:
    """slice_1.tif ... slice_20.tif, as the microscope's software names them (unpadded)."""
    folder.mkdir()
    for index, section in enumerate(volume, start=1):
        tifffile.imwrite(folder / f"slice_{index}.tif", section)


def _cli(*args) -> int:
    return main([str(a) for a in args])


def test_serial_section_stack_from_tiffs_to_scores(tmp_path, shared_data, repo_root, capsys):
    source = zarr.open(str(shared_data / "cdeep3m_mito_train.zarr"), mode="r")
    raw = source["volumes/raw"][CROP]
    labels = source["volumes/labels/mitochondria"][CROP]
    _write_stack(tmp_path / "raw", raw)
    _write_stack(tmp_path / "labels", labels)
    cell = tmp_path / "cell.zarr"

    # 1. convert, keeping the exact voxel size next to the whole-nm grid
    assert _cli("convert", "tiff-to-zarr", tmp_path / "raw", tmp_path / "labels", "-o", cell,
                "-d", "volumes/raw", "volumes/labels/mito", "--resolution", 40, 5.9, 5.9,
                "--workers", 0) == 0  # fmt: skip
    assert "is recorded as [40, 6, 6] nm" in capsys.readouterr().out
    converted = open_array(cell, "volumes/raw")
    assert converted.voxel_size == (40, 6, 6)
    np.testing.assert_array_equal(converted[converted.roi], raw)  # slice_10 after slice_9

    # 2.-4. equalize, mask (says what it keeps), metric mask in nm
    assert _cli("equalize", cell, "--workers", 0, "--no-progress") == 0
    assert _cli("mask", cell, "-d", "volumes/raw_equalized_0.02", "--workers", 0) == 0
    said = capsys.readouterr()
    assert "volumes/mask keeps" in said.out
    # tissue without resin: the default bounds cut out bright cytoplasm, and mask says so; the
    # user follows its advice
    assert "may not suit this data" in said.err
    assert _cli("mask", cell, "-d", "volumes/raw_equalized_0.02", "--workers", 0, "--max", 256,
                "--overwrite") == 0  # fmt: skip
    assert "may not suit" not in capsys.readouterr().err
    assert _cli("metric-mask", cell, "-d", "volumes/labels/mito", "--organelle", "mito",
                "--workers", 0) == 0  # fmt: skip
    metric = open_array(cell, "volumes/metric_masks/mito")
    mito = labels > 0
    kept = (metric[metric.roi] > 0)[mito].mean()
    # 20 nm: 3 voxels in y and x, none along z; the old 4 voxels (160 nm along z) kept a sliver
    expected = (~exclusion_band(labels, 20, 20, (40, 6, 6)))[mito].mean()
    in_voxels = (~exclusion_band(labels, 4, 4))[mito].mean()
    assert kept == pytest.approx(expected) and kept > 0.3 and kept > 2 * in_voxels

    # 5. plan from a data config: 14 sections to train on, 6 to validate
    entry = {"file": "cell.zarr", "voxel_size": [40, 6, 6], "raw": "volumes/raw_equalized_0.02",
             "labels": {"volumes/labels/mito": 1}, "mask": "volumes/mask"}  # fmt: skip
    (tmp_path / "train.json").write_text(
        json.dumps({"train": {**entry, "offset": [0, 0, 0], "shape": [14, 256, 256]}})
    )
    (tmp_path / "validation.json").write_text(
        json.dumps(
            {
                "val": {
                    **entry,
                    "offset": [14, 0, 0],
                    "shape": [6, 256, 256],
                    "metric_masks": ["volumes/metric_masks/mito"],
                }
            }
        )
    )
    assert _cli("plan", tmp_path / "train.json") == 0
    planned = capsys.readouterr().out
    assert "downsample factors:  [[1, 2, 2], [1, 2, 2], [2, 2, 2]]" in planned
    assert "training output:     [14, 86, 86] voxels" in planned

    # 6. train with every size and factor planned
    trained = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "train.py"), "with",
         "training.data=train.json", "validation.data=validation.json", "directories.data=.",
         "directories.runs=runs", "data.voxel_size=[40,6,6]", "model.num_fmaps=2",
         "model.downsample_factors=auto", "training.input_size_voxels=auto",
         "training.output_size_voxels=auto", "training.iterations=2", "training.save_every=2",
         "validation.validate_every=2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    config = json.loads((tmp_path / "runs" / "1" / "config.json").read_text())
    assert config["model"]["downsample_factors"] == [[1, 2, 2], [1, 2, 2], [2, 2, 2]]
    assert config["training"]["output_size_voxels"] == [14, 86, 86]

    # 7. predict the validation slab with auto blocks: no deeper than its 6 sections need
    assert _cli("predict", "--run_id", 1, "--runs_dir", tmp_path / "runs", "--data",
                tmp_path / "validation.json", "--data_root", tmp_path, "--input_size", "auto",
                "--device", "cpu", "--no-progress", "--json") == 0  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    group = zarr.open(str(cell), mode="r")[result["group"]]
    layout = group.attrs["incasem_prediction"]["layout"]
    assert layout["write_shape_voxels"][0] <= 6 + 2  # at most one grid step (2) past the ROI
    assert layout["input_shape_voxels"][0] < 48  # thinner than the training input

    # 8. evaluate against the labels inside the metric mask
    probabilities = result["entries"][0]["datasets"][1]
    assert _cli("evaluate", cell, "--prediction", probabilities, "--truth",
                "volumes/labels/mito", "--threshold", 0.5, "--mask",
                "volumes/metric_masks/mito", "--no-progress") == 0  # fmt: skip
    scores = capsys.readouterr().out
    line = next(row for row in scores.splitlines() if row.startswith("class_1"))
    counts = dict(re.findall(r"(tp|fp|fn) (\d+)", line))
    # scored over the 6-section slab, inside the metric mask: every mitochondrion voxel there is
    # a true positive or a false negative
    in_slab = (labels[14:] > 0) & (metric[metric.roi][14:] > 0)
    assert int(counts["tp"]) + int(counts["fn"]) == int(in_slab.sum()) > 0
    f1 = 2 * int(counts["tp"]) / (2 * int(counts["tp"]) + int(counts["fp"]) + int(counts["fn"]))
    assert f"f1 {f1:.4f}" in line
