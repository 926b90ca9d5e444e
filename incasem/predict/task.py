"""Prediction as a blockwise job: its description, its workers and its block timeout.

Prediction runs on the engine every blockwise command shares (`incasem.blockwise.run_job`);
what is its own is described here. Its worker is 0-argument (`incasem.launch.ModuleWorker` of
``python -m incasem.predict.worker SPEC.json``) so that each worker process loads the model once
and then pulls blocks through the one client loop of every blockwise job
(`incasem.blockwise.worker.serve`), reading one ahead and writing one behind (a block function
would be called per block, with the model reloaded or kept in a global). Without a worker command
template the worker runs in daisy's worker process; with one (``srun``, ``bsub``, ``bash -c``, a
container) it is started through it, as every blockwise command's workers are.

The geometry follows `BlockLayout`: write ROI = chunk = block (no two workers share a chunk),
read ROI = write ROI + context, ``fit="overhang"`` so the whole ROI is predicted (blocks at the
end are clipped when written), and done-markers record finished blocks for ``--resume``. The
block timeout is `incasem.blockwise.block_timeout` of the block's input, at a per-voxel cost
that grows with the network's width.
"""

from __future__ import annotations

import math
from pathlib import Path

from funlib.geometry import Roi

from incasem.blockwise import BlockwiseJob, block_timeout
from incasem.launch import ModuleWorker
from incasem.predict.geometry import BlockLayout

#: Seconds per input voxel per (top-level feature map)² on one slow CPU thread: a pessimistic
#: fit of measured forward passes (F=12, 244³ input: about 18 s on one core).
_SECONDS_PER_VOXEL_FMAP2 = 1e-8
#: Safety factor of the block timeout over that estimate.
_TIMEOUT_FACTOR = 10
#: Blocks a worker holds at once (`incasem.blockwise.overlap`: one computing, one read ahead, one
#: written behind).
_BLOCKS_HELD = 3


def prediction_block_timeout(layout: BlockLayout, num_fmaps: int) -> float:
    """Seconds after which a block's worker is presumed stuck (`block_timeout`): 10x a
    one-CPU-thread estimate of the block's forward pass, for the three blocks a worker holds."""
    seconds_per_voxel = _TIMEOUT_FACTOR * _SECONDS_PER_VOXEL_FMAP2 * num_fmaps**2
    return block_timeout(math.prod(layout.input_shape), seconds_per_voxel, _BLOCKS_HELD)


def prediction_worker(spec_path: str | Path, template: str | None) -> ModuleWorker:
    """The worker of one entry: ``python -m incasem.predict.worker SPEC.json``, in daisy's
    worker process or through ``template`` (e.g. ``"srun --gpus=1 {command}"``)."""
    return ModuleWorker("incasem.predict.worker", (str(spec_path),), template)


def prediction_job(
    name: str,
    roi: Roi,
    layout: BlockLayout,
    num_workers: int,
    timeout: float,
    max_retries: int,
    done_markers: Path,
) -> BlockwiseJob:
    """The job that predicts ``roi`` (nm) with ``num_workers`` workers; blocks done are
    recorded under ``done_markers`` (see `incasem.predict.resume`)."""
    return BlockwiseJob(
        name=name,
        total_roi=layout.total_read_roi(roi),
        read_roi=layout.block_read_roi,
        write_roi=layout.block_write_roi,
        fit="overhang",
        num_workers=num_workers,
        timeout_s=timeout,
        max_retries=max_retries,
        done_markers=done_markers,
    )
