"""The training step that leaves the loss on the device trains exactly like gunpowder's Train,
and the loop logs every step's loss exactly, one step late."""

from __future__ import annotations

import copy

import gunpowder as gp
import numpy as np
import torch
from funlib.persistence import Array

from incasem.gunpowder import DeferredLossTrain
from incasem.training.loop import _LossReader


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[None, None].float())[0]


class _Loss(torch.nn.Module):
    def forward(self, logits, labels, scales):
        ce = torch.nn.functional.cross_entropy(logits[None], labels[None].long(), reduction="none")
        return (ce * scales[None]).mean()


def _train(node_class, tmp_path, steps: int = 3) -> tuple[list, dict]:
    torch.manual_seed(0)
    model = _Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    raw, labels, scales, prediction = (gp.ArrayKey(n) for n in ("R", "L", "S", "P"))
    rng = np.random.default_rng(0)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (10, 10, 10)), voxel_size=(1, 1, 1))
    inner = gp.ArraySpec(roi=gp.Roi((1, 1, 1), (8, 8, 8)), voxel_size=(1, 1, 1))
    sources = (
        gp.ArraySource(raw, Array(rng.random((10, 10, 10)).astype(np.float32)), False),
        gp.ArraySource(labels, Array(rng.integers(0, 2, (8, 8, 8)).astype(np.uint8), (1, 1, 1))),
        gp.ArraySource(scales, Array(np.ones((8, 8, 8), np.float32), (1, 1, 1))),
    ) + gp.MergeProvider()
    train = node_class(
        model=model, loss=_Loss(), optimizer=optimizer, inputs={"x": raw},
        outputs={0: prediction}, loss_inputs={0: prediction, 1: labels, 2: scales},
        array_specs={prediction: gp.ArraySpec(voxel_size=(1, 1, 1))},
        checkpoint_basename=str(tmp_path / node_class.__name__), save_every=10**9,
        device="cpu",
    )  # fmt: skip
    request = gp.BatchRequest()
    request[raw] = spec.copy()
    request[labels] = inner.copy()
    request[scales] = inner.copy()
    losses = []
    with gp.build(sources + train) as pipeline:
        for step in range(steps):
            if step == steps - 1:
                request[prediction] = inner.copy()
            batch = pipeline.request_batch(request)
            losses.append(batch.loss)
    return losses, {"weights": copy.deepcopy(model.state_dict()), "prediction": batch[prediction]}


def test_deferred_loss_train_matches_gunpowder_train_step_for_step(tmp_path):
    deferred, trained = _train(DeferredLossTrain, tmp_path)
    reference, expected = _train(gp.torch.Train, tmp_path)
    assert all(isinstance(loss, torch.Tensor) and loss.dim() == 0 for loss in deferred)
    assert [float(loss) for loss in deferred] == [float(loss) for loss in reference]
    for name, value in expected["weights"].items():
        assert torch.equal(trained["weights"][name], value)
    # the prediction is handed on when it is requested (snapshots), with its ROI
    assert trained["prediction"].spec.roi == expected["prediction"].spec.roi
    assert np.array_equal(trained["prediction"].data, expected["prediction"].data)


def test_loss_reader_hands_on_every_loss_in_order_one_step_late():
    seen: list[tuple[int, float, float]] = []
    reader = _LossReader(lambda *values: seen.append(values))
    reader.push(1, torch.tensor(0.5), 1e-3)
    assert seen == []  # read only once the next step is queued
    reader.push(2, torch.tensor(0.25), 2e-3)
    assert seen == [(1, 0.5, 1e-3)]
    reader.flush()
    reader.flush()
    assert seen == [(1, 0.5, 1e-3), (2, 0.25, 2e-3)]
