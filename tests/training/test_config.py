"""The training config: documented defaults, original key names, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from incasem.errors import IncasemError
from incasem.training.config import default_config, parse_config


def test_documented_yaml_equals_defaults(repo_root):
    documented = yaml.safe_load((repo_root / "configs" / "training.yaml").read_text())
    assert documented == default_config()


def test_original_key_names_are_accepted():
    config = parse_config(
        {
            "training": {
                "data": "x.json",
                "iterations": 10,
                "input_size_voxels": [204, 204, 204],
                "output_size_voxels": [110, 110, 110],
                "save_every": 5,
                "reject": {"min_masked": 0.1, "reject_probability": 0.5},
            },
            "validation": {"data": "v.json", "validate_every": 5},
            "model": {"num_fmaps": 12, "fmap_inc_factor": 2, "downsample_factors": [[1, 2, 2]] * 3},
            "data": {"voxel_size": [40, 6, 6], "num_classes": 2},
            "loss": {"balance_labels": {"clipmin": 0.01, "clipmax": 0.99}},
            "torch": {"device": 0},
            "directories": {"runs": "r", "data": "d"},
            "seed": 123,
        }
    )
    assert config.torch.device == "cuda:0"
    assert config.class_names == ["background", "class_1"]


@pytest.mark.parametrize(
    "update, message",
    [
        ({"training": {"iteration": 5}}, "unknown config key 'training.iteration'"),
        ({"training": {"iterations": 0}}, "config key 'training.iterations' = 0"),
        ({"torch": {"device": "gpu"}}, "config key 'torch.device' = 'gpu'"),
        ({"model": {"type": "Resnet"}}, "only 'Unet' is available"),
        (
            {"data": {"class_names": ["a"]}},
            "data.class_names has 1 names but data.num_classes is 2",
        ),
        ({"training": {"input_size_voxels": [204, 204]}}, "training.input_size_voxels"),
    ],
)
def test_bad_config_values_fail_in_one_line(update, message):
    with pytest.raises(IncasemError) as error:
        parse_config(update)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_null_on_the_command_line_means_none():
    # `validation.data=null` reaches the config as the string "null" through Sacred
    config = parse_config({"validation": {"data": "null"}, "training": {"start_from": "None"}})
    assert config.validation.data is None and config.training.start_from is None
    assert parse_config({"validation": {"data": "v.json"}}).validation.data == "v.json"


def test_lists_in_the_originals_command_line_spelling():
    # `with data.class_names=[background,mito]` reaches the config as that string (Sacred keeps
    # what Python cannot read as a literal); YAML's flow syntax reads the list it means.
    config = parse_config(
        {
            "data": {"class_names": "[background,mito]"},
            "model": {"downsample_factors": "[[1,2,2],[1,2,2],[2,2,2]]"},
        }
    )
    assert config.data.class_names == ["background", "mito"]
    assert config.model.downsample_factors == [[1, 2, 2], [1, 2, 2], [2, 2, 2]]
    with pytest.raises(IncasemError, match=r"config key 'data.class_names' = '\[a,'"):
        parse_config({"data": {"class_names": "[a,"}})
    # strings stay strings where a string is meant
    assert parse_config({"training": {"data": "[x].json"}}).training.data == "[x].json"


def test_validation_blocks_auto_and_loss_types():
    assert (
        parse_config({"validation": {"input_size_voxels": "auto"}}).validation.input_size_voxels
        == "auto"
    )
    assert parse_config({"loss": {"type": "cross_entropy_dice"}}).loss.type == "cross_entropy_dice"
    with pytest.raises(IncasemError, match="loss.type"):
        parse_config({"loss": {"type": "dice_only"}})


def test_elastic_widths_are_nm_converted_per_axis():
    """A 40 x 6 x 6 nm serial-section volume deforms over the same distances as 5 nm FIB-SEM."""
    elastic = parse_config({}).training.augmentation.elastic
    assert elastic.in_voxels([5, 5, 5]) == ([32, 32, 32], [2.0, 2.0, 2.0])  # the original's
    spacing, jitter = elastic.in_voxels([40, 6, 6])
    assert spacing == [4, 27, 27] and jitter == pytest.approx([0.25, 10 / 6, 10 / 6])
    # the original's voxel keys still load and win
    original = parse_config(
        {"training": {"augmentation": {"elastic": {"control_point_spacing": [10, 20, 20]}}}}
    ).training.augmentation.elastic
    assert original.in_voxels([40, 6, 6])[0] == [10, 20, 20]
