"""Scale pyramids, crops and relabelling: values, voxel sizes, offsets and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.prepare.crop import crop
from incasem.prepare.pyramid import choose_method, downsample, scale_pyramid
from incasem.prepare.relabel import relabel


def test_downsample_methods():
    boxes = np.array([1, 1, 2, 2, 2, 9, 9, 9], np.uint32).reshape(2, 2, 2)
    assert downsample(boxes, (2, 2, 2), "mode")[0, 0, 0] == 2  # 2 and 9 tie: smaller id
    assert downsample(boxes, (2, 2, 2), "max")[0, 0, 0] == 9
    assert downsample(boxes.astype(np.uint8), (2, 2, 2), "mean")[0, 0, 0] == 4  # 35 / 8
    assert choose_method("volumes/raw", np.uint8) == "mean"
    assert choose_method("volumes/labels/mito", np.uint8) == "mode"
    assert choose_method("volumes/segmentation", np.uint64) == "mode"


def test_pyramid_levels_lie_where_the_source_lies(tmp_path: Path, cli, rng):
    container = tmp_path / "c.zarr"
    raw = rng.integers(0, 255, (20, 36, 44), dtype=np.uint8)
    array = create_array(
        container, "volumes/raw", raw.shape, (4, 4, 4), (8, 4, 0), chunks=(8, 8, 8)
    )
    array[array.roi] = raw
    code, out, _ = cli("pyramid", container, "-d", "volumes/raw", "--levels", 2, "--workers", 0)
    assert code == 0 and "volumes/raw_s2: voxel size [16, 16, 16] nm" in out
    s1 = open_array(container, "volumes/raw_s1")
    # World grid of 8 nm: the source [8:88, 4:148, 0:176] nm shrinks to [8:88, 8:144, 0:176].
    assert (
        s1.voxel_size == (8, 8, 8) and s1.roi.offset == (8, 8, 0) and s1.roi.shape == (80, 136, 176)
    )
    np.testing.assert_array_equal(s1[s1.roi], downsample(raw[:, 1:35, :], (2, 2, 2), "mean"))
    s2 = open_array(container, "volumes/raw_s2")
    assert s2.voxel_size == (16, 16, 16) and s2.roi.offset == (16, 16, 0)
    assert s2.shape == (4, 8, 11)
    assert open_array(container, "volumes/raw")[array.roi].tobytes() == raw.tobytes()


def test_pyramid_levels_go_to_another_container_leaving_the_source_alone(tmp_path: Path, cli, rng):
    source = tmp_path / "shared.zarr"
    labels = rng.integers(0, 2, (8, 8, 8), dtype=np.uint8)
    array = create_array(source, "volumes/labels/mito", labels.shape, (5, 5, 5), (10, 0, 0))
    array[array.roi] = labels
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    own = tmp_path / "own.zarr"
    code, out, _ = cli(
        "pyramid", source, "-d", "volumes/labels/mito", "--levels", 2, "--out-container", own,
        "--workers", 0,
    )  # fmt: skip
    assert code == 0 and f"{own}/volumes/labels/mito_s2: voxel size [20, 20, 20] nm" in out
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before
    s1 = open_array(own, "volumes/labels/mito_s1")
    assert s1.voxel_size == (10, 10, 10) and s1.roi.offset == (10, 0, 0)
    np.testing.assert_array_equal(s1[s1.roi], downsample(labels, (2, 2, 2), "mode"))
    s2 = open_array(own, "volumes/labels/mito_s2")
    np.testing.assert_array_equal(s2[s2.roi], downsample(s1[s2.roi], (2, 2, 2), "mode"))
    group = zarr.open(str(own), "r")
    assert group["volumes/labels/mito_s1"].attrs["incasem_downsampled"]["source"] == (
        f"{source}/volumes/labels/mito"
    )
    assert group["volumes/labels/mito_s2"].attrs["incasem_downsampled"]["source"] == (
        "volumes/labels/mito_s1"
    )


def test_pyramid_refuses_before_writing_any_level(tmp_path: Path):
    array = create_array(tmp_path / "c.zarr", "l", (4, 4, 4), (1, 1, 1))
    array[array.roi] = np.ones((4, 4, 4), np.uint8)
    with pytest.raises(IncasemError, match=r"\(\[4, 4, 4\] voxels\) is too small for 3 levels"):
        scale_pyramid(tmp_path / "c.zarr", "l", levels=3, num_workers=0, progress=False)
    create_array(tmp_path / "c.zarr", "l_s2", (1, 1, 1), (4, 4, 4))
    with pytest.raises(IncasemError, match="l_s2 already exists"):
        scale_pyramid(tmp_path / "c.zarr", "l", levels=2, num_workers=0, progress=False)
    with pytest.raises(IncasemError, match="no dataset 'l_s1'"):
        open_array(tmp_path / "c.zarr", "l_s1")


def test_crop_keeps_world_positions_and_pads_with_zeros(tmp_path: Path, rng):
    raw = rng.integers(1, 255, (10, 12, 14), dtype=np.uint8)
    labels = rng.integers(1, 5, (5, 6, 7), dtype=np.uint32)
    source = tmp_path / "c.zarr"
    r = create_array(source, "volumes/raw", raw.shape, (4, 4, 4), (40, 0, 0), chunks=(4, 4, 4))
    r[r.roi] = raw
    lab = create_array(source, "volumes/labels/er", labels.shape, (8, 8, 8), (40, 0, 0), np.uint32)
    lab[lab.roi] = labels
    written = crop(
        source, ["volumes/raw", "volumes/labels/er"], tmp_path / "crop.zarr",
        offset=(12, 2, 4), shape=(4, 6, 12), num_workers=0, progress=False,
    )  # fmt: skip
    assert written == [
        f"{tmp_path / 'crop.zarr'}/volumes/raw",
        f"{tmp_path / 'crop.zarr'}/volumes/labels/er",
    ]
    out = open_array(tmp_path / "crop.zarr", "volumes/raw")
    assert out.roi.offset == (48, 8, 16) and out.shape == (4, 6, 12)
    expected = np.zeros((4, 6, 12), np.uint8)
    expected[:, :, :-2] = raw[2:6, 2:8, 4:14]  # x runs 2 voxels past the source
    np.testing.assert_array_equal(out[out.roi], expected)
    out_labels = open_array(tmp_path / "crop.zarr", "volumes/labels/er")
    assert out_labels.voxel_size == (8, 8, 8) and out_labels.shape == (2, 3, 6)
    np.testing.assert_array_equal(out_labels[out_labels.roi][:, :, :5], labels[1:3, 1:4, 2:7])
    with pytest.raises(IncasemError, match="not aligned to the voxel size"):
        crop(
            source,
            ["volumes/raw", "volumes/labels/er"],
            tmp_path / "other.zarr",
            (11, 0, 0),
            (4, 4, 4),
        )
    with pytest.raises(IncasemError, match="write them to another container"):
        crop(source, ["volumes/raw"], source, (0, 0, 0), (1, 1, 1))


def test_relabel_extracts_and_binarizes(tmp_path: Path, cli, error_line):
    ids = np.array([0, 3, 4, 7, 16, 70000], np.uint32).reshape(1, 2, 3)
    container = tmp_path / "c.zarr"
    array = create_array(
        container, "volumes/labels/cosem", ids.shape, (4, 4, 4), (0, 8, 0), np.uint32
    )
    array[array.roi] = ids
    base = ["relabel", container, "-d", "volumes/labels/cosem", "--workers", 0]
    assert cli(*base, "--out-dataset", "mito", "--map", "3:1", "4:1")[0] == 0
    mito = open_array(container, "mito")
    assert mito.dtype == np.uint8 and mito.roi == array.roi
    np.testing.assert_array_equal(mito[mito.roi].ravel(), [0, 1, 1, 0, 0, 0])
    assert cli(*base, "--out-dataset", "kept", "--map", "16:2", "--others", "keep")[0] == 0
    np.testing.assert_array_equal(
        open_array(container, "kept")[array.roi].ravel(), [0, 3, 4, 7, 2, 70000]
    )
    assert cli(*base, "--out-dataset", "any", "--binarize", "255")[0] == 0
    np.testing.assert_array_equal(open_array(container, "any")[array.roi].ravel(), [0] + [255] * 5)
    code, _, err = cli(
        *base, "--out-dataset", "small", "--map", "16:2", "--others", "keep", "--dtype", "uint8"
    )
    assert code == 2 and "values 0..70000 (int64) do not fit uint8" in error_line(err)
    with pytest.raises(IncasemError, match="choose exactly one of --binarize and --map"):
        relabel(container, "volumes/labels/cosem", "x", mapping={1: 2}, binarize=1)
