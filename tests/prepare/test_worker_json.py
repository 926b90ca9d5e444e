"""A blockwise worker rebuilds its job from JSON alone: no pickle crosses the process boundary,
a worker imports block functions from incasem only, and a failed block reads the same whether it
was a prediction block or a data-preparation block."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from funlib.geometry import Roi

from incasem.blockwise import BlockFailures, run_in_blocks
from incasem.blockwise.worker import WORKER_MODULE, WorkerTask, block_function_worker
from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.launch import ARGS_VARIABLE, PACKAGES_VARIABLE, worker_arguments
from incasem.predict.worker import BlockProcessor
from incasem.prepare.relabel import _RelabelBlock

REPO = Path(__file__).resolve().parents[2]
VOXEL = (10, 5, 5)


@dataclass(frozen=True)
class _FailAt:
    """Writes ones, but raises on the block that starts at ``bad_offset`` (nm)."""

    container: str
    bad_offset: tuple[int, int, int]

    def __call__(self, block: Any) -> None:
        if tuple(block.write_roi.offset) == self.bad_offset:
            raise ValueError("corrupt chunk")
        out = open_array(self.container, "out", "r+")
        out[block.write_roi] = np.ones(block.write_roi.shape / out.voxel_size, np.uint8)


def test_the_json_a_worker_receives_rebuilds_the_block_function(monkeypatch):
    function = _RelabelBlock("c.zarr", "labels", "relabelled", ((1, 2), (3, 4)), None, 0, "uint8")
    task = WorkerTask.describe(function, VOXEL, "logs/failures")
    worker = block_function_worker(task, "srun {command}")

    # all daisy serialises: a module name, one JSON string and the template
    assert (worker.module, worker.template) == (WORKER_MODULE, "srun {command}")
    (payload,) = worker.args
    assert json.loads(payload) == {
        "function": "incasem.prepare.relabel:_RelabelBlock",
        "arguments": {
            "container": "c.zarr",
            "dataset": "labels",
            "out_dataset": "relabelled",
            "mapping": [[1, 2], [3, 4]],
            "binarize": None,
            "others": 0,
            "dtype": "uint8",
        },
        "voxel_size": [10, 5, 5],
        "failures": "logs/failures",
    }
    # through a template the JSON travels in the environment, never on a command line
    monkeypatch.setenv(ARGS_VARIABLE, json.dumps(list(worker.args)))
    (received,) = worker_arguments([])
    rebuilt = WorkerTask.model_validate_json(received).build()
    assert rebuilt == function and rebuilt is not function
    assert rebuilt.mapping == ((1, 2), (3, 4))  # lists validated back into tuples


def test_a_worker_refuses_a_module_outside_incasem_in_one_line(tmp_path: Path):
    """The worker refuses before importing: the module's import would create a marker."""
    (tmp_path / "planted.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\nclass Block: pass\n"
    )
    task = {"function": "planted:Block", "arguments": {}, "failures": str(tmp_path / "f")}
    env = {k: v for k, v in os.environ.items() if k != PACKAGES_VARIABLE}
    env |= {"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", ARGS_VARIABLE: json.dumps([
        json.dumps(task)
    ])}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", WORKER_MODULE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "incasem worker: worker: block function planted:Block: workers import block functions "
        f"only from the packages incasem (more through {PACKAGES_VARIABLE}); refusing to import it"
    )
    assert not (tmp_path / "imported").exists()
    assert BlockFailures(tmp_path / "f").first().startswith("worker: block function planted")


def test_the_driver_refuses_a_block_function_workers_could_not_import(tmp_path: Path, monkeypatch):
    out = create_array(tmp_path / "c.zarr", "out", (16, 16, 16), VOXEL)
    function = _FailAt(str(tmp_path / "c.zarr"), (-1, -1, -1))
    monkeypatch.delenv(PACKAGES_VARIABLE)
    with pytest.raises(IncasemError) as info:
        run_in_blocks(function, out.roi, None, VOXEL, output=out, progress=False)
    assert str(info.value) == (
        "block function tests.prepare.test_worker_json:_FailAt: workers import block functions "
        f"only from the packages incasem (more through {PACKAGES_VARIABLE}); refusing to import it"
    )
    assert not list(tmp_path.glob("*.logs"))  # nothing started, nothing left
    run_in_blocks(function, out.roi, None, VOXEL, output=out, num_workers=0, progress=False)
    assert (out[out.roi] == 1).all()  # in this process nothing travels: no import path needed


def _overlap_benchmark():
    path = REPO / "benchmarks" / "predict_overlap.py"
    spec = importlib.util.spec_from_file_location("predict_overlap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_prediction_block_and_a_prepare_block_fail_in_the_same_words(tmp_path: Path):
    out = create_array(tmp_path / "p.zarr", "out", (16, 16, 16), VOXEL, chunks=(8, 8, 8))
    with pytest.raises(IncasemError) as info:
        run_in_blocks(
            _FailAt(str(tmp_path / "p.zarr"), (80, 0, 0)), out.roi, None, VOXEL, output=out,
            block_edge=8, name="prepare", progress=False,
        )  # fmt: skip
    prepare = str(info.value)
    assert "1 of 8 blocks failed; first: block [8:16, 0:8, 0:8] (voxels): ValueError: corrupt" in (
        prepare
    )

    spec = _overlap_benchmark().make_spec(tmp_path, (16, 16, 16), 132)
    processor = BlockProcessor(spec, None, "cpu")  # a prediction worker's blocks, no model
    roi = Roi((40, 0, 0), (40, 40, 40))  # voxels [8:16, 0:8, 0:8] at 5 nm
    failures = BlockFailures(tmp_path / "failures")
    predicted = failures.record(processor.subject(roi), ValueError("corrupt chunk"))
    assert predicted == "block [8:16, 0:8, 0:8] (voxels): ValueError: corrupt chunk"
    assert predicted in prepare
