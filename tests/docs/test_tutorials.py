"""Every tutorial's code runs: the ``python`` and ``bash`` blocks of each ``docs/tutorials/*.md``
page, in page order, in a fresh folder holding a link ``data`` to the shared data folder.

A page runs in a process of its own (``run_page.py``): python blocks share one namespace, bash
blocks run with ``bash -euo pipefail``, the interpreter's ``bin`` first on PATH and the checkout on
PYTHONPATH, so ``incasem`` is this checkout's. A page whose front matter says ``requires:
[slurm]`` (or another tool) skips where the tool is missing, except in CI (``CI=true``), where it
fails. A failure names the page, the block and shows the block's output.
"""

from __future__ import annotations

import importlib.util
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


def _run_page(page: Path, tmp_path: Path) -> dict:
    """Run ``page`` with ``run_page.py`` in ``tmp_path/work`` (``data`` linked); its summary."""
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
    return json.loads(result.read_text())


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[page.stem for page in TUTORIALS])
def test_tutorial_code_runs(page: Path, tmp_path: Path) -> None:
    _check_requirements(page)
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set INCASEM_SHARED_DATA)")
    summary = _run_page(page, tmp_path)
    if summary["failed"] is not None:
        pytest.fail(
            f"docs/tutorials/{page.name}: block {summary['failed']} ({summary['language']}: "
            f"{summary['first_line']}) failed after {summary['ran']} block(s) ran\n"
            f"--- its output ---\n{summary['output']}\n--- error ---\n{summary['error']}",
            pytrace=False,
        )
    assert summary["ran"] > 0, f"{page.name} has no python or bash block to run"
    print(f"{page.name}: {summary['ran']} blocks, seconds per block {summary['seconds']}")


def _runner():
    spec = importlib.util.spec_from_file_location("run_page", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = """---
requires: [no-such-tool-for-incasem]
---
# A page

```python
x = 6 * 7
```

```text
shown, not run
```

- a list item with an indented block:

  ```bash
  echo "x is $(cat x.txt)"
  ```

```{toctree}
:glob:

*
```
"""


def test_blocks_are_found_in_page_order_with_their_language() -> None:
    blocks = _runner().code_blocks(PAGE)
    assert blocks == [
        ("python", "x = 6 * 7\n"),
        ("text", "shown, not run\n"),
        ("bash", 'echo "x is $(cat x.txt)"\n'),
        ("{toctree}", ":glob:\n\n*\n"),
    ]


def test_a_failing_block_is_named_with_its_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```python\nanswer = 42\nprint('from python')\n```\n\n"
        "```text\nnot run\n```\n\n```bash\necho from bash > said.txt\n```\n\n"
        "```python\nimport subprocess\nassert answer == 42  # one namespace per page\n"
        "subprocess.run(['echo', 'from a subprocess'])\nraise ValueError('broken')\n```\n"
    )
    summary = _run_page(page, tmp_path)
    assert summary["failed"] == 4 and summary["language"] == "python" and summary["ran"] == 2
    assert summary["first_line"] == "import subprocess"
    assert "from a subprocess" in summary["output"]  # a subprocess's output is captured too
    assert "ValueError: broken" in summary["error"]
    assert (tmp_path / "work" / "said.txt").read_text() == "from bash\n"


def test_a_failing_bash_command_stops_its_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```bash\necho before\nfalse | cat\necho after\n```\n")
    summary = _run_page(page, tmp_path)
    assert summary["failed"] == 1 and summary["error"] == "bash exited with status 1"
    assert summary["output"] == "before\n"  # -e and pipefail: nothing after the failure ran


def test_a_page_needing_a_missing_tool_skips_but_fails_in_ci(tmp_path, monkeypatch) -> None:
    page = tmp_path / "cluster.md"
    page.write_text(PAGE)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="requires no-such-tool-for-incasem"):
        _check_requirements(page)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="may not skip in CI"):
        _check_requirements(page)
