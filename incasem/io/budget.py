"""Check what a plan needs (memory, disk) before anything is allocated or written.

A dataset's metadata says how large it is, and nothing stops it from claiming 10^5 voxels per
axis with chunks only in one corner. Every command that sizes an allocation or an output by
metadata asks here first, so such a plan is refused in one line that names the dataset, instead
of growing until the kernel's out-of-memory killer ends it or filling the disk for days.

The limits:

* **Memory**: one array of ``shape`` voxels may take at most `MEMORY_FRACTION` of the memory
  available now (``MemAvailable`` of ``/proc/meminfo``, else the physical memory).
* **Disk**: an output is planned at its uncompressed size (voxels x bytes per voxel, every
  chunk; incasem stores empty chunks too) and must fit into the free space of the file system
  it is written to. Compression usually makes it smaller, so the check is conservative; a ROI
  (``--roi``) or a crop (``incasem crop``) makes a plan smaller.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from incasem.errors import IncasemError

#: Share of the available memory one array may take (the rest is the program, its other arrays
#: and the other workers).
MEMORY_FRACTION = 0.5


def format_bytes(count: float) -> str:
    """``count`` bytes as ``1.2 GB`` (powers of 1000, up to exabytes)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} EB"


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``MemAvailable``, else physical)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def array_bytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes of an array of ``shape`` (voxels, any axes) and ``dtype``."""
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize


def check_memory(what: str, shape: Sequence[int], dtype: Any) -> None:
    """Raise `IncasemError` naming ``what`` (e.g. ``cell.zarr/volumes/raw``) when an array of
    ``shape`` (voxels) and ``dtype`` would take more than `MEMORY_FRACTION` of the available
    memory."""
    need = array_bytes(shape, dtype)
    limit = int(available_memory() * MEMORY_FRACTION)
    if need > limit:
        raise IncasemError(
            f"{what}: {list(int(s) for s in shape)} voxels of {np.dtype(dtype)} would need "
            f"{format_bytes(need)} of memory, more than the limit of {format_bytes(limit)} "
            f"({MEMORY_FRACTION:.0%} of the memory available); choose a smaller ROI"
        )


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(what: str, destination: str | os.PathLike, need_bytes: int) -> None:
    """Raise `IncasemError` naming ``what`` when ``need_bytes`` (an output's uncompressed size)
    exceed the free space where ``destination`` is written."""
    free = free_disk(destination)
    if need_bytes > free:
        raise IncasemError(
            f"{what}: the output would take up to {format_bytes(need_bytes)} (uncompressed) in "
            f"{destination}, which has {format_bytes(free)} free; choose a smaller ROI or crop "
            "the dataset (incasem crop)"
        )
