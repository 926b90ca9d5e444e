"""Memory allocator settings of the training process on a CPU.

A 3D U-Net's training step allocates and frees tensors of tens to hundreds of MB. glibc's malloc
serves such blocks with ``mmap`` and returns them with ``munmap`` when freed, so every step
maps fresh pages and the kernel zero-fills each on first touch: the 10 nm CPU recipe's step took
about 300,000 minor page faults and spent 18 % of its CPU time in the kernel
(``benchmarks/results/cpu_page_faults.md``). Told to keep freed memory (no ``mmap`` for large
blocks, no trimming of the heap), glibc reuses it: about 140 faults per step, no kernel time;
a real 30-iteration training spent 2 % of its CPU time in the kernel instead of 24 %.

The training commands (``scripts/train.py``, ``incasem train``) therefore re-execute themselves
once with `KEEP_FREED_MEMORY` in the environment (glibc reads it at process start; the batch
workers inherit it). ``INCASEM_ALLOCATOR=system`` switches this off (glibc's defaults, or the
user's own ``MALLOC_*`` settings or ``LD_PRELOAD``ed allocator).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

#: The environment variable choosing the allocator settings: ``keep`` (default) or ``system``.
ALLOCATOR_VARIABLE = "INCASEM_ALLOCATOR"
#: glibc malloc settings that keep freed memory for reuse: no ``mmap`` for large blocks, no
#: trimming of the heap's top below 1 TiB, 256 MiB extra at each heap growth.
KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(2**40),
    "MALLOC_TOP_PAD_": str(2**28),
}
_CHOICES = ("keep", "system")


def allocator_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment the training process should run with, or None when ``environ`` is it
    already (or ``INCASEM_ALLOCATOR=system`` leaves the allocator alone)."""
    choice = environ.get(ALLOCATOR_VARIABLE, "keep")
    if choice not in _CHOICES:
        raise IncasemError(
            f"environment variable {ALLOCATOR_VARIABLE}={choice!r}: choose {' or '.join(_CHOICES)}"
        )
    if choice == "system" or all(environ.get(k) == v for k, v in KEEP_FREED_MEMORY.items()):
        return None
    return {**environ, **KEEP_FREED_MEMORY}


def exec_with_allocator_settings() -> None:
    """Re-execute this process (same interpreter, same command line) with the allocator
    settings, unless it runs with them already; returns only in that case."""
    environ = allocator_environment(os.environ)
    if environ is None or not sys.platform.startswith("linux"):
        return
    logger.debug("re-executing with %s", KEEP_FREED_MEMORY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
