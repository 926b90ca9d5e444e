"""The prediction plan is frozen and complete before execution; a checkpoint needs no run folder.

Planning answers a frozen `PredictionPlan`; the reservation (`reserve_outputs`) is the one step
that decides what planning leaves open (a new prediction's id and group) and answers a new plan;
execution reads the plan and changes nothing in it.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil

import numpy as np
import pytest

from incasem.io import open_array
from incasem.predict import PredictionPlan, execute_plan, plan_prediction, predict
from incasem.predict.reserve import reserve_outputs
from incasem.predict.settings import PredictionSettings

from .conftest import file_tree, read_dataset, write_checkpoint


def _settings(checkpoint, cell, **changes) -> PredictionSettings:
    return PredictionSettings(
        checkpoint=str(checkpoint), input=str(cell), roi=[10, 10, 0, 8, 16, 16],
        input_size_voxels=[84, 84, 84], device="cpu", progress=False, **changes,
    )  # fmt: skip


def test_the_plan_is_frozen(tmp_path, cell):
    plan = plan_prediction(_settings(write_checkpoint(tmp_path / "model.pt", "unet2"), cell))
    assert isinstance(plan, PredictionPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.group = "volumes/predictions/elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.entries[0].outputs = None  # type: ignore[misc]
    assert isinstance(plan.entries, tuple) and isinstance(plan.class_names, tuple)


def test_an_output_group_is_planned_completely_and_execution_changes_nothing(tmp_path, cell):
    """With ``output_group`` nothing is left to decide: planning alone gives every output, and
    the outputs written are those the plan named."""
    settings = _settings(write_checkpoint(tmp_path / "model.pt", "unet2"), cell,
                         output_group="mine")  # fmt: skip
    before = file_tree(tmp_path)
    plan = plan_prediction(settings)
    assert file_tree(tmp_path) == before  # planning writes nothing
    assert plan.reserved and plan.group == "mine"
    (entry,) = plan.entries
    assert entry.outputs is not None and entry.outputs.group == "mine/cell"
    assert entry.outputs.datasets() == [
        "mine/cell/prob_maps/class_0", "mine/cell/prob_maps/class_1", "mine/cell/segmentation",
    ]  # fmt: skip
    kept = copy.deepcopy(plan)
    result = execute_plan(plan)
    assert plan == kept  # execution read the plan and changed nothing in it
    assert result.group == "mine" and result.entries[0].datasets == entry.outputs.datasets()


def test_a_new_prediction_is_completed_by_its_reservation(tmp_path, cell):
    """A new prediction's id and group are the one thing planning leaves open: the reservation
    claims them, creates the empty datasets and answers the completed plan; the plan it was
    given is unchanged."""
    plan = plan_prediction(_settings(write_checkpoint(tmp_path / "model.pt", "unet2"), cell))
    assert plan.group is None and plan.prediction_id is None and not plan.reserved
    assert all(entry.outputs is None for entry in plan.entries)
    kept = copy.deepcopy(plan)
    reserved = reserve_outputs(plan)
    assert plan == kept
    assert reserved.reserved and reserved.prediction_id == 1
    assert reserved.group == "volumes/predictions/model/predict_0001"
    outputs = reserved.entries[0].outputs
    assert outputs.group == "volumes/predictions/model/predict_0001/cell"
    segmentation = open_array(cell, outputs.segmentation)
    assert list(segmentation.roi.shape / segmentation.voxel_size) == [8, 16, 16]
    # everything but the reserved outputs is the plan's
    unreserved = dataclasses.replace(reserved, group=None, prediction_id=None, entries=plan.entries)
    assert unreserved == plan


def test_a_checkpoint_moved_out_of_its_run_folder_predicts_the_same(tmp_path, cell):
    """A checkpoint carries what prediction needs (model card: sizes, voxel size, classes,
    threshold, normalisation): moved alone to another folder it predicts the same values; only
    the outputs' model folder, named by the run in its run folder, is then its file name."""
    run_copy = tmp_path / "runs" / "5" / "checkpoints" / "model_checkpoint_10.pt"
    run_copy.parent.mkdir(parents=True)
    write_checkpoint(run_copy, "unet2", threshold=0.4)
    alone = tmp_path / "elsewhere" / "mito.pt"
    alone.parent.mkdir()
    shutil.copy(run_copy, alone)

    in_run = predict(_settings(run_copy, cell))
    moved = predict(_settings(alone, cell))
    assert in_run.model == "train_0005" and moved.model == "mito"
    assert moved.threshold == in_run.threshold == pytest.approx(0.4)
    for a, b in zip(in_run.entries[0].datasets, moved.entries[0].datasets, strict=True):
        assert np.array_equal(read_dataset(cell, a), read_dataset(cell, b))
