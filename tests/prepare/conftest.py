"""Helpers for the data preparation tests: slice stacks on disk and the command line in-process."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import tifffile

from incasem.cli.main import main


def _write_slices(directory: Path, volume: np.ndarray, name: str = "s_{}.tif", start: int = 1):
    directory.mkdir(parents=True, exist_ok=True)
    for z, section in enumerate(volume):
        tifffile.imwrite(directory / name.format(z + start), section)
    return directory


def _error_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def _read_slices(directory: Path) -> np.ndarray:
    files = sorted(directory.glob("section_*.tif"))
    return np.stack([tifffile.imread(f) for f in files])


@pytest.fixture(autouse=True)
def _temporary_files_in_tmp_path(tmp_path: Path, monkeypatch) -> None:
    """Worker logs kept after a failing block land in the test's folder, not in /tmp."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``incasem ARGS`` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str | Path | int | Sequence) -> tuple[int, str, str]:
        argv: list[str] = []
        for a in args:
            if isinstance(a, list | tuple):
                argv.extend(str(v) for v in a)
            else:
                argv.append(str(a))
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def write_slices() -> Callable[..., Path]:
    """``write_slices(directory, volume, name="s_{}.tif", start=1)``: one 2D TIFF per z section,
    numbered from ``start`` without zero padding; returns the directory."""
    return _write_slices


@pytest.fixture
def read_slices() -> Callable[[Path], np.ndarray]:
    """``read_slices(directory)``: the ``section_NNNN.tif`` files of an export, stacked in z."""
    return _read_slices


@pytest.fixture
def error_line() -> Callable[[str], str]:
    """``error_line(stderr)``: the last line on stderr, where the command line prints errors."""
    return _error_line
