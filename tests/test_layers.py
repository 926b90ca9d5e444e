"""The rooms of ARCHITECTURE.md are enforced: `lint-imports` checks the import-linter contracts
in pyproject.toml, and an import that breaks a room fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: `lint-imports` of the interpreter running the tests (wherever its scripts are installed).
LINT_IMPORTS = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run `lint-imports` on the ``incasem`` package under ``root`` with ``root``'s
    pyproject.toml (no cache written)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [*LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_library_keeps_its_rooms():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # a lower room imports a higher one
        (
            "io/roi.py",
            "import incasem.training.config",
            "incasem.io.roi -> incasem.training.config",
        ),
        # two packages of one room import each other
        (
            "torch/loss.py",
            "from incasem.pipeline import sources",
            "incasem.torch.loss -> incasem.pipeline",
        ),
        # the synthetic cell used outside its command
        (
            "predict/geometry.py",
            "import incasem.phantom",
            "incasem.predict.geometry -> incasem.phantom",
        ),
        # a new package placed in no room
        ("newroom/__init__.py", '"""A package the contract does not know."""', "incasem.newroom"),
    ],
)
def test_a_broken_room_fails_the_contract(tmp_path: Path, module: str, line: str, broken: str):
    """A copy of the package with one offending line: the repository itself is not touched."""
    shutil.copytree(
        REPO / "incasem", tmp_path / "incasem", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    path = tmp_path / "incasem" / module
    path.parent.mkdir(exist_ok=True)
    with open(path, "a") as file:
        file.write(f"\n{line}\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert broken in result.stdout, result.stdout
