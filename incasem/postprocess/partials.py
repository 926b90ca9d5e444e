"""Per-block partial results written by workers and combined by the driver.

daisy 2 runs blocks in spawned worker processes that return nothing to the driver, so a block
that contributes to a global result (counts, moments, face pairs) saves its part as one ``.npz``
file named after its block. Files are written to a temporary name and renamed, so a killed worker
never leaves a half-written part that the driver would count; a retried block overwrites its own
file, so nothing is counted twice. The folder is scratch space owned by one command run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from funlib.geometry import Roi

from incasem.atomic import write_atomic


def block_key(roi: Roi) -> str:
    """A file-name-safe key of a block from its write ROI offset (nm, z, y, x)."""
    return "_".join(str(int(o)) for o in roi.offset)


def save_part(folder: str | os.PathLike, roi: Roi, **arrays: np.ndarray) -> None:
    """Save one block's arrays as ``<folder>/<block key>.npz`` atomically."""
    write_atomic(Path(folder) / f"{block_key(roi)}.npz", lambda tmp: np.savez(tmp, **arrays))


def load_parts(folder: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Every block's arrays, in a fixed order (sorted by block key)."""
    parts = []
    for path in sorted(Path(folder).glob("[!.]*.npz")):
        with np.load(path) as data:
            parts.append({key: data[key] for key in data.files})
    return parts


@contextmanager
def scratch_folder(
    near: str | os.PathLike | None = None, prefix: str = "incasem-"
) -> Iterator[Path]:
    """A temporary folder (next to ``near`` when given, else in the system temp), removed after."""
    parent = None if near is None else str(Path(near).expanduser().absolute().parent)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
