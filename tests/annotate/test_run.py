"""Graph-cut annotation end to end on the synthetic cell: accuracy, outputs, ROI, errors."""

from __future__ import annotations

import numpy as np
import pytest

from incasem.annotate import CutSettings, annotate_graphcut, simulate_strokes
from incasem.errors import IncasemError
from incasem.io import create_array, list_datasets, open_array
from incasem.io.data_config import DataEntry
from incasem.metrics import ConfusionCounts
from incasem.phantom import write_cell


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """A 96³ synthetic cell (5 nm voxels) with mitochondria and strokes on 3 planes per axis."""
    path = tmp_path_factory.mktemp("annotate") / "cell.zarr"
    write_cell(path, shape=(96, 96, 96))
    truth = open_array(path, "volumes/labels/mito")[:]
    seeds = create_array(path, "volumes/seeds/mito", truth.shape, (5, 5, 5))
    seeds[seeds.roi] = simulate_strokes(truth, planes_per_axis=3)
    return path


def _f1(prediction: np.ndarray, truth: np.ndarray) -> float:
    return ConfusionCounts.from_arrays(prediction != 0, truth != 0, None, 2).class_scores(1)["f1"]


def test_strokes_on_three_planes_per_axis_give_f1_above_090(cell):
    seeds = open_array(cell, "volumes/seeds/mito")[:]
    assert 0 < (seeds > 0).mean() < 0.01
    result = annotate_graphcut(
        cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/gc", num_workers=0,
        progress=False, settings=CutSettings(model="gmm"),
    )  # fmt: skip
    labels = open_array(cell, "volumes/labels/gc")
    assert labels.dtype == np.uint8 and set(np.unique(labels[:])) <= {0, 1}
    truth = open_array(cell, "volumes/labels/mito")[:]
    assert _f1(labels[:], truth) >= 0.90
    assert result.labels == f"{cell}/volumes/labels/gc"
    with pytest.raises(IncasemError, match="already exists; pass --overwrite"):
        annotate_graphcut(cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/gc")


def test_roi_outputs_and_data_config_entry(cell):
    result = annotate_graphcut(
        cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/roi", roi_offset=(16, 8, 0),
        roi_shape=(64, 80, 96), num_workers=0, progress=False,
    )  # fmt: skip
    labels = open_array(cell, "volumes/labels/roi")
    assert list(labels.roi.offset) == [80, 40, 0] and labels.shape == (64, 80, 96)
    mask = open_array(cell, "volumes/masks/roi")[:]
    assert mask.shape == (96, 96, 96)
    assert mask[16:80, 8:88].all() and mask.sum() == 64 * 80 * 96
    ((name, entry),) = result.entry.items()
    parsed = DataEntry(name=name, **entry)
    assert parsed.offset == [16, 8, 0] and parsed.shape == [64, 80, 96]
    assert parsed.labels == {"volumes/labels/roi": 1} and parsed.mask == "volumes/masks/roi"


def test_seed_array_and_supervoxels(cell):
    truth = open_array(cell, "volumes/labels/mito")[:]
    seeds = simulate_strokes(truth, planes_per_axis=3)

    annotate_graphcut(
        cell, "volumes/raw", seeds, "volumes/labels/sv", settings=CutSettings(supervoxels=200),
        num_workers=0, progress=False,
    )  # fmt: skip
    assert _f1(open_array(cell, "volumes/labels/sv")[:], truth) >= 0.85


def test_bad_seeds_are_one_line_errors(cell):
    truth = open_array(cell, "volumes/labels/mito")[:]
    with pytest.raises(IncasemError, match="only one class; mark some background"):
        annotate_graphcut(cell, "volumes/raw", "volumes/labels/mito", "volumes/labels/bad")
    with pytest.raises(IncasemError, match=r"no seeds .* inside the ROI \[0:4, 0:4, 0:4\]"):
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/bad",
            roi_offset=(0, 0, 0), roi_shape=(4, 4, 4),
        )  # fmt: skip
    with pytest.raises(IncasemError, match="differs from the ROI"):
        annotate_graphcut(cell, "volumes/raw", truth[:5], "volumes/labels/bad")
    with pytest.raises(IncasemError, match=r"ROI \[90:190, 0:4, 0:4\] \(voxels\) is not inside"):
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/bad",
            roi_offset=(90, 0, 0), roi_shape=(100, 4, 4),
        )  # fmt: skip
    assert "volumes/labels/bad" not in list_datasets(cell)


def test_outlier_cleanup_removes_unlikely_voxels_but_keeps_seeds(cell):
    seeds = open_array(cell, "volumes/seeds/mito")[:]
    sizes = {}
    for outliers in (0.0, 0.3):
        name = f"volumes/labels/outliers_{outliers}"
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", name, num_workers=0, progress=False,
            settings=CutSettings(model="gmm", outliers=outliers),
        )  # fmt: skip
        labels = open_array(cell, name)[:]
        assert labels[seeds == 1].all()
        sizes[outliers] = int(labels.sum())
    assert sizes[0.3] < 0.95 * sizes[0.0]
    with pytest.raises(IncasemError, match="--outliers 1.0 must be a fraction"):
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/bad",
            settings=CutSettings(model="gmm", outliers=1.0),
        )  # fmt: skip
    with pytest.raises(IncasemError, match=r"--outliers needs a gray-value model \(--model gmm"):
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", "volumes/labels/bad",
            settings=CutSettings(model="forest", outliers=0.1),
        )  # fmt: skip


def test_the_forest_unary_learns_the_organelle_from_the_strokes(cell):
    truth = open_array(cell, "volumes/labels/mito")[:]
    labels = {}
    for refine in (0, None):
        output = f"volumes/labels/forest_{refine}"
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", output, num_workers=0, progress=False,
            settings=CutSettings(model="forest", smoothness=2.0, refine=refine),
        )  # fmt: skip
        result = open_array(cell, output)
        assert result.attrs["incasem_annotate"]["refine"] == (3 if refine is None else 0)
        labels[refine] = result[:]
        assert _f1(labels[refine], truth) >= 0.85
    assert (labels[0] != labels[None]).any()  # the band was re-cut


def test_edge_smoothing_reaches_the_pairwise_term(cell):
    labels = {}
    for sigma in (0.0, 2.0):
        output = f"volumes/labels/edge_{sigma:g}"
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", output,
            settings=CutSettings(edge_sigma=sigma), num_workers=0, progress=False,
        )  # fmt: skip
        labels[sigma] = open_array(cell, output)[:]
    assert (labels[0.0] != labels[2.0]).any()


def test_lambda_and_refine_default_to_the_unarys_own():
    """Without --lambda the forest (the default unary) gets a lower pairwise weight (3) than
    the gray-value models (12), as its costs are sharper, and its boundary band is re-cut with
    gray values (3 voxels); given values always win."""
    assert CutSettings().model == "forest"
    assert CutSettings().pairwise_weight == 3.0 and CutSettings().refine_width == 3
    assert CutSettings(model="gmm").pairwise_weight == 12.0
    assert CutSettings(model="histogram").pairwise_weight == 12.0
    assert CutSettings(model="forest", smoothness=0.5).pairwise_weight == 0.5
    assert CutSettings(model="gmm").refine_width == 0
    assert CutSettings(model="forest", refine=0).refine_width == 0
    with pytest.raises(IncasemError, match="--refine -1 >= 0"):
        CutSettings(refine=-1).check()
    with pytest.raises(IncasemError, match="--lambda -1.0 must be >= 0"):
        CutSettings(smoothness=-1.0).check()


@pytest.mark.slow
def test_worker_processes_rebuild_the_cut_from_json_and_cut_the_same_labels(cell):
    """Workers get paths and numbers only (no pickled forest): each loads the seeds and fits the
    seeded forest itself, and cuts exactly what the cut in this process cuts."""
    for workers in (0, 1):
        annotate_graphcut(
            cell, "volumes/raw", "volumes/seeds/mito", f"volumes/labels/w{workers}",
            roi_offset=(16, 0, 0), roi_shape=(48, 96, 96), num_workers=workers, progress=False,
        )  # fmt: skip
    here, workers = (open_array(cell, f"volumes/labels/w{n}")[:] for n in (0, 1))
    assert here.any() and np.array_equal(here, workers)
    assert not list(cell.glob(".incasem-seeds-*"))  # the seeds file is gone
