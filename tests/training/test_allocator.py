"""The training commands run with glibc told to keep freed memory (`incasem.training.allocator`):
the process re-executes itself once with the settings, ``INCASEM_ALLOCATOR=system`` keeps the
environment as it is, and a bad value gets one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from incasem.errors import IncasemError
from incasem.training.allocator import KEEP_FREED_MEMORY, allocator_environment

REPO = Path(__file__).resolve().parents[2]
# Runs at the start of every interpreter on PYTHONPATH: records what its process runs with.
RECORDER = """
import json, os, sys
with open(os.environ["ALLOCATOR_RECORD"], "a") as f:
    environ = open("/proc/self/environ", "rb").read().split(b"\\0")
    names = [e.split(b"=", 1)[0].decode() for e in environ if e]
    f.write(json.dumps({k: os.environ.get(k) for k in names if k.startswith("MALLOC_")}) + "\\n")
"""


def _train_help(tmp_path: Path, command: list[str], **env: str) -> list[dict]:
    (tmp_path / "sitecustomize.py").write_text(RECORDER)
    record = tmp_path / "record.jsonl"
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k != "INCASEM_ALLOCATOR"
    }
    environ.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", ALLOCATOR_RECORD=str(record), **env)
    done = subprocess.run([sys.executable, *command], env=environ, capture_output=True, text=True)
    assert "Traceback" not in done.stderr, done.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize(
    "command",
    [
        [str(REPO / "scripts" / "train.py"), "--help"],
        ["-m", "incasem.cli.main", "train", "--print_config"],
    ],
    ids=["script", "cli"],
)
def test_training_process_runs_with_freed_memory_kept(tmp_path, command):
    processes = _train_help(tmp_path, command)
    # The first interpreter re-executed itself once; the second holds the settings.
    assert processes == [{}, KEEP_FREED_MEMORY]


def test_system_allocator_leaves_the_environment_alone(tmp_path):
    processes = _train_help(
        tmp_path, [str(REPO / "scripts" / "train.py"), "--help"], INCASEM_ALLOCATOR="system"
    )
    assert processes == [{}]


def test_allocator_environment():
    assert allocator_environment({"A": "1"}) == {"A": "1", **KEEP_FREED_MEMORY}
    assert allocator_environment(dict(KEEP_FREED_MEMORY)) is None
    assert allocator_environment({"INCASEM_ALLOCATOR": "system"}) is None
    with pytest.raises(IncasemError, match="INCASEM_ALLOCATOR='jemalloc': choose keep or system"):
        allocator_environment({"INCASEM_ALLOCATOR": "jemalloc"})
