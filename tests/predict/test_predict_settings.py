"""Configuration: the YAML file equals the defaults, flags and `with` updates map to settings,
training runs resolve to checkpoints without a database, workers pick their GPU."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import yaml

from incasem.cli.predict import _config_updates, add_arguments, resolve_config
from incasem.errors import IncasemError
from incasem.predict.checkpoints import resolve_checkpoint
from incasem.predict.settings import DEFAULT_CONFIG, PredictionSettings, parse_gpus
from incasem.predict.worker import WorkerSpec, _select_device

REPO = Path(__file__).resolve().parents[2]


def test_yaml_file_equals_built_in_defaults():
    assert yaml.safe_load((REPO / "configs" / "prediction.yaml").read_text()) == DEFAULT_CONFIG


def test_original_keys_are_kept():
    p = DEFAULT_CONFIG["prediction"]
    for key in ("data", "checkpoint", "input_size_voxels", "output_size_voxels", "num_workers",
                "log_metrics"):  # fmt: skip
        assert key in p
    assert "device" in p["torch"] and "data" in DEFAULT_CONFIG["directories"]


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_and_with_updates_become_settings(tmp_path):
    named = tmp_path / "mine.yaml"
    named.write_text(yaml.safe_dump({"prediction": {"num_workers": 3, "threshold": 0.4}}))
    args = _parse(
        ["--checkpoint", "m.pt", "--input", "c.zarr", "--gpus", "0,1", "--resume", "4",
         "--worker-command", "srun {command}", "with", str(named),
         "prediction.log_metrics=True", "prediction.num_workers=5", "prediction.roi=[1,2,3,4,5,6]"]
    )  # fmt: skip
    updates, named_configs = _config_updates(args)
    assert named_configs == [str(named)]
    config = resolve_config(updates, named_configs)
    settings = PredictionSettings.from_config(config)
    assert settings.checkpoint == "m.pt" and settings.input == "c.zarr"
    assert settings.num_workers == 5  # `with` beats the YAML file
    assert settings.threshold == 0.4 and settings.log_metrics is True
    assert settings.gpus == [0, 1] and settings.resume == 4
    assert settings.roi == [1, 2, 3, 4, 5, 6] and settings.worker_command == "srun {command}"
    assert "overwrite" not in vars(args)  # unset flags leave the configuration alone
    assert json.loads(json.dumps(settings.as_dict()))["gpus"] == [0, 1]


def test_resume_flag_without_id():
    args = _parse(["--output_group", "g", "--resume"])
    updates, _ = _config_updates(args)
    assert updates["prediction"]["resume"] is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"roi": [1, 2, 3]}, "roi must be 6 integers"),
        ({"probabilities": "float16"}, "probabilities must be one of"),
        ({"threshold": 1.5}, "threshold must lie in"),
        ({"iteration": "last"}, "iteration must be an integer or 'best'"),
        ({"resume": True}, "resume without an id needs output.group"),
        ({"resume": 3, "output_group": "g"}, "not both"),
        ({"roi": [0, 0, 0, 1, 1, 1], "input": None, "data": "d.json"}, "--roi needs --input"),
    ],
)
def test_invalid_settings(changes, message):
    with pytest.raises(IncasemError, match=message):
        PredictionSettings(**({"checkpoint": "m.pt", "input": "c.zarr"} | changes))


def test_parse_gpus():
    assert parse_gpus("0, 2") == [0, 2] and parse_gpus(1) == [1] and parse_gpus([3]) == [3]
    with pytest.raises(IncasemError):
        parse_gpus("a,b")


def _run(tmp_path: Path, run_id: int, iterations, best=None) -> Path:
    run = tmp_path / "runs" / str(run_id)
    (run / "checkpoints").mkdir(parents=True)
    for iteration in iterations:
        (run / "checkpoints" / f"model_checkpoint_{iteration}.pt").write_bytes(b"")
    if best is not None:
        (run / "best.json").write_text(json.dumps({
            "iteration": best, "checkpoint": f"checkpoints/model_checkpoint_{best}.pt",
            "metric": "f1", "value": 0.9,
        }))  # fmt: skip
    return run


def test_resolve_training_run(tmp_path):
    runs = tmp_path / "runs"
    run = _run(tmp_path, 3, [1000, 2000, 3000], best=2000)
    assert resolve_checkpoint(None, 3, None, runs).iteration == 2000  # best by default
    assert (
        resolve_checkpoint(None, 3, "best", runs).path
        == run / "checkpoints/model_checkpoint_2000.pt"
    )
    resolved = resolve_checkpoint(None, 3, 3000, runs)
    assert (resolved.run_id, resolved.iteration) == (3, 3000)
    _run(tmp_path, 4, [10, 20])
    assert resolve_checkpoint(None, 4, None, runs).iteration == 20  # no best.json: the latest
    explicit = resolve_checkpoint(run / "checkpoints/model_checkpoint_1000.pt", None, None, runs)
    assert (explicit.run_id, explicit.iteration) == (3, 1000)  # recognised from its path
    with pytest.raises(IncasemError, match=r"runs/9: no such training run \(runs in .*: 3, 4\)"):
        resolve_checkpoint(None, 9, None, runs)
    with pytest.raises(IncasemError, match="no checkpoint for iteration 5 .available: 1000, 2000"):
        resolve_checkpoint(None, 3, 5, runs)
    with pytest.raises(IncasemError, match="no best.json"):
        resolve_checkpoint(None, 4, "best", runs)


def _spec(device: str, gpus) -> WorkerSpec:
    return WorkerSpec(
        checkpoint="m.pt", checkpoint_sha256="", device=device, gpus=gpus, threads=1,
        deterministic=False, entry={}, data_root=None, layout={}, normalisation={},
        output_container="", probabilities=[], segmentation="", probability_dtype="uint8",
        threshold=0.5, metrics_dir=None,
    )  # fmt: skip


def test_worker_i_gets_gpu_i_mod_n(monkeypatch):
    for worker_id, expected in ((0, "2"), (1, "5"), (2, "2"), (3, "5")):
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        assert _select_device(_spec("cuda", [2, 5]), worker_id) == "cuda:0"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _select_device(_spec("cuda", None), 0) == "cuda"
    assert _select_device(_spec("cpu", None), 1) == "cpu"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
