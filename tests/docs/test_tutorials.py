"""Every tutorial's code runs: the ``python`` and ``bash`` blocks of each ``docs/tutorials/*.md``
page, in page order, in a fresh folder holding a link ``data`` to the shared data folder.

A page runs in a process of its own (``run_page.py``): python blocks share one namespace, bash
blocks run with ``bash -euo pipefail``, the interpreter's ``bin`` first on PATH and the checkout on
PYTHONPATH, so ``incasem`` is this checkout's. A page whose front matter says ``requires:
[slurm]`` (or another tool) skips where the tool is missing, except in CI (``CI=true``), where it
fails. A failure names the page, the block and shows the block's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("INCASEM_SHARED_DATA", REPO.parent / "shared" / "data"))
TUTORIALS = sorted(
    page for page in (REPO / "docs" / "tutorials").glob("*.md") if page.name != "index.md"
)
RUNNER = Path(__file__).with_name("run_page.py")
#: the command that shows a required tool is there
TOOL_COMMANDS = {"slurm": "sinfo", "lsf": "bsub"}

pytestmark = pytest.mark.slow


def front_matter(page: Path) -> dict:
    """The YAML front matter of a markdown page (between leading ``---`` lines), or {}."""
    text = page.read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    return (yaml.safe_load(text[4:end]) or {}) if end > 0 else {}


def _check_requirements(page: Path) -> None:
    for tool in front_matter(page).get("requires", []):
        command = TOOL_COMMANDS.get(tool, tool)
        if shutil.which(command) is None:
            reason = f"{page.name} requires {tool} and '{command}' is not on PATH"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason} (CI=true: tutorials may not skip in CI)")
            pytest.skip(reason)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    return env


@pytest.mark.parametrize("page", TUTORIALS, ids=[page.stem for page in TUTORIALS])
def test_tutorial_code_runs(page: Path, tmp_path: Path) -> None:
    _check_requirements(page)
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set INCASEM_SHARED_DATA)")
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    result = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(page), str(result)],
        cwd=work, env=_environment(), capture_output=True, text=True,
    )  # fmt: skip
    if not result.exists():
        pytest.fail(f"{page.name}: the page runner crashed:\n{done.stdout}\n{done.stderr}")
    summary = json.loads(result.read_text())
    if summary["failed"] is not None:
        pytest.fail(
            f"docs/tutorials/{page.name}: block {summary['failed']} ({summary['language']}: "
            f"{summary['first_line']}) failed after {summary['ran']} block(s) ran\n"
            f"--- its output ---\n{summary['output']}\n--- error ---\n{summary['error']}",
            pytrace=False,
        )
    assert summary["ran"] > 0, f"{page.name} has no python or bash block to run"
    print(f"{page.name}: {summary['ran']} blocks, seconds per block {summary['seconds']}")
