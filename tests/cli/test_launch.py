"""Worker command templates for every blockwise command: ``incasem equalize`` and ``incasem
instances`` run their workers through ``bash -c '{command}'`` (as a cluster's srun would) and
write what local workers write; block functions from anyone but the job's driver are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.launch import KEY_VARIABLE, read_block_function, write_block_function


def _run(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_equalize_and_instances_through_a_template_equal_local_workers(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    container = tmp_path / "cell.zarr"
    raw = create_array(container, "raw", (48, 64, 64), (10, 5, 5), chunks=(16, 32, 32))
    raw[raw.roi] = rng.integers(0, 255, (48, 64, 64), dtype=np.uint8)
    labels = np.zeros((48, 64, 64), np.uint8)
    labels[10:40, 20:50, 20:50] = 1  # crosses block faces
    labels[2:4, 2:4, 2:4] = 1
    array = create_array(container, "mito", labels.shape, (10, 5, 5), chunks=(16, 32, 32))
    array[array.roi] = labels

    marker = tmp_path / "launched"
    template = f"bash -c 'echo worker >> {marker}; {{command}}'"
    for name, launch in (("local", []), ("template", ["--worker-command", template])):
        _run(capsys, "equalize", container, "-d", "raw", "--kernel-size", 16, "--workers", 2,
             "--out-dataset", f"eq_{name}", "--no-progress", *launch)  # fmt: skip
        out = _run(capsys, "instances", container, "-d", "mito", "--out-dataset", f"obj_{name}",
                   "--block-size", 16, "--workers", 2, "--no-progress", *launch)  # fmt: skip
        assert "2 objects" in out
    for prefix in ("eq", "obj"):
        local, template = (open_array(container, f"{prefix}_{n}") for n in ("local", "template"))
        np.testing.assert_array_equal(template[template.roi], local[local.roi])
    assert len(marker.read_text().splitlines()) >= 2  # the workers did start through it
    assert not list(tmp_path.glob("*.logs"))  # logs and the signed function file are gone


def test_a_bad_template_and_a_foreign_function_file_are_refused(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    container = tmp_path / "c.zarr"
    raw = create_array(container, "raw", (16, 16, 16), (10, 10, 10))
    raw[raw.roi] = rng.integers(0, 255, (16, 16, 16), dtype=np.uint8)
    assert main(["equalize", str(container), "-d", "raw", "--worker-command", "srun"]) == 2
    assert "--worker-command 'srun' must contain '{command}'" in capsys.readouterr().err

    path, key = write_block_function(print, tmp_path)
    assert read_block_function(path, key) is print
    with pytest.raises(IncasemError, match=f"not signed by this job's driver .{KEY_VARIABLE}"):
        read_block_function(path, "another key")
    with pytest.raises(IncasemError, match="refusing to load it"):
        read_block_function(path, None)
