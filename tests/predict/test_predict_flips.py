"""Test-time flips: the probabilities are the mean over flips of the input, each undone."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from incasem.predict.block import flip_axes, forward_block
from incasem.predict.geometry import BlockLayout

INPUT = 12
LAYOUT = BlockLayout(
    voxel_size=Coordinate(4, 4, 4),
    input_shape=Coordinate(INPUT, INPUT, INPUT),
    output_shape=Coordinate(INPUT - 2, INPUT - 2, INPUT - 2),
    write_shape=Coordinate(8, 8, 8),
    context=Coordinate(1, 1, 1),
    grid=Coordinate(1, 1, 1),
)
WRITE_ROI = Roi((0, 0, 0), (32, 32, 32))  # 8 voxels, the first of the 10 the network outputs


def _network(symmetric: bool) -> torch.nn.Module:
    """A valid 3x3x3 convolution to two classes; ``symmetric``: its kernels are averaged over
    all flips, so that it is flip-equivariant by construction."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 2, 3)
    if symmetric:
        with torch.no_grad():
            weight = conv.weight
            flips = [torch.flip(weight, [a + 2 for a in axes]) for axes in _all_flips()]
            weight.copy_(torch.stack(flips).mean(0))
    return conv.eval()


def _all_flips() -> list[tuple[int, ...]]:
    return [c for n in range(4) for c in itertools.combinations((0, 1, 2), n)]


def _input() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(INPUT,) * 3).astype(np.float32)


def test_flip_axes_follow_the_voxel_size():
    assert len(flip_axes((4, 4, 4))) == 8 and flip_axes((4, 4, 4))[0] == ()
    assert flip_axes((8, 4, 4)) == [(), (1,), (2,), (1, 2)]


def test_an_equivariant_network_gives_the_same_probabilities_with_flips():
    network, x = _network(symmetric=True), _input()
    plain = forward_block(network, x, WRITE_ROI, LAYOUT)
    flipped = forward_block(network, x, WRITE_ROI, LAYOUT, flips=flip_axes((4, 4, 4)))
    assert flipped.shape == plain.shape == (2, 8, 8, 8)
    np.testing.assert_allclose(flipped, plain, atol=1e-5)


def test_flips_average_the_flipped_predictions():
    network, x = _network(symmetric=False), _input()
    expected = np.zeros((2, 10, 10, 10), np.float32)
    for axes in _all_flips():
        flipped = np.ascontiguousarray(np.flip(x, axes))
        with torch.no_grad():
            logits = network(torch.from_numpy(flipped)[None, None])[0]
        expected += np.flip(torch.softmax(logits, 0).numpy(), [a + 1 for a in axes])
    expected = expected[:, :8, :8, :8] / 8
    averaged = forward_block(network, x, WRITE_ROI, LAYOUT, flips=flip_axes((4, 4, 4)))
    np.testing.assert_allclose(averaged, expected, atol=1e-6)
    plain = forward_block(network, x, WRITE_ROI, LAYOUT)
    assert np.abs(averaged - plain).max() > 1e-3  # the network is not equivariant


def test_prediction_with_flips_reaches_the_workers(tmp_path):
    from incasem.predict import predict

    from .conftest import read_dataset, write_cell, write_checkpoint

    cell = write_cell(tmp_path / "cell.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet3")
    common = {"checkpoint": str(checkpoint), "input": str(cell), "roi": [10, 10, 0, 8, 8, 8],
              "progress": False, "input_size_voxels": [132, 132, 132], "device": "cpu"}  # fmt: skip
    plain = predict(output_group="plain", **common).entries[0].datasets[1]
    flipped = predict(output_group="flipped", flips=True, **common).entries[0].datasets[1]
    p, f = read_dataset(cell, plain), read_dataset(cell, flipped)
    assert p.shape == f.shape == (8, 8, 8) and not np.array_equal(p, f)
