"""evaluate_entry: in-process, blockwise, and equal to scoring one whole-volume pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from incasem.errors import IncasemError
from incasem.io.data_config import DataEntry
from incasem.metrics import (
    ConfusionCounts,
    ThresholdHistograms,
    best_threshold_scores,
    flat_scores,
    quantise,
)
from incasem.predict import evaluate_entry
from incasem.predict.block import classify
from incasem.torch.checkpoint import load_checkpoint

from .conftest import NETWORKS, read_dataset, single_pass

DATA_OFFSET = (10, 10, 0)  # voxels of the fixture's dataset offset (80, 40, 0) nm


def _entry(**changes) -> DataEntry:
    entry = {
        "name": "e",
        "file": "cell.zarr",
        "offset": [12, 13, 3],
        "shape": [40, 41, 55],
        "voxel_size": [8, 4, 4],
        "raw": "volumes/raw",
        "labels": {"volumes/labels/mito": 1},
        "mask": "volumes/mask",
        "metric_masks": ["volumes/metric_masks/mito"],
        "ignore_value": 255,
    }
    return DataEntry(**(entry | changes))


def _expected(checkpoint, cell, entry: DataEntry) -> dict[str, float]:
    probabilities = single_pass(checkpoint, cell, entry.offset, entry.shape)
    local = tuple(
        slice(o - d, o - d + s)
        for o, d, s in zip(entry.offset, DATA_OFFSET, entry.shape, strict=True)
    )
    labels = read_dataset(cell, "volumes/labels/mito")[local]
    region = (read_dataset(cell, "volumes/mask")[local] > 0) & (
        read_dataset(cell, "volumes/metric_masks/mito")[local] > 0
    )
    region &= labels != 255
    truth = ((labels > 0) & (labels != 255)).astype(np.uint8)
    counts = ConfusionCounts.from_arrays(classify(probabilities), truth, region, 2)
    histograms = ThresholdHistograms.from_arrays(quantise(probabilities), truth, region)
    return {
        **flat_scores(counts, ["background", "mito"]),
        "threshold": 0.5,
        **best_threshold_scores(histograms, ["background", "mito"]),
    }


def test_evaluate_entry_equals_whole_volume_scores(cell, checkpoint_factory):
    checkpoint = checkpoint_factory(network="unet2")
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.train()
    entry = _entry()
    metrics = evaluate_entry(
        model,
        entry,
        cell.parent,
        NETWORKS["unet2"]["input"],
        [8, 4, 4],
        loaded.card.normalisation,
        class_names=loaded.card.class_names,
    )
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    expected = _expected(checkpoint, cell, entry)
    assert set(metrics) == set(expected)
    assert 0.0 < metrics["f1"] < 1.0
    assert metrics["best_f1"] >= metrics["f1"] and 0 < metrics["best_threshold"] < 1
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key


def test_evaluate_entry_without_labels_is_background(cell, checkpoint_factory):
    checkpoint = checkpoint_factory(network="unet2")
    loaded = load_checkpoint(checkpoint)
    entry = _entry(labels={}, mask=None, metric_masks=[], ignore_value=None, shape=[8, 20, 20])
    metrics = evaluate_entry(
        loaded.model, entry, cell.parent, [84, 84, 84], [8, 4, 4], loaded.card.normalisation
    )
    predicted = classify(single_pass(checkpoint, cell, entry.offset, entry.shape)).sum()
    assert metrics["recall"] == 1.0 and metrics["class_1/recall"] == 1.0
    assert metrics["precision"] == (1.0 if predicted == 0 else 0.0)


def test_evaluate_entry_checks_voxel_size_and_device(cell, checkpoint_factory):
    loaded = load_checkpoint(checkpoint_factory(network="unet2"))
    with pytest.raises(IncasemError, match="voxel size"):
        evaluate_entry(
            loaded.model, _entry(), cell.parent, [84] * 3, [4, 4, 4], loaded.card.normalisation
        )
    with pytest.raises(ValueError, match="device"):
        evaluate_entry(loaded.model, _entry(), cell.parent, [84] * 3, [8, 4, 4], {}, device="meta")
    assert torch.is_grad_enabled()
