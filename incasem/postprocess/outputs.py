"""Result files (JSON reports, CSV/Parquet tables) written atomically, never over old ones.

A report or table that a later analysis reads must be either complete or absent: each file is
written to a hidden temporary sibling and renamed into place (``os.replace`` is atomic on one
file system). An existing file is refused unless the caller passes ``overwrite``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError


def check_new_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a Path; raise `IncasemError` if it exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise IncasemError(f"{path} already exists; pass --overwrite to replace it")
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = check_new_file(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike, report: dict[str, Any], overwrite: bool) -> Path:
    """Write ``report`` as indented JSON, atomically."""
    text = json.dumps(report, indent=2) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text), overwrite)
