"""Planning the network from the voxel size and the annotated ROIs (``incasem plan``,
``model.downsample_factors: auto``), and training that fails fast when outputs cannot fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.torch.models import shapes
from incasem.training.config import parse_config
from incasem.training.loop import check_training_config
from incasem.training.plan import plan_downsample_factors, plan_network, resolve_auto


@pytest.mark.parametrize(
    ("voxel_size", "factors"),
    [
        ([5, 5, 5], [[2, 2, 2]] * 3),  # ASEM's network for 5 nm FIB-SEM
        ([40, 6, 6], [[1, 2, 2], [1, 2, 2], [2, 2, 2]]),  # serial block-face: z waits for y, x
        ([10, 4, 4], [[1, 2, 2], [2, 2, 2], [2, 2, 2]]),
        ([8, 8, 4], [[2, 2, 2], [2, 2, 2], [2, 2, 2]]),  # within a factor 2: all axes
    ],
)
def test_axes_are_halved_only_while_within_twice_the_finest(voxel_size, factors):
    assert plan_downsample_factors(voxel_size) == factors


def test_isotropic_5_nm_gives_the_asem_network():
    plan = plan_network([5, 5, 5], [[130, 768, 1024]])
    assert plan.input_size_voxels == [204, 204, 204]
    assert plan.output_size_voxels == [110, 110, 110]
    assert plan.context_voxels == [47, 47, 47] and plan.context_nm == [235, 235, 235]


def test_serial_sections_get_outputs_that_fit_the_annotated_depth():
    plan = plan_network([40, 6, 6], [[14, 300, 300], [20, 1024, 1024]])
    assert plan.output_size_voxels == [14, 86, 86]  # 560 x 516 x 516 nm; 14 sections fit
    assert plan.input_size_voxels == [48, 180, 180]
    assert list(shapes.output_shape(plan.input_size_voxels, plan.downsample_factors)) == [
        14,
        86,
        86,
    ]
    with pytest.raises(IncasemError, match="along z it holds 1, less than the smallest output"):
        plan_network([40, 6, 6], [[1, 300, 300]])


def test_memory_shrinks_the_longest_axis_first():
    small = plan_network([5, 5, 5], [[500, 500, 500]], num_fmaps=32, memory_bytes=8 * 2**30)
    assert small.output_size_voxels < [110, 110, 110]
    assert all(s % 8 == 6 for s in small.output_size_voxels)


def _cdeep3m_config(tmp_path: Path, shared_data: Path, depth: int) -> Path:
    entry = {
        "file": str(shared_data / "cdeep3m_mito_train.zarr"),
        "offset": [10, 0, 0],  # world voxels: the volume starts at z = 400 nm
        "shape": [depth, 512, 512],
        "voxel_size": [40, 6, 6],
        "raw": "volumes/raw",
        "labels": {"volumes/labels/mitochondria": 1},
    }
    path = tmp_path / "cdeep3m.json"
    path.write_text(json.dumps({"block": entry}))
    return path


def test_plan_command_and_auto_keys_on_real_serial_section_data(tmp_path, shared_data, capsys):
    config = _cdeep3m_config(tmp_path, shared_data, 14)
    assert main(["plan", str(config)]) == 0
    out = capsys.readouterr().out
    assert "downsample factors:  [[1, 2, 2], [1, 2, 2], [2, 2, 2]]" in out
    assert "training output:     [14, 86, 86] voxels = [560, 516, 516] nm" in out
    assert "context per side:    [17, 47, 47] voxels = [680, 282, 282] nm" in out
    planned, plan = resolve_auto(
        {
            "training": {
                "data": str(config),
                "input_size_voxels": "auto",
                "output_size_voxels": "auto",
            },
            "model": {"downsample_factors": "auto", "num_fmaps": 8},
        }  # fmt: skip
    )
    assert plan is not None and planned == plan.config_updates()
    assert planned["training.output_size_voxels"] == [14, 86, 86]
    assert resolve_auto({"training": {"data": str(config)}}) == ({}, None)


def test_training_fails_fast_with_the_plan_when_outputs_cannot_fit(tmp_path, shared_data):
    """The default 110-section output on a 14-section ROI: refused before sampling starts."""
    config = _cdeep3m_config(tmp_path, shared_data, 14)
    training = parse_config(
        {
            "training": {"data": str(config)},
            "directories": {"data": "."},
            "data": {"voxel_size": [40, 6, 6]},
        }
    )
    with pytest.raises(IncasemError) as error:
        check_training_config(training)
    message = str(error.value)
    assert message.startswith(
        "training.output_size_voxels [110, 110, 110] is larger than the annotated ROIs allow: at "
        "most 13 % of an output block lies inside one (e.g. block, 14 x 512 x 512 voxels)"
    )
    assert (
        "proposes model.downsample_factors=[[1,2,2],[1,2,2],[2,2,2]] "
        "training.input_size_voxels=[48,180,180] training.output_size_voxels=[14,86,86]"
    ) in message


def test_auto_in_a_config_given_to_the_library_says_where_it_is_planned():
    with pytest.raises(IncasemError, match="'auto' is planned from the training data by"):
        parse_config({"model": {"downsample_factors": "auto"}})
