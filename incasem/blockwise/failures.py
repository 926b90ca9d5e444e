"""How a failed block is worded and recorded: one line naming its ROI in voxels, kept as data.

Every blockwise job words a failure the same way, whichever worker ran the block (in this
process, a local worker process, a worker started through a template): ``block [z0:z1, y0:y1,
x0:x1] (voxels): <error>``. The worker records it as a small JSON file in the job's log folder
(`BlockFailures`) and the driver turns the first one into its one `IncasemError` line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.io.roi import format_roi_voxels


class BlockError(RuntimeError):
    """Raised when a block fails; its message names the block (voxels)."""


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines included) made one space."""
    return " ".join(text.split())


def describe_roi(roi: Roi, voxel_size: Sequence[int]) -> str:
    """``[z0:z1, y0:y1, x0:x1] (voxels)`` for a world ROI (nm) on the grid of ``voxel_size``."""
    voxel_size = Coordinate(voxel_size)
    return format_roi_voxels(roi.offset / voxel_size, roi.shape / voxel_size) + " (voxels)"


def block_subject(roi: Roi, voxel_size: Sequence[int]) -> str:
    """What a failure message calls a block: ``block [z0:z1, y0:y1, x0:x1] (voxels)`` of its
    write ROI (nm, z, y, x), the one wording of every blockwise job."""
    return f"block {describe_roi(roi, voxel_size)}"


class BlockFailures:
    """The failed blocks of one task, recorded by the workers as one JSON file each.

    Why files: daisy hands the driver a worker's failure as traceback text only; a record
    written where the block failed keeps the block, its ROI and the error as data, whichever
    process (local, cluster node, container) the worker ran in, as long as it shares the file
    system with the driver (the log folder's requirement anyway).

    Args:
        folder (str | Path | None): where the records go (created when the first is written);
            None keeps none (`first` is then always None).
    """

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    def record(self, subject: str, error: BaseException) -> str:
        """Record that ``subject`` (e.g. ``block [0:8, 0:8, 0:8] (voxels)``) failed with
        ``error``; returns the one-line message ``<subject>: <error>``."""
        if isinstance(error, IncasemError):
            reason = str(error)
        else:
            reason = f"{type(error).__name__}: {error}"
        message = f"{subject}: {one_line(reason)}"
        if self.folder is None:
            return message
        record = {"message": message, "time": time.time()}
        with contextlib.suppress(OSError):  # a full disk must not hide the block's own error
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"failure-{os.getpid()}-{time.monotonic_ns()}.json"
            path.write_text(json.dumps(record))
        return message

    def clear(self) -> None:
        """Forget earlier records (a resumed task writes into the same folder)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def first(self) -> str | None:
        """The message of the earliest recorded failure, or None if no block failed."""
        records = []
        for path in self.folder.glob("failure-*.json") if self.folder is not None else ():
            with contextlib.suppress(OSError, ValueError):
                records.append(json.loads(path.read_text()))
        return min(records, key=lambda r: r["time"])["message"] if records else None
