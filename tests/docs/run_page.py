"""Run the code blocks of one documentation page, in page order, in the current folder.

``python run_page.py PAGE.md RESULT.json``: every fenced block with language ``python`` or
``bash`` runs; python blocks share one namespace, bash blocks run in ``bash -euo pipefail`` with
this process's environment. Each block's output (its subprocesses' included) is collected. The
run stops at the first block that fails; RESULT.json then names it (number from 1, language,
first line), its output and the error, else it counts the blocks that ran. Other languages
(``text``, ``json``, ``yaml``, MyST directives) are shown, not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

RUN = ("python", "bash")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every top-level fenced block of a markdown page, in order."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if not opening:
            continue
        fence, indent, body = opening["fence"], len(opening["indent"]), []
        while index < len(lines):
            line = lines[index]
            index += 1
            closing = line.strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                break
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
        blocks.append((opening["info"].lower(), "\n".join(body) + "\n"))
    return blocks


def _run_python(code: str, namespace: dict, label: str) -> str | None:
    """Execute ``code`` in ``namespace``; the traceback if it raised, else None."""
    try:
        exec(compile(code, label, "exec"), namespace)
    except BaseException:  # noqa: BLE001 (SystemExit too: a block that exits has failed)
        return traceback.format_exc()
    return None


def _captured(run, *args) -> tuple[str | None, str]:
    """Call ``run(*args)`` with file descriptors 1 and 2 going to a file: (its result, output)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            result = run(*args)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        sink.seek(0)
        return result, sink.read().decode(errors="replace")


def _run_bash(code: str) -> str | None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=False)
    return None if done.returncode == 0 else f"bash exited with status {done.returncode}"


def run_page(page: Path) -> dict:
    """Run the page's python and bash blocks; a summary for RESULT.json."""
    namespace: dict = {"__name__": "__main__"}
    ran, seconds = 0, []
    for number, (language, code) in enumerate(code_blocks(page.read_text()), start=1):
        if language not in RUN:
            continue
        start = time.perf_counter()
        if language == "python":
            error, output = _captured(_run_python, code, namespace, f"{page.name} block {number}")
        else:
            error, output = _captured(_run_bash, code)
        seconds.append(round(time.perf_counter() - start, 1))
        if error is not None:
            first = next((line for line in code.splitlines() if line.strip()), "")
            return {"failed": number, "language": language, "first_line": first,
                    "output": output, "error": error, "ran": ran}  # fmt: skip
        ran += 1
    return {"failed": None, "ran": ran, "seconds": seconds}


if __name__ == "__main__":
    summary = run_page(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(summary))
