"""Fixtures for prediction tests: tiny checkpoints, a small cell on disk, single-pass references.

Real zarr containers, real checkpoints (`save_checkpoint` + `ModelCard`) and, in the end-to-end
tests, real daisy worker processes. Models are tiny (2 feature maps) so a block takes well under
a second on one core. ``unet3`` is the incasem architecture (3 levels, 47 voxels of context, an
8-voxel grid); ``unet2`` has two levels (21 voxels of context, a 4-voxel grid) and is several
times cheaper per voxel, for tests that need many blocks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate

from incasem.io import create_array, open_array
from incasem.predict.block import normalise
from incasem.torch.checkpoint import DEFAULT_NORMALISATION, ModelCard, save_checkpoint
from incasem.torch.models import ASEMUNet, shapes

VOXEL_SIZE = (8, 4, 4)
OFFSET = (80, 40, 0)
SHAPE = (48, 56, 64)

NETWORKS: dict[str, dict[str, Any]] = {
    "unet3": {"downsample_factors": [[2, 2, 2]] * 3, "input": [132, 132, 132]},
    "unet2": {"downsample_factors": [[2, 2, 2]] * 2, "input": [84, 84, 84]},
}


def write_checkpoint(
    path: Path,
    network: str = "unet3",
    num_classes: int = 2,
    seed: int = 0,
    voxel_size: tuple[int, int, int] = VOXEL_SIZE,
    threshold: float | None = None,
    raw_histogram: list[int] | None = None,
    fill_holes: bool = False,
    min_object_nm3: float = 0.0,
) -> Path:
    """A checkpoint of a random tiny ASEMUNet (2 feature maps) with its model card (and a
    calibrated ``threshold``, the training raw's ``raw_histogram`` and post-processing
    ``fill_holes`` and ``min_object_nm3`` if given)."""
    torch.manual_seed(seed)
    spec = NETWORKS[network]
    model = ASEMUNet(
        num_classes=num_classes, num_fmaps=2, downsample_factors=spec["downsample_factors"]
    )
    with torch.no_grad():  # spread the logits so that probabilities are not all near 1/C
        model.final_conv_pass.conv_pass[0].weight.mul_(20.0)
    card = ModelCard(
        hparams=model.hparams(),
        input_size_voxels=spec["input"],
        output_size_voxels=list(model.output_shape(spec["input"])),
        voxel_size=list(voxel_size),
        class_names=["background", "mito", "er"][:num_classes],
        normalisation=dict(DEFAULT_NORMALISATION),
        threshold=threshold,
        raw_histogram=list(raw_histogram or []),
        fill_holes=fill_holes,
        min_object_nm3=min_object_nm3,
    )
    return save_checkpoint(path, model, card)


def write_cell(path: Path, shape=SHAPE, voxel_size=VOXEL_SIZE, offset=OFFSET, seed=0) -> Path:
    """A container with smooth random raw, a mito label (two boxes), a mask and a metric mask."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=[s // 4 + 2 for s in shape])
    smooth = np.kron(noise, np.ones((4, 4, 4)))[tuple(slice(0, s) for s in shape)]
    raw = np.clip(128 + 40 * smooth + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
    labels = np.zeros(shape, np.uint8)
    labels[5:25, 10:40, 8:30] = 1
    labels[30:44, 30:50, 35:60] = 255
    mask = np.ones(shape, np.uint8)
    mask[:, :, :4] = 0
    metric_mask = np.ones(shape, np.uint8)
    metric_mask[20:24] = 0
    for dataset, data in (
        ("volumes/raw", raw),
        ("volumes/labels/mito", labels),
        ("volumes/mask", mask),
        ("volumes/metric_masks/mito", metric_mask),
    ):
        array = create_array(path, dataset, shape, voxel_size, offset, chunks=(32, 32, 32))
        array[array.roi] = data
    return path


def write_config(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    """A data-config JSON; each entry gets raw, voxel size and labels unless it sets them."""
    full = {}
    for name, entry in entries.items():
        full[name] = {
            "file": "cell.zarr",
            "voxel_size": list(VOXEL_SIZE),
            "raw": "volumes/raw",
            "labels": {"volumes/labels/mito": 1},
            **entry,
        }
    path.write_text(json.dumps(full))
    return path


def single_pass(
    checkpoint: Path,
    container: Path,
    offset_voxels,
    shape_voxels,
    deterministic: bool = False,
) -> np.ndarray:
    """Probabilities of the whole ROI from ONE forward pass (classes, z, y, x), float32.

    The input is the ROI grown by the context (plus what makes its size valid), cut from the
    whole raw dataset mirrored with ``numpy.pad(mode="reflect")``: an implementation independent
    of `incasem.predict.block`. ``offset_voxels`` is in the dataset's world voxels.
    """
    from incasem.torch.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval()
    factors = model.downsample_factors
    context = Coordinate(shapes.context(factors))
    input_shape = Coordinate(shapes.input_shape_for_output(shape_voxels, factors))
    raw = open_array(container, "volumes/raw")
    pad = 200
    padded = np.pad(raw[raw.roi], pad, mode="reflect")
    begin = Coordinate(offset_voxels) - raw.roi.begin / raw.voxel_size - context + pad
    x = padded[tuple(slice(b, b + s) for b, s in zip(begin, input_shape, strict=True))]
    x = normalise(x, loaded.card.normalisation)
    mkldnn, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    if deterministic:
        torch.backends.mkldnn.enabled = False
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(x))[None, None])
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_num_threads(threads)
    probabilities = torch.softmax(logits, dim=1)[0].numpy()
    z, y, x_ = shape_voxels
    return probabilities[:, :z, :y, :x_]


def read_dataset(container: Path, dataset: str) -> np.ndarray:
    """A whole dataset as numpy."""
    array = open_array(container, dataset)
    return array[array.roi]


def file_tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size (to prove nothing was written)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def done_markers(tracking: Path) -> int:
    """Blocks daisy recorded as done in a tracking store (one byte per block)."""
    return int(sum(np.fromfile(p, np.uint8).sum() for p in (tracking / "done").rglob("c/**/*")
                   if p.is_file()))  # fmt: skip


@pytest.fixture
def cell(tmp_path: Path) -> Path:
    """``tmp_path/cell.zarr`` (see `write_cell`)."""
    return write_cell(tmp_path / "cell.zarr")


@pytest.fixture
def checkpoint_factory(tmp_path: Path) -> Callable[..., Path]:
    """``make(name="model", network="unet3", **kwargs)`` -> a checkpoint in ``tmp_path``."""

    def make(name: str = "model", network: str = "unet3", **kwargs: Any) -> Path:
        return write_checkpoint(tmp_path / f"{name}.pt", network, **kwargs)

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process forward passes on one thread: the CI machine has two cores and daisy workers
    run beside the test process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
