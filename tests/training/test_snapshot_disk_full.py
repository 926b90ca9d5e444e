"""A full disk while training writes a snapshot: one line, no traceback, and the checkpoints
saved before stay intact. The full disk is real to the process: a file-size limit
(``RLIMIT_FSIZE``) makes writes beyond it fail with ``[Errno 27] File too large`` as
``[Errno 28]`` does on a full disk."""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from incasem.io import create_array
from incasem.torch.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

#: Checkpoints of the 2-feature-map network (~320 kB) fit; a snapshot's raw chunks do not.
LIMIT_BYTES = 400_000


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def test_a_full_disk_while_writing_a_snapshot_is_one_line(tmp_path, repo_root):
    shape = (64, 64, 64)
    raw = create_array(tmp_path / "cell.zarr", "volumes/raw", shape, (5, 5, 5))
    raw[raw.roi] = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    labels = create_array(tmp_path / "cell.zarr", "volumes/labels/mito", shape, (5, 5, 5))
    cube = np.zeros(shape, np.uint8)
    cube[8:56, 8:56, 8:56] = 1
    labels[labels.roi] = cube
    (tmp_path / "data.json").write_text(json.dumps({"b": {
        "file": "cell.zarr", "offset": [0, 0, 0], "shape": list(shape), "voxel_size": [5, 5, 5],
        "raw": "volumes/raw", "labels": {"volumes/labels/mito": 1}}}))  # fmt: skip
    common = ["training.data=data.json", "directories.runs=runs", "directories.data=.",
              "model.num_fmaps=2", "training.input_size_voxels=[108,108,108]",
              "training.output_size_voxels=[14,14,14]", "training.save_every=2",
              "validation.data=null", "training.reject.min_masked=0"]  # fmt: skip
    train = [sys.executable, str(repo_root / "scripts" / "train.py")]
    first = subprocess.run([*train, "with", *common, "training.iterations=2",
                            "training.snapshot.every=100"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = tmp_path / "runs" / "1" / "checkpoints" / "model_checkpoint_2.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()

    # the continued run snapshots its first batch, and that write fails
    full = subprocess.run([*train, "--continue_run", "1", "with", *common,
                           "training.iterations=4", "training.snapshot.every=1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          preexec_fn=_limit_file_size)  # fmt: skip
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    assert full.stderr.strip().splitlines()[-1] == (
        "train.py: error: training stopped: cannot write (File too large); the checkpoints "
        "saved before are intact"
    )
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest
    assert load_checkpoint(checkpoint).card.iteration == 2
