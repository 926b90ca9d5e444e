"""The Lucchi yardstick (`benchmarks/lucchi_accuracy.py`): its one scoring code gives known
IoU values on a tiny slab, blockwise or whole, and its forest is the annotator's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Roi

import incasem.annotate.unary as unary
from incasem.annotate.seeds import BACKGROUND, ORGANELLE
from incasem.io.data_config import check_data_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import lucchi_forest  # noqa: E402
from lucchi_scoring import BoxScores, summary  # noqa: E402

VOXEL = (5, 5, 5)


def _slab() -> tuple[np.ndarray, np.ndarray]:
    """A 2x4x4 slab: 8 mitochondrion voxels (y, x < 2); p 0.9 on 6 of them, 0.7 on 2
    background voxels, 0.1 elsewhere."""
    class_ids = np.zeros((2, 4, 4), np.uint8)
    class_ids[:, :2, :2] = 1
    p = np.full((2, 4, 4), 0.1, np.float32)
    p[:, :2, 0] = 0.9
    p[:, 1, 1] = 0.9
    p[:, 3, 3] = 0.7
    return class_ids, p


def _boxes() -> dict[str, Roi]:
    # The crop is voxels y, x 1:3 of the slab: one mitochondrion column (y 1, x 1), p 0.9.
    return {"slab": Roi((0, 0, 0), (10, 20, 20)), "crop": Roi((0, 5, 5), (10, 10, 10))}


def test_known_iou_on_the_slab_and_the_crop():
    class_ids, p = _slab()
    boxes = BoxScores(_boxes(), VOXEL)
    boxes.add(_boxes()["slab"], p, class_ids, np.ones_like(class_ids, bool))
    scores = boxes.scores()
    # At 0.5: tp 6, fp 2, fn 2.
    assert scores["slab"]["iou"] == pytest.approx(0.6)
    assert scores["slab"]["f1"] == pytest.approx(0.75)
    # The best threshold lies above 0.7: tp 6, fp 0, fn 2.
    assert 0.7 < scores["slab"]["best_threshold"] <= 0.9
    assert scores["slab"]["best_iou"] == pytest.approx(0.75)
    assert scores["crop"]["iou"] == pytest.approx(1.0)
    assert scores["crop"]["pick_threshold"] == scores["slab"]["best_threshold"]
    assert scores["crop"]["at_pick_iou"] == pytest.approx(1.0)


def test_blocks_add_up_to_the_whole_and_unlabelled_voxels_do_not_count():
    class_ids, p = _slab()
    region = np.ones_like(class_ids, bool)
    region[:, 3, 3] = False  # the two false positives are not annotated
    whole = BoxScores(_boxes(), VOXEL)
    whole.add(_boxes()["slab"], p, class_ids, region)
    blocks = BoxScores(_boxes(), VOXEL)
    for y in (0, 2):
        roi = Roi((0, 5 * y, 0), (10, 10, 20))
        cut = np.s_[:, y : y + 2]
        blocks.add(roi, p[cut], class_ids[cut], region[cut])
    for name in ("slab", "crop"):
        assert np.array_equal(whole.histograms[name].as_array(), blocks.histograms[name].as_array())
    assert whole.scores()["slab"]["iou"] == pytest.approx(0.75)  # tp 6, fp 0, fn 2


def test_summary_over_seeds():
    s = summary([0.6, 0.8])
    assert s["mean"] == pytest.approx(0.7)
    assert s["sd"] == pytest.approx(0.2 / np.sqrt(2))
    assert (s["min"], s["max"]) == (0.6, 0.8)


def test_the_benchmark_fits_the_annotators_forest(small_container, tmp_path):
    assert lucchi_forest.fit_forest is unary.fit_forest
    assert lucchi_forest.ForestUnary is unary.ForestUnary
    config = tmp_path / "train.json"
    entry = {
        "file": small_container.name,
        "offset": [10, 10, 0],
        "shape": [40, 50, 60],
        "voxel_size": [10, 5, 5],
        "raw": "volumes/raw",
        "labels": {"volumes/labels/mito": 1},
    }
    config.write_text(json.dumps({"cell": entry}))
    train = check_data_config(config, data_root=tmp_path, num_classes=2).entries[0]
    seeds, info = lucchi_forest.training_seeds(train, tmp_path, 1, 30, seed=0)
    assert info["seeds_background_organelle"] == [30, 30]
    # Organelle seeds lie in the labelled cube (voxels 10:20, 10:30, 10:40), the others outside.
    z, y, x = seeds.coords.T
    inside = (10 <= z) & (z < 20) & (10 <= y) & (y < 30) & (10 <= x) & (x < 40)
    assert np.array_equal(inside, seeds.values == ORGANELLE)
    assert set(np.unique(seeds.values)) == {ORGANELLE, BACKGROUND}
    from incasem.io import open_array

    forest = unary.fit_forest(
        open_array(small_container, "volumes/raw"), train.roi, seeds, trees=3, jobs=2
    )
    assert forest.forest.n_jobs == 2
    assert forest.forest.n_estimators == 3


def test_report_gives_mean_and_spread_over_seeds(tmp_path):
    from argparse import Namespace

    from lucchi_report import write_report

    class_ids, p = _slab()
    runs = []
    for seed, shift in ((0, 0.0), (1, -0.5)):  # seed 1: every p lower, 0.5 gives tp 0
        boxes = BoxScores(_boxes(), VOXEL)
        boxes.add(_boxes()["slab"], p + shift, class_ids, np.ones_like(class_ids, bool))
        runs.append({"seed": seed, "minutes": 5.0, "scores": boxes.scores()})
    args = Namespace(
        sigmas=[1.0],
        forest_trees=3,
        forest_samples=60,
        forest_jobs=2,
        forest_tiles=1,
        forest_block_shape=[2, 4, 4],
    )
    row = {
        **lucchi_forest.forest_row(args, runs),
        "command": "python benchmarks/lucchi_accuracy.py --method forest",
        "machine": {"cpus": 2, "load_average_1_5_15_min": [1, 1, 1]},
    }
    write_report(tmp_path / "r", lambda results: results.__setitem__("forest", row))
    text = (tmp_path / "r.md").read_text()
    # Best IoU 0.75 for both seeds; at 0.5: 0.6 and 0.
    assert "| random forest | 2 | 0.750 ± 0.000 / 0.300 ± 0.424 |" in text
    assert "python benchmarks/lucchi_accuracy.py --method forest" in text
    assert (
        json.loads((tmp_path / "r.json").read_text())["results"]["forest"]["runs"][1]["seed"] == 1
    )
    assert (tmp_path / "r.png").is_file()


def test_seeds_run_one_at_a_time_make_one_row():
    from lucchi_report import merge_seeds

    def row(seeds, trees=3):
        return {
            "fit_forest": {"trees": trees},
            "runs": [{"seed": s, "minutes": float(s)} for s in seeds],
            "command": f"forest --seeds {' '.join(map(str, seeds))}",
            "machine": {"cpus": 2},
        }

    first = merge_seeds(None, row([0]))
    both = merge_seeds(first, row([1]))
    assert [r["seed"] for r in both["runs"]] == [0, 1]
    assert both["commands"] == ["forest --seeds 0", "forest --seeds 1"]
    # Seed 0 again replaces its run; other settings replace the row.
    again = merge_seeds(both, {**row([0]), "runs": [{"seed": 0, "minutes": 9.0}]})
    assert [(r["seed"], r["minutes"]) for r in again["runs"]] == [(0, 9.0), (1, 1.0)]
    assert [r["seed"] for r in merge_seeds(both, row([1], trees=50))["runs"]] == [1]


def test_test_time_post_processing_is_scored_per_box():
    """The card's post-processing removes a speck: slab IoU rises to 1, crop counts its part."""
    from lucchi_test_time import _mask_scores

    from incasem.postprocess.cleanup import PostProcessing

    truth = np.zeros((4, 8, 8), np.uint8)
    truth[1:3, 1:5, 1:5] = 1
    foreground = truth.astype(bool)
    foreground[0, 7, 7] = True  # one false voxel, far from the object
    region = np.ones_like(foreground)
    cuts = {"slab": (slice(None),) * 3, "crop": (slice(None), slice(0, 4), slice(0, 4))}
    before = _mask_scores(foreground, (truth, region), cuts)
    assert before["slab"] == pytest.approx(32 / 33) and before["crop"] == 1.0
    cleaned = PostProcessing(min_object_nm3=2 * 125).apply(foreground, (5, 5, 5))
    assert _mask_scores(cleaned, (truth, region), cuts) == {"slab": 1.0, "crop": 1.0}


def test_error_split_counts_boundaries_false_objects_and_recall():
    """A mask one voxel short of a cube's face and one speck far away: the missing face is all
    boundary error, the speck a false object; recall per labelled object; the ceiling of 2x the
    voxel size loses only the cube's corners; the report's row says all of it."""
    from lucchi_errors import ceiling, error_split, markdown, object_recall

    truth = np.zeros((8, 8, 8), bool)
    truth[2:6, 2:6, 2:6] = True  # 64 voxels
    mask = truth.copy()
    mask[5] = False  # the top face, 16 voxels, missed
    mask[0, 7, 7] = True  # a speck touching nothing
    split = error_split(mask, truth, boundary=1)
    assert split["false_negatives"] == split["false_negatives_at_boundary"] == 16
    assert split["false_positives"] == 1 and split["false_positives_at_boundary"] == 0
    assert (split["predicted_objects"], split["false_objects"]) == (2, 1)
    assert split["false_object_voxels"] == 1
    assert split["iou"] == pytest.approx(48 / 65)
    assert split["shifted_iou"]["axis 0 by +1"] == pytest.approx(48 / 65)  # moves the gap
    assert split["dilated_iou"] == pytest.approx(64 / 132)  # the gap filled, 68 voxels more
    assert split["iou_without_false_objects"] == pytest.approx(48 / 64)  # the speck gone
    assert split["iou_without_false_objects_or_boundary_misses"] == 1.0  # and the face back
    instances = np.where(truth, 3, 0).astype(np.uint32)
    instances[2:6, 2:6, 2] = 7  # a second object: the cube's x = 2 face, all found
    recall = object_recall(mask, instances)
    assert recall["7"] == {"voxels": 16, "recall": 0.75}
    assert recall["3"] == {"voxels": 48, "recall": 0.75}
    # The cube fills whole 2x2x2 voxels; linear upsampling rounds its 8 corners (0.75³ < 0.5).
    assert ceiling(truth, 2) == pytest.approx(56 / 64)
    # The report names its box and shows what the mask would score without each kind of error.
    report = {
        "command": "python benchmarks/lucchi_errors.py runs/seed0 --box train --out x",
        "box": "train",
        "boundary": 1,
        "ceiling": ceiling(truth, 2),
        "runs": {
            "runs/seed0": {
                "iteration": 4,
                "threshold": 0.5,
                "errors": split,
                "objects": recall,
            }
        },
    }
    text = markdown(report)
    assert text.startswith("# Lucchi train: where the errors are\n")
    row = next(line for line in text.splitlines() if line.startswith("| runs/seed0 |"))
    assert "| 1 of 2 (1) |" in row and row.endswith("| 0.750 | 1.000 | 0.875 |")
