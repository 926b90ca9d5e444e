"""Path names are data: shell metacharacters, quotes, spaces and non-ASCII in a container's
name work like any other name (or are refused in one line) and never run as code."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from incasem.io import create_array, open_array
from incasem.prepare.equalize import equalize

from .conftest import BOUNDED, folder, works_or_one_line

_HOSTILE = ["$(touch PWNED)", "; touch PWNED", "`touch PWNED`", "a b", "it's", 'say "hi"',
            "*", "~", "x|touch PWNED", "&& touch PWNED", "ünïcødé", "日本", "tab\there",
            "new\nline", "-rf", "{command}", "%s", "\\"]  # fmt: skip
_NAMES = st.one_of(
    st.sampled_from(_HOSTILE),
    st.text(
        st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=["Cs"]),
        min_size=1,
        max_size=12,
    ),
).filter(lambda name: name not in (".", "..") and len(name.encode()) < 200)


def _container(root, name):
    container = root / name / f"{name}.zarr"
    container.parent.mkdir()
    raw = create_array(container, "volumes/raw", (8, 16, 16), (5, 5, 5), chunks=(8, 8, 8))
    raw[raw.roi] = np.arange(8 * 16 * 16, dtype=np.uint32).reshape(8, 16, 16).astype(np.uint8)
    return container


@settings(BOUNDED, max_examples=30)
@given(name=_NAMES)
def test_any_path_name_is_just_a_name(name):
    with folder() as root:
        container = _container(root, name)
        done = works_or_one_line(
            equalize, container, "volumes/raw", kernel_size=8, num_workers=0, progress=False
        )
        assert done == f"{container}/volumes/raw_equalized_0.02"
        assert open_array(container, "volumes/raw_equalized_0.02").shape == (8, 16, 16)
        assert not list(root.rglob("PWNED"))


@settings(BOUNDED, max_examples=2)
@given(name=st.sampled_from(_HOSTILE[:4] + ["ünïcødé a b"]))
def test_the_command_line_with_worker_processes_takes_any_path(name):
    with folder() as root:
        container = _container(root, name)
        done = subprocess.run(
            [sys.executable, "-m", "incasem.cli.main", "equalize", str(container),
             "--kernel-size", "8", "--workers", "1", "--no-progress"],
            capture_output=True, text=True, timeout=300, cwd=root,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert done.stdout.strip() == f"wrote {container}/volumes/raw_equalized_0.02"
        assert not list(root.rglob("PWNED")) and not (root / "PWNED").exists()
