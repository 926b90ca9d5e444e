"""``training.augmentation.defect``: gunpowder's DefectAugment drops and fades whole z-sections."""

from __future__ import annotations

from pathlib import Path

import gunpowder as gp
import numpy as np

from incasem.pipeline import TrainingKeys, batch_pipeline, training_request
from incasem.training.config import parse_config
from incasem.training.loop import check_training_config, seed_everything


class _Copy(gp.BatchFilter):
    """Copies raw into ``target`` where it stands in the pipeline (a probe, from Python)."""

    def __init__(self, source: gp.ArrayKey, target: gp.ArrayKey) -> None:
        self.source, self.target = source, target

    def setup(self) -> None:
        self.provides(self.target, self.spec[self.source].copy())

    def prepare(self, request: gp.BatchRequest) -> gp.BatchRequest:
        deps = gp.BatchRequest()
        deps[self.source] = request[self.target].copy()
        return deps

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> gp.Batch:
        outputs = gp.Batch()
        array = batch[self.source]
        outputs[self.target] = gp.Array(array.data.copy(), array.spec.copy())
        return outputs


def test_defects_drop_and_fade_whole_z_sections_only(tmp_path: Path, phantom_training):
    base = phantom_training(
        (64, 64, 64),
        offset=(0, 0, 0),
        shape=(64, 64, 64),
        training={
            "input_size_voxels": [44, 44, 44],
            "output_size_voxels": [26, 26, 26],
            "reject": {"min_masked": 0.0},
            "augmentation": {
                "elastic": {"enabled": False},
                "simple": {"enabled": False},
                "intensity": {"enabled": False},
                "defect": {"enabled": True, "prob_missing": 0.2, "prob_low_contrast": 0.2},
            },
        },
        model={"num_fmaps": 2, "downsample_factors": [[2, 2, 2]]},
    )
    assert parse_config({}).training.augmentation.defect.enabled is False  # off for FIB-SEM
    keys = TrainingKeys.create()
    before, after = gp.ArrayKey("RAW_BEFORE_DEFECTS"), gp.ArrayKey("RAW_AFTER_DEFECTS")
    # With every other augmentation off, raw after the sources is raw just before the defects.
    probes = {
        "after_sources": [_Copy(keys.raw, before)],
        "after_augmentation": [_Copy(keys.raw, after)],
    }
    config = base
    pipeline = batch_pipeline(config, check_training_config(config).train, keys, tmp_path, probes)
    request = training_request(config, keys)
    request[before] = request[keys.raw].copy()
    request[after] = request[keys.raw].copy()
    seen = {"missing": 0, "low_contrast": 0, "unchanged": 0}
    seed_everything(0)
    with gp.build(pipeline):
        for _ in range(3):
            batch = pipeline.request_batch(request)
            clean, augmented = batch[before].data, batch[after].data
            assert clean.shape == (44, 44, 44) and clean.std() > 0.01
            for z in range(clean.shape[0]):
                section, original = augmented[z], clean[z]
                if np.array_equal(section, original):
                    seen["unchanged"] += 1
                elif not section.any():
                    seen["missing"] += 1
                else:
                    mean = original.mean()
                    assert np.allclose(section, (original - mean) * 0.1 + mean, atol=1e-5)
                    seen["low_contrast"] += 1
    assert all(count > 0 for count in seen.values()), seen
