"""The public API: a user's node through the config, one-line refusals, training and in-memory
prediction from Python, the original's JSON config, the package face."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import incasem
from incasem.io import create_array, open_array
from incasem.torch.checkpoint import load_checkpoint
from incasem.training.cli import main as train_main

#: A node as a lab would write it, in its own package outside incasem: it adds
#: ``step * (section % 3)`` to every voxel of each z-section of the batch.
NODE_MODULE = """
import gunpowder as gp
import numpy as np


class SectionBrightness(gp.BatchFilter):
    def __init__(self, step, array="RAW"):
        self.step = step
        self.array = gp.ArrayKey(array)

    def process(self, batch, request):
        raw = batch[self.array]
        sections = np.arange(raw.data.shape[0]) % 3
        raw.data += (self.step * sections).astype(raw.data.dtype)[:, None, None]


class NotANode:
    pass
"""

NODE = {"class": "my_lab.nodes:SectionBrightness", "place": "after_sources", "args": {"step": 0.25}}
GREY = 100  # the whole raw volume: the snapshot shows the node's effect alone


def _write_package(folder: Path) -> None:
    (folder / "my_lab").mkdir()
    (folder / "my_lab" / "__init__.py").write_text("")
    (folder / "my_lab" / "nodes.py").write_text(NODE_MODULE)


def _importable(patch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder``'s packages importable here and in processes started from here."""
    patch.syspath_prepend(str(folder))
    patch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.getenv("PYTHONPATH")]))
    )


def _write_data(folder: Path) -> Path:
    """A 64³ volume at 5 nm of constant raw with a labelled cube, and its data config."""
    container = folder / "flat.zarr"
    raw = create_array(container, "volumes/raw", (64, 64, 64), (5, 5, 5))
    raw[raw.roi] = np.full((64, 64, 64), GREY, np.uint8)
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[16:48, 16:48, 16:48] = 1
    mito = create_array(container, "volumes/labels/mito", (64, 64, 64), (5, 5, 5))
    mito[mito.roi] = labels
    data = folder / "data.json"
    entry = {"file": "flat.zarr", "offset": [0, 0, 0], "shape": [64, 64, 64]}
    entry |= {"voxel_size": [5, 5, 5], "raw": "volumes/raw", "labels": {"volumes/labels/mito": 1}}
    data.write_text(json.dumps({"flat": entry}))
    return data


def _config(folder: Path, data: Path, **training) -> dict:
    """Two iterations of a one-level, two-feature-map U-Net on 44³ inputs (26³ outputs)."""
    return {
        "directories": {"runs": str(folder / "runs"), "data": str(folder)},
        "training": {
            "data": str(data),
            "iterations": 2,
            "input_size_voxels": [44, 44, 44],
            "output_size_voxels": [26, 26, 26],
            "snapshot": {"every": 1},
            "augmentation": {
                "elastic": {"enabled": False},
                "simple": {"enabled": False},
                "intensity": {"enabled": False},
            },
            **training,
        },
        "model": {"num_fmaps": 2, "downsample_factors": [[2, 2, 2]]},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained through `incasem.train` with the user's node from the config."""
    folder = tmp_path_factory.mktemp("api")
    _write_package(folder)
    data = _write_data(folder)
    with pytest.MonkeyPatch.context() as patch:
        _importable(patch, folder)
        run = incasem.train(
            _config(folder, data), {"training.pipeline.extra_nodes": [NODE]}, name="nodes"
        )
    return folder, data, run


@pytest.mark.slow
def test_a_users_node_from_the_config_is_in_the_snapshot_config_and_card(trained):
    folder, _, run = trained
    assert run.run_dir == folder / "runs" / "1" and run.run_id == "1"
    assert run.checkpoint == run.run_dir / "checkpoints" / "model_checkpoint_2.pt"
    assert run.result["iterations"] == [0, 2]
    snapshot = open_array(run.run_dir / "snapshots" / "00000002.zarr", "volumes/raw")[...]
    # raw / 255, plus the node's 0.25 * (section % 3), mapped to [-1, 1], float16 in transit
    offsets = np.float32(0.25) * (np.arange(44) % 3).astype(np.float32)
    flat = np.float32(GREY) * np.float32(1 / 255)
    expected = ((flat + offsets) * 2 - 1).astype(np.float16).astype(np.float32)
    assert np.array_equal(snapshot, np.broadcast_to(expected[:, None, None], (44, 44, 44)))
    recorded = json.loads((run.run_dir / "config.json").read_text())
    assert recorded["training"]["pipeline"]["extra_nodes"] == [NODE]
    assert load_checkpoint(run.checkpoint).card.training_nodes == [NODE]


@pytest.mark.parametrize(
    "node, message",
    [
        (
            {"class": "my_lab.nodez:SectionBrightness", "place": "after_sources"},
            "training.pipeline.extra_nodes[0].class 'my_lab.nodez:SectionBrightness': no module "
            "named 'my_lab.nodez' (install it or put its folder on PYTHONPATH)",
        ),
        (
            {"class": "my_lab.nodes:SectionBrightnes", "place": "after_sources"},
            "training.pipeline.extra_nodes[0].class 'my_lab.nodes:SectionBrightnes': module "
            "my_lab.nodes has no 'SectionBrightnes'",
        ),
        (
            {"class": "my_lab.nodes:NotANode", "place": "after_sources"},
            "training.pipeline.extra_nodes[0].class 'my_lab.nodes:NotANode': not a "
            "gunpowder.BatchFilter subclass",
        ),
        (
            {"class": "my_lab.nodes:SectionBrightness", "place": "after_sauces"},
            "config key 'training.pipeline.extra_nodes[0].place' = 'after_sauces': expected one "
            "of after_sources, after_augmentation, before_balancing",
        ),
        (
            {"class": "my_lab.nodes:SectionBrightness", "place": "after_sources", "args": {}},
            "training.pipeline.extra_nodes[0].args: missing a required argument: 'step' "
            "(SectionBrightness(step, array='RAW'))",
        ),
        (
            {**NODE, "args": {"step": 1, "strength": 2}},
            "training.pipeline.extra_nodes[0].args: got an unexpected keyword argument "
            "'strength' (SectionBrightness(step, array='RAW'))",
        ),
    ],
)
def test_a_wrong_node_is_one_line_and_no_run(tmp_path, monkeypatch, capsys, node, message):
    _write_package(tmp_path)
    _importable(monkeypatch, tmp_path)
    data = _write_data(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(tmp_path, data)))
    nodes = json.dumps([node]).replace(" ", "")
    code = train_main(["with", str(config), f"training.pipeline.extra_nodes={nodes}"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"train.py: error: {message}"]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_model_predicts_a_numpy_array_as_blockwise_prediction_does(trained):
    folder, _, run = trained
    raw = np.random.default_rng(1).integers(0, 256, (64, 64, 64), dtype=np.uint8)
    stored = create_array(folder / "volume.zarr", "volumes/raw", raw.shape, (5, 5, 5))
    stored[stored.roi] = raw
    # 60³ inputs write 42³ blocks: 8 blocks, cut at the volume's end, context mirrored there
    model = incasem.load_model(run.checkpoint, device="cpu")
    in_memory = model.predict(raw, voxel_size=[5, 5, 5], input_size_voxels=[60, 60, 60])
    assert in_memory.shape == (2, 64, 64, 64) and in_memory.dtype == np.float32
    assert np.allclose(in_memory.sum(axis=0), 1, atol=1e-5)
    prediction = incasem.predict(
        checkpoint=str(run.checkpoint),
        input=str(folder / "volume.zarr"),
        input_size_voxels=[60, 60, 60],
        probabilities="float32",
        runs_dir=str(folder / "runs"),
        device="cpu",
        progress=False,
    )
    assert prediction.run_dir == folder / "runs" / "predictions" / "1"
    assert json.loads((prediction.run_dir / "run.json").read_text())["status"] == "COMPLETED"
    (container, background), (_, foreground), (_, segmentation) = prediction.outputs["volume"]
    assert container == folder / "volume.zarr" and segmentation.endswith("/segmentation")
    blockwise = np.stack(
        [open_array(container, background)[...], open_array(container, foreground)[...]]
    )
    assert np.abs(in_memory - blockwise).max() <= 1e-5
    assert np.array_equal(model.segment(in_memory), open_array(container, segmentation)[...])


@pytest.mark.slow
def test_a_json_config_in_the_originals_layout_trains(tmp_path, repo_root):
    """``config_training.yaml`` of the original incasem, as its users write it in JSON (tiny
    sizes and CPU): its keys that name pipelines, sources and MongoDB folders load."""
    data = _write_data(tmp_path)
    original = {
        "directories": {"runs": "runs", "data": ".", "db": "mock_db"},
        "training": {
            "pipeline": "baseline_with_context",
            "data": data.name,
            "iterations": 2,
            "input_size_voxels": [44, 44, 44],
            "output_size_voxels": [26, 26, 26],
            "save_every": 1000,
            "log_every": 1,
            "optimizer": {"lr": 3e-05, "weight_decay": 3e-05},
            "reject": {"min_masked": 0.05, "reject_probability": 0.9},
            "augmentation": {
                "elastic": {
                    "control_point_spacing": [32, 32, 32],
                    "jitter_sigma": [2, 2, 2],
                    "subsample": 4,
                },
                "intensity": {"scale": 0.15, "shift": 0.15},
                "simple": {"transpose_only": [0, 1, 2]},
            },  # fmt: skip
            "snapshot": {"every": 1000},
            "profiling_stats": {"every": 1000},
            "precache": {"cache_size": 2, "num_workers": 1},
        },
        "validation": {
            "pipeline": "baseline_with_context",
            "data": data.name,
            "validate_every": 1000,
            "input_size_voxels": [60, 60, 60],
            "output_size_voxels": [42, 42, 42],
            "snapshot": {"every": 10},
        },
        "sources": {"class": "DataSourcesSemantic"},
        "data": {"voxel_size": [5, 5, 5], "downsample_factor": 1, "num_classes": 2},
        "model": {
            "type": "Unet",
            "num_fmaps": 2,
            "num_fmaps_out": 2,
            "fmap_inc_factor": 2,
            "downsample_factors": [[2, 2, 2]],
            "constant_upsample": True,
        },
        "loss": {
            "type": "cross_entropy_scaling",
            "weight": [1.0, 1.0],
            "balance_labels": {"clipmin": 0.01, "clipmax": 0.99},
        },
        "torch": {"device": "cpu"},
        "sacred": {"log_every": 1000},
    }
    (tmp_path / "my_config.json").write_text(json.dumps(original, indent=2))
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "train.py"), "with", "my_config.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "1"
    assert json.loads((run / "run.json").read_text())["status"] == "COMPLETED"
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["training"]["pipeline"] == "baseline_with_context"
    assert recorded["model"]["num_fmaps_out"] == 2
    card = load_checkpoint(run / "checkpoints" / "model_checkpoint_2.pt").card
    assert card.iteration == 2 and card.output_size_voxels == [26, 26, 26]
    assert json.loads((run / "best.json").read_text())["iteration"] in (0, 2)


def test_incasem_train_is_the_training_command(tmp_path, monkeypatch, capsys):
    from incasem.cli.main import main

    _write_package(tmp_path)
    _importable(monkeypatch, tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(tmp_path, _write_data(tmp_path))))
    nodes = f"training.pipeline.extra_nodes={json.dumps([NODE]).replace(' ', '')}"
    assert main(["train", "--print_config", "with", str(config), nodes]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["training"]["pipeline"]["extra_nodes"] == [NODE]
    assert printed["training"]["iterations"] == 2
    wrong = nodes.replace("after_sources", "before_sources")
    assert main(["train", "with", str(config), wrong]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "incasem train: error: config key 'training.pipeline.extra_nodes[0].place' = "
        "'before_sources': expected one of after_sources, after_augmentation, before_balancing"
    ]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_package_face_is_lazy_and_complete():
    code = (
        "import sys, incasem\n"
        "assert 'torch' not in sys.modules and 'gunpowder' not in sys.modules\n"
        "missing = [n for n in incasem.__all__ if getattr(incasem, n, None) is None]\n"
        "assert not missing, missing\n"
        "import incasem.predict.run\n"
        "assert callable(incasem.predict) and incasem.predict.predict_block\n"
        "assert [n for n in incasem.__all__ if not getattr(incasem, n).__doc__] == []\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
