"""Voxel and object scores equal a dense NumPy reference; blockwise equals whole-volume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from incasem.errors import IncasemError
from incasem.postprocess.evaluate import evaluate, match_objects, sweep_thresholds
from incasem.postprocess.sources import DatasetRef

from .conftest import blobs

SHAPE = (40, 70, 90)


def _reference(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "f1": 2 * tp / (2 * tp + fp + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "iou": tp / (tp + fp + fn),
    }


@pytest.fixture
def scene(write):
    rng = np.random.default_rng(4)
    truth = blobs(SHAPE, seed=5, fraction=0.3)
    probability = np.clip(0.55 * truth + 0.6 * rng.random(SHAPE), 0, 1)
    mask = np.ones(SHAPE, np.uint8)
    mask[:6] = 0
    metric = np.ones(SHAPE, np.uint8)
    metric[:, :, -10:] = 0
    container = write("truth", truth.astype(np.uint8))
    write("p8", np.rint(probability * 255).astype(np.uint8), attrs={"class_name": "mito"})
    write("pf", probability.astype(np.float32))
    write("mask", mask)
    write("metric", metric)
    region = (mask != 0) & (metric != 0)
    masks = (DatasetRef(container, "mask"), DatasetRef(container, "metric"))
    return container, truth, probability, region, masks


@pytest.mark.parametrize("dataset", ["p8", "pf"])
def test_voxel_scores_and_sweep_equal_numpy(scene, dataset):
    container, truth, probability, region, masks = scene
    values = np.rint(probability * 255).astype(np.uint8) if dataset == "p8" else probability
    thresholds = sweep_thresholds(0.1, 0.9, 0.05)
    report = evaluate(
        DatasetRef(container, dataset),
        DatasetRef(container, "truth"),
        masks=masks,
        threshold=0.5,
        sweep=thresholds,
        block_edge=64,
        num_workers=0,
        progress=False,
    )
    name = "mito" if dataset == "p8" else "foreground"

    def at(t):
        positive = values >= (np.ceil(t * 255 - 1e-9) if dataset == "p8" else t)
        return _reference(positive[region], truth[region])

    expected = at(0.5)
    got = report["classes"][name]
    assert {k: got[k] for k in ("tp", "fp", "fn")} == {k: expected[k] for k in ("tp", "fp", "fn")}
    for key in ("f1", "precision", "recall", "iou"):
        assert got[key] == pytest.approx(expected[key], rel=1e-12)
    assert got["dice"] == got["f1"]
    assert [s["threshold"] for s in report["sweep"]] == thresholds
    for item in report["sweep"]:
        assert item["tp"] == at(item["threshold"])["tp"]
        assert item["fp"] == at(item["threshold"])["fp"]
    best_f1 = max(at(t)["f1"] for t in thresholds)
    assert report["best"]["f1"] == pytest.approx(best_f1, rel=1e-12)
    assert at(report["best"]["threshold"])["f1"] == pytest.approx(best_f1, rel=1e-12)
    assert 0.3 < report["best"]["threshold"] < 0.7


def test_blockwise_with_workers_equals_one_block(scene):
    container, _, _, _, masks = scene
    common = {"masks": masks, "threshold": 0.4, "sweep": [0.2, 0.6], "progress": False}
    pred, truth = DatasetRef(container, "p8"), DatasetRef(container, "truth")
    blockwise = evaluate(pred, truth, block_edge=64, num_workers=1, **common)
    whole = evaluate(pred, truth, block_edge=256, num_workers=0, **common)
    assert blockwise == whole


def test_multiclass_labels_per_class(write):
    rng = np.random.default_rng(6)
    truth = rng.integers(0, 3, SHAPE).astype(np.uint8)
    predicted = np.where(rng.random(SHAPE) < 0.8, truth, rng.integers(0, 3, SHAPE)).astype(np.uint8)
    container = write("truth", truth)
    write("seg", predicted, attrs={"class_names": ["background", "mito", "er"]})
    report = evaluate(
        DatasetRef(container, "seg"),
        DatasetRef(container, "truth"),
        block_edge=64,
        num_workers=0,
        progress=False,
    )
    assert list(report["classes"]) == ["mito", "er"]
    for c, name in ((1, "mito"), (2, "er")):
        expected = _reference(predicted == c, truth == c)
        assert {k: report["classes"][name][k] for k in expected} == pytest.approx(expected)


def _dense_object_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    p, n_p = ndimage.label(predicted)
    t, n_t = ndimage.label(truth)
    matched_p, matched_t = set(), set()
    candidates = []
    for i, j in itertools.product(range(1, n_p + 1), range(1, n_t + 1)):
        a, b = p == i, t == j
        iou = (a & b).sum() / (a | b).sum()
        if iou >= 0.5:
            candidates.append((-iou, i, j))
    for _, i, j in sorted(candidates):
        if i not in matched_p and j not in matched_t:
            matched_p.add(i)
            matched_t.add(j)
    return {"predicted": n_p, "true": n_t, "matched": len(matched_p)}


def test_object_scores_match_dense_reference(write):
    shape = (32, 64, 64)
    truth = np.zeros(shape, bool)
    predicted = np.zeros(shape, bool)
    for k, shift in enumerate((0, 1, 2, 5, 9)):  # IoU falls with the shift; 5 and 9 miss
        y = 4 + 12 * k
        truth[8:18, y : y + 10, 10:20] = True
        predicted[8:18, y : y + 10, 10 + shift : 20 + shift] = True
    predicted[24:28, 10:14, 40:44] = True  # a false object
    truth[24:30, 50:60, 30:60] = True  # cut in two by the mask; one half matched
    predicted[24:30, 50:60, 30:45] = True
    mask = np.ones(shape, np.uint8)
    mask[:, :, 45:50] = 0
    container = write("truth", truth.astype(np.uint8))
    write("seg", predicted.astype(np.uint8))
    write("mask", mask)
    report = evaluate(
        DatasetRef(container, "seg"),
        DatasetRef(container, "truth"),
        masks=(DatasetRef(container, "mask"),),
        truth_class=1,
        objects=True,
        block_edge=32,
        num_workers=0,
        progress=False,
    )
    (scores,) = report["objects"].values()
    inside = mask != 0
    expected = _dense_object_scores(predicted & inside, truth & inside)
    assert {k: scores[k] for k in expected} == expected
    assert expected == {"predicted": 7, "true": 7, "matched": 4}
    assert scores["precision"] == expected["matched"] / expected["predicted"]
    assert scores["recall"] == expected["matched"] / expected["true"]


def test_match_objects_is_one_to_one():
    pairs = np.array([[1, 1], [2, 1], [2, 2]])
    shared = np.array([8, 6, 5])
    result = match_objects(pairs, shared, np.array([0, 10, 10]), np.array([0, 10, 10]))
    assert result["matched"] == 1  # object 2 overlaps true 1 (taken) and true 2 (IoU 1/3)
    assert result["precision"] == 0.5 and result["recall"] == 0.5


def test_bad_input_is_one_line(write, scene):
    container, *_ = scene
    write("coarse", np.zeros((20, 35, 45), np.uint8), voxel_size=(20, 10, 10))
    pred, truth = DatasetRef(container, "p8"), DatasetRef(container, "truth")
    with pytest.raises(IncasemError, match="voxel size .* differs"):
        evaluate(pred, DatasetRef(container, "coarse"), threshold=0.5, progress=False)
    with pytest.raises(IncasemError, match="needs a probability map"):
        evaluate(pred, truth, sweep=[0.5], progress=False)
    with pytest.raises(IncasemError, match="must be a probability"):
        evaluate(pred, truth, threshold=1.5, progress=False)
    with pytest.raises(IncasemError, match="no dataset 'nope'"):
        evaluate(pred, DatasetRef(container, "nope"), threshold=0.5, progress=False)


def test_scores_cover_only_the_prediction_roi(write):
    truth = np.zeros((20, 40, 40), np.uint8)
    truth[2:8, 2:8, 2:8] = 1  # outside the prediction
    truth[12:18, 20:30, 20:30] = 1  # inside
    container = write("truth", truth)
    predicted = truth[10:, 10:, 10:].copy()
    write("seg", predicted, offset=(100 + 10 * 10, 50 + 10 * 5, 10 * 5))
    report = evaluate(
        DatasetRef(container, "seg"),
        DatasetRef(container, "truth"),
        truth_class=1,
        objects=True,
        num_workers=0,
        progress=False,
    )
    (scores,) = report["objects"].values()
    assert (scores["predicted"], scores["true"], scores["matched"]) == (1, 1, 1)
    (voxels,) = report["classes"].values()
    assert (voxels["tp"], voxels["fn"]) == (6 * 10 * 10, 0)
