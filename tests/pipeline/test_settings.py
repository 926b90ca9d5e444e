"""The pipeline's own settings, as a training config gives them: the values the pipeline acts
on, converted once (elastic distances nm -> voxels; an augmentation that is off is None)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from incasem.pipeline import PipelineSettings
from incasem.training.config import parse_config

NODE = {"class": "my_lab.nodes:SectionBrightness", "place": "after_sources", "args": {"step": 1}}


def test_a_training_config_gives_the_pipeline_its_settings():
    config = parse_config(
        {
            "data": {"voxel_size": [40, 6, 6], "num_classes": 3},
            "training": {
                "input_size_voxels": [60, 60, 60],
                "output_size_voxels": [20, 20, 20],
                "augmentation": {"noise": {"enabled": True, "var": 0.002}},
                "reject": {"min_masked": 0.2},
                "pipeline": {"extra_nodes": [NODE]},
                "snapshot": {"every": 7},
            },
            "loss": {"balance_labels": {"enabled": False}},
            "torch": {"device": 0},
        }
    )
    settings = config.pipeline_settings()
    assert settings.voxel_size == (40, 6, 6)
    assert (settings.input_size_voxels, settings.output_size_voxels) == ((60,) * 3, (20,) * 3)
    assert settings.num_classes == 3 and settings.device == "cuda:0"
    augment = settings.augmentation
    # 160 nm of control-point spacing and 10 nm of jitter at 40 x 6 x 6 nm
    assert augment.elastic.control_point_spacing == (4, 27, 27)
    assert augment.elastic.jitter_sigma == pytest.approx((0.25, 10 / 6, 10 / 6))
    assert augment.noise.var == 0.002 and augment.gamma is None and augment.defect is None
    assert augment.simple.mirror and augment.simple.transpose_only is None
    assert settings.reject.min_masked == 0.2 and settings.reject.max_attempts == 10000
    assert settings.balance is None  # every valid voxel weighs 1
    assert [node.model_dump() for node in settings.extra_nodes] == [NODE]
    assert settings.snapshot_every == 7 and settings.precache.num_workers == 1


def test_the_settings_are_frozen_and_know_their_keys():
    settings = parse_config({}).pipeline_settings()
    with pytest.raises(ValidationError):
        settings.seed = 1
    with pytest.raises(ValidationError, match="voxel_sizes"):
        PipelineSettings(**settings.model_dump(), voxel_sizes=(5, 5, 5))
