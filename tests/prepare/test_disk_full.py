"""A disk that fills up during a blockwise job: one line, no traceback, nothing half-made.

The full disk is real to the processes: the conversion runs as a command with a file-size limit
(``RLIMIT_FSIZE``; a write beyond it fails with ``[Errno 27] File too large`` in the scheduler and
in every daisy worker it spawns, as ``[Errno 28]`` does on a full disk).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from incasem.io import create_array

LIMIT_BYTES = 48 * 1024


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _convert(tmp_path: Path, output: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "incasem.cli.main", "convert", "tiff-to-zarr",
               str(tmp_path / "slices"), "-o", str(output), "-d", "volumes/raw",
               "--resolution", "5", "5", "5"]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if "error" in line.lower()]


def test_a_full_disk_ends_in_one_line_and_leaves_no_trace(tmp_path: Path):
    rng = np.random.default_rng(0)
    (tmp_path / "slices").mkdir()
    for z in range(16):  # 1 MB of incompressible raw
        tifffile.imwrite(
            tmp_path / "slices" / f"s_{z}.tif", rng.integers(0, 255, (256, 256), dtype=np.uint8)
        )

    new = tmp_path / "new.zarr"
    done = _convert(tmp_path, new)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = _error_lines(done.stderr)
    assert line.startswith("incasem convert: error: convert-volumes-raw: ")
    assert "File too large" in line
    logs = Path(line.split("(worker logs: ")[1].rstrip(")"))
    assert logs.parent == tmp_path / "new.zarr.logs" and logs.is_dir()
    assert "File too large" in (logs / "scheduler.err").read_text()
    assert not new.exists()  # the container the failed job created is gone

    # An existing container keeps exactly what it had: no new group, no partial dataset.
    existing = tmp_path / "cell.zarr"
    labels = create_array(existing, "labels/mito", (8, 8, 8), (5, 5, 5), dtype=np.uint8)
    labels[labels.roi] = 1
    before = _tree(existing)
    done = _convert(tmp_path, existing)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert _tree(existing) == before


def _without_root_override() -> list[str]:
    """A command prefix under which a read-only folder is read-only: none for a plain user; for
    root, `setpriv` (util-linux) drops the capabilities that let root write there anyway."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--"]


def test_a_read_only_group_inside_a_writable_container_is_one_line(tmp_path: Path):
    rng = np.random.default_rng(0)
    (tmp_path / "slices").mkdir()
    for z in range(2):
        tifffile.imwrite(tmp_path / "slices" / f"s_{z}.tif", rng.integers(0, 255, (8, 8), np.uint8))
    container = tmp_path / "cell.zarr"
    create_array(container, "volumes/labels", (2, 8, 8), (5, 5, 5), dtype=np.uint8)
    (container / "volumes").chmod(0o555)
    before = _tree(container)
    try:
        command = [*_without_root_override(), sys.executable, "-m", "incasem.cli.main", "convert",
                   "tiff-to-zarr", str(tmp_path / "slices"), "-o", str(container), "-d",
                   "volumes/raw", "--resolution", "5", "5", "5"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        (container / "volumes").chmod(0o755)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = _error_lines(done.stderr)
    assert line.startswith(f"incasem convert: error: {container}/volumes/raw: cannot write there")
    assert "Permission denied" in line
    assert _tree(container) == before
