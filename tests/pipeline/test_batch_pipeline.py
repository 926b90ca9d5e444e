"""The batch-preparing half of the training pipeline on a real (synthetic) zarr volume."""

from __future__ import annotations

from pathlib import Path

import gunpowder as gp
import numpy as np

from incasem.pipeline import TrainingKeys, batch_pipeline, training_request
from incasem.training.config import parse_config
from incasem.training.loop import check_training_config, seed_everything


def test_rotated_batches_from_a_volume_smaller_than_the_network_input(
    tmp_path: Path, phantom_training
):
    # A 64³ annotated volume and a 124³ input: every batch needs raw from beyond the dataset,
    # and rotations by up to 90 degrees widen that need by up to sqrt(2).
    config = phantom_training(
        (64, 64, 64),
        offset=(0, 0, 0),
        shape=(64, 64, 64),
        name="small",
        training={
            "input_size_voxels": [124, 124, 124],
            "output_size_voxels": [30, 30, 30],
            "reject": {"min_masked": 0.0},
        },
    )
    keys = TrainingKeys.create()
    request = training_request(config, keys)
    pipeline = batch_pipeline(config, check_training_config(config).train, keys, tmp_path)
    seed_everything(0)
    with gp.build(pipeline):
        batches = [pipeline.request_batch(request) for _ in range(4)]
    for batch in batches:
        raw, labels, scales = batch[keys.raw].data, batch[keys.labels].data, batch[keys.scales].data
        assert raw.shape == (124, 124, 124)
        assert -1 <= raw.min() and raw.max() <= 1 and raw.std(dtype=np.float64) > 0.05
        assert labels.shape == scales.shape == (30, 30, 30) and labels.dtype == np.uint8
        assert raw.dtype == np.float16  # 8-bit raw crosses to the training process as float16
        assert set(np.unique(labels)) <= {0, 1}
        # the loss weights are zero wherever labels are unknown (outside the annotated volume)
        valid = batch[keys.valid].data
        assert np.all(scales[valid == 0] == 0)


def test_without_class_balancing_every_annotated_voxel_weighs_one(tmp_path: Path, phantom_training):
    """``loss.balance_labels.enabled: false`` (the CPU recipe): plain cross entropy over the
    annotated voxels, whatever the class fractions of the batch; balanced, the rarer class
    weighs more."""
    base = phantom_training(
        (64, 64, 64),
        offset=(0, 0, 0),
        shape=(64, 64, 64),
        training={
            "input_size_voxels": [124, 124, 124],
            "output_size_voxels": [30, 30, 30],
            "reject": {"min_masked": 0.01, "reject_probability": 1.0},
        },
    )
    weights, rarer = {}, {}
    for enabled in (True, False):
        values = base.model_dump()
        values["loss"]["balance_labels"]["enabled"] = enabled
        config = parse_config(values)
        keys = TrainingKeys.create()
        pipeline = batch_pipeline(config, check_training_config(config).train, keys, tmp_path)
        seed_everything(0)
        with gp.build(pipeline):
            # a window may lie inside one mitochondrion: take the first batch with both classes
            for _ in range(20):
                batch = pipeline.request_batch(training_request(config, keys))
                labels, scales = batch[keys.labels].data, batch[keys.scales].data
                valid = batch[keys.valid].data.astype(bool)
                if all((valid & (labels == c)).any() for c in (0, 1)):
                    break
        weights[enabled] = {c: set(np.unique(scales[valid & (labels == c)])) for c in (0, 1)}
        rarer[enabled] = int(np.argmin([(valid & (labels == c)).sum() for c in (0, 1)]))
        assert np.all(scales[~valid] == 0)
    assert weights[False] == {0: {1.0}, 1: {1.0}}
    # The batch's location is random: either class may be the rarer one in it.
    assert all(weights[True][c] for c in (0, 1)), "no batch held both classes"
    (rare,), (common,) = weights[True][rarer[True]], weights[True][1 - rarer[True]]
    assert rare > 1.0 > common
