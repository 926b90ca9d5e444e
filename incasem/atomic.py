"""Files and folders that appear whole or not at all.

A checkpoint, a report or a container cut short by a crash, a full disk or a second signal must
not be mistaken for a complete one by the next command. Everything incasem writes in one piece is
therefore written under a hidden temporary name beside its destination and renamed into place:
``os.replace`` is atomic within one file system, and the temporary name is removed on failure.
This module is the one place that does it; it sits below every package that writes files.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unique sibling of ``path`` that keeps its extension (savers that add or check
    one, such as numpy's and matplotlib's, then write exactly this name)."""
    return path.with_name(f".{path.stem}.{kind}-{uuid.uuid4().hex[:8]}{path.suffix}")


def check_new_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a Path; raise `IncasemError` if it exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise IncasemError(f"{path} already exists; pass --overwrite to replace it")
    return path


def write_atomic(
    path: str | os.PathLike, write: Callable[[Path], object], overwrite: bool = True
) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``.

    Args:
        path: the file to write; its folder is created.
        write: writes the whole file to the path it is given.
        overwrite: replace an existing ``path``; if false, an existing one raises
            `IncasemError` before anything is written.

    Returns the path written.
    """
    path = check_new_file(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """`write_atomic` for a text (UTF-8)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text), overwrite)


def write_json(path: str | os.PathLike, content: Any, overwrite: bool = True) -> Path:
    """Write ``content`` as indented JSON (with a final newline), atomically."""
    return write_text_atomic(path, json.dumps(content, indent=2) + "\n", overwrite)


@contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a whole new folder (e.g. a zarr container) in a temporary sibling and move it into
    place when the ``with`` block ends without error.

    A crash or error leaves ``path`` as it was (absent, or the old folder); the temporary
    folder is removed. An existing ``path`` raises `IncasemError` unless ``overwrite``; it is
    replaced only once the new folder is complete.
    """
    path = check_new_file(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        if path.exists():
            trash = _sibling(path, "old")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
