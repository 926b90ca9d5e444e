"""The daisy task of one entry, and how its workers are launched.

daisy 2 always runs workers as spawned processes (``python -m daisy._subprocess_worker``) and
ships the process function to them pickled. We give it a 0-argument worker function,
`launch_worker`, so that each worker process loads the model once and then loops over blocks
itself (a 1-argument block function would be called per block, with the model reloaded or kept
in a global). `launch_worker` either runs the worker loop in that process or, with a worker
command template, starts ``python -m incasem.predict.worker SPEC.json`` through it (``srun``,
``bsub``, ``bash -c``, a container; `incasem.launch.run_through_template`, as every blockwise
command does) and waits: both end in the same `run_worker`, which finds the scheduler through
the ``DAISY_CONTEXT`` environment variable daisy gave the process.

The geometry follows `BlockLayout`: write ROI = chunk = block (no two workers share a chunk),
read ROI = write ROI + context, ``fit="overhang"`` so the whole ROI is predicted (blocks at the
end are clipped when written), and no read/write conflicts between neighbours (each block
writes only its own chunks). The per-block timeout (daisy 2 always arms one, 600 s by default)
is derived from the block size.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import daisy.v2 as daisy
from funlib.geometry import Roi

from incasem.launch import run_through_template
from incasem.predict.geometry import BlockLayout

#: Seconds per input voxel per (top-level feature map)² on one slow CPU thread: a pessimistic
#: fit of measured forward passes (F=12, 244³ input: about 18 s on one core).
_SECONDS_PER_VOXEL_FMAP2 = 1e-8
#: Safety factor of the block timeout over that estimate; daisy's default is the lower bound.
_TIMEOUT_FACTOR = 10
_MIN_TIMEOUT_S = 600.0
#: Blocks a worker holds at once (`incasem.predict.overlap`: one computing, one read ahead, one
#: written behind).
_BLOCKS_HELD = 3


def block_timeout(layout: BlockLayout, num_fmaps: int) -> float:
    """Seconds after which a block's worker is presumed stuck: 10x a one-CPU-thread estimate of
    the block's forward pass, times the blocks a worker holds at once (it reads one ahead and
    writes one behind, so a block waits for up to two others), at least daisy's 600 s default."""
    voxels = float(layout.input_shape[0] * layout.input_shape[1] * layout.input_shape[2])
    estimate = _SECONDS_PER_VOXEL_FMAP2 * voxels * num_fmaps**2
    return max(_MIN_TIMEOUT_S, _TIMEOUT_FACTOR * _BLOCKS_HELD * estimate)


def worker_command(spec_path: str | os.PathLike) -> list[str]:
    """The command (argument list) that starts a worker for a spec file."""
    return [sys.executable, "-m", "incasem.predict.worker", str(spec_path)]


def launch_worker(spec_path: str, template: str | None) -> None:
    """daisy's worker function: run one prediction worker, here or through ``template``.

    Args:
        spec_path: the `WorkerSpec` JSON of the entry.
        template: None to run in this process; else a shell command containing ``{command}``
            (e.g. ``"srun --gpus=1 {command}"``), run with the worker command substituted.
            The child inherits this process's environment, including ``DAISY_CONTEXT``, and
            finds this incasem through ``PYTHONPATH``. A non-zero exit is passed on to daisy,
            which then restarts the worker.
    """
    if template is None:
        from incasem.predict.worker import WorkerSpec, run_worker

        run_worker(WorkerSpec.load(spec_path))
        return
    run_through_template(worker_command(spec_path), template)


def make_task(
    task_id: str,
    roi: Roi,
    layout: BlockLayout,
    spec_path: Path,
    num_workers: int,
    template: str | None,
    timeout: float,
    max_retries: int,
    tracking: Path,
) -> daisy.Task:
    """The daisy task that predicts ``roi`` (nm) with ``num_workers`` workers.

    Done blocks are recorded under ``tracking`` (see `incasem.predict.resume`).
    """
    return daisy.Task(
        task_id,
        total_roi=layout.total_read_roi(roi),
        read_roi=layout.block_read_roi,
        write_roi=layout.block_write_roi,
        process_function=functools.partial(launch_worker, str(spec_path), template),
        read_write_conflict=False,
        fit="overhang",
        max_workers=num_workers,
        max_retries=max_retries,
        timeout=timeout,
        tracking_path=str(tracking),
    )
