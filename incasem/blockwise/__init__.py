"""Run a function over a volume block by block, in worker processes, with daisy 2.

Every command that touches a whole volume (conversion, equalisation, masks, pyramids, prediction)
has the same needs, so they live here once:

* **Chunk-aligned writes.** Two workers writing parts of one zarr chunk silently lose data (a
  read-modify-write race that daisy cannot see), so write blocks start at the output's first voxel
  and their shape must be a multiple of the output's chunk shape. `run_in_blocks` takes the block
  shape from the output's chunks (`aligned_block_shape`, one default edge `BLOCK_EDGE`) and
  checks a given one, instead of trusting every caller to remember.
* **Context.** A block may read more than it writes (``read_roi`` = ``write_roi`` grown by
  ``context``) so that filters see their whole neighbourhood and blockwise results equal a
  single-pass result. At the volume's faces the read ROI reaches outside the data; daisy's
  ``fit="shrink"`` clips the last blocks to the volume and process functions clip what they read
  (`read_clipped`).
* **Worker processes, rebuilt from JSON.** daisy 2 runs distributed workers as spawned
  subprocesses and serialises the process function it is given, so it is only ever given a
  small `incasem.launch.ModuleWorker`: a block function (a frozen dataclass of paths and numbers
  in an ``incasem`` module) reaches its workers as JSON, its import path and fields
  (`incasem.blockwise.worker.WorkerTask`), and no pickle crosses a process boundary.
  ``num_workers=0`` runs every block in this process, which is what debuggers and profilers
  need.
* **Timeouts from the block size.** daisy's watchdog kills a block after its timeout (600 s when
  unset), which a large CPU block can exceed; `block_timeout` (the one rule, prediction's too)
  grows it with the read volume.
* **One client loop.** Every worker, prediction's included, pulls its blocks through
  `incasem.blockwise.worker.serve`: the next block is fetched (and read) while one computes.
* **Failures are reported, not swallowed.** A failing block is recorded by its worker as a small
  JSON file (`BlockFailures`: ``block [z0:z1, y0:y1, x0:x1] (voxels): <error>``, the one wording
  of `incasem.blockwise.failures`) in the task's log folder;
  the driver turns the first one into one `IncasemError` line and keeps the worker logs.
  Nothing is parsed out of daisy's traceback text, whose format is daisy's to change.
* **One description per job.** A job is described before it runs (`BlockwiseJob`: name, block
  geometry in nm, workers, timeout, retries, done-markers) and run by `run_job`, the one place
  that builds a daisy task. `run_in_blocks` (every data-preparation and post-processing command)
  and prediction (`incasem.predict.task`) both describe their jobs this way.
* **Workers anywhere.** Three launchers, chosen per job: in this process (``num_workers=0``,
  for debuggers), local worker processes, or a worker command template
  (``--worker-command "srun ... {command}"``) through which each worker is started, on a cluster
  node or in a container (`incasem.launch`). A job's worker is either a block function (called
  per block) or a `incasem.launch.ModuleWorker` of its own that loads what it needs once
  (prediction's model).
* **Logs out of the user's way.** daisy writes worker logs to ``./daisy_logs`` by default; we put
  them in ``<output container>.logs/<task>-<time>-<id>/`` beside the output (a temporary folder
  when there is no output container), delete them after success and keep (and name) them after a
  failure.

Done-markers (daisy's block tracking) are used where resume matters (prediction's ``--resume``,
`BlockwiseJob.done_markers`); `run_in_blocks`'s callers write into staged datasets that only
appear under their final name once every block succeeded, so a rerun starts clean and a
half-written result is never mistaken for a finished one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveFloat

from incasem.blockwise.failures import (
    BlockError,
    BlockFailures,
    block_subject,
    describe_roi,
    one_line,
)
from incasem.errors import IncasemError
from incasem.io.arrays import array_container, default_chunks
from incasem.launch import ModuleWorker, check_template, current_template

__all__ = [
    "BLOCK_EDGE",
    "BlockError",
    "BlockFailures",
    "BlockwiseJob",
    "GuardedBlockFunction",
    "JobOutcome",
    "aligned_block_shape",
    "block_subject",
    "block_timeout",
    "ctrl_c_kept",
    "describe_roi",
    "one_line",
    "read_clipped",
    "run_blockwise",
    "run_in_blocks",
    "run_job",
    "scheduler_stderr_to",
]

logger = logging.getLogger(__name__)

#: A block is never presumed stuck before this many seconds (daisy's own default).
_MIN_TIMEOUT_S = 600.0
#: Seconds every block gets on top of its size-dependent budget (start-up, first reads).
_BASE_TIMEOUT_S = 120.0
#: Blocks a block-function worker holds at once: the one computing and the next, fetched ahead.
_BLOCKS_HELD = 2


def block_timeout(read_voxels: float, seconds_per_voxel: float, blocks_held: int = 1) -> float:
    """Seconds after which daisy presumes a block's worker stuck and retries the block.

    ``120 s + blocks_held × seconds_per_voxel × read_voxels``, at least daisy's 600 s default:
    a pessimistic per-voxel cost of the block's work (read ROI, voxels), times the blocks a
    worker holds at once (prediction reads one ahead and writes one behind, so a block may wait
    for two others). The one timeout rule of every blockwise command.
    """
    budget = _BASE_TIMEOUT_S + blocks_held * seconds_per_voxel * read_voxels
    return max(_MIN_TIMEOUT_S, budget)


@dataclass(frozen=True)
class GuardedBlockFunction:
    """A block function for `run_job` that calls ``function`` and records any failure
    (`BlockFailures`) before raising it again as a `BlockError`, one line with the ROI.

    In this process (``num_workers=0``) it is daisy's process function; for worker processes
    `run_job` hands its three fields to the workers as JSON (`incasem.blockwise.worker`), whose
    one client loop records and words failures the same way.

    Args:
        function (Callable): the process function, called with each daisy block.
        voxel_size (tuple[int, ...]): nm (z, y, x), to name a failed block's ROI in voxels.
        failures (str): the `BlockFailures` folder.
    """

    function: Callable[[Any], None]
    voxel_size: tuple[int, ...]
    failures: str

    def __call__(self, block: Any) -> None:
        try:
            self.function(block)
        except Exception as e:
            subject = block_subject(block.write_roi, self.voxel_size)
            raise BlockError(BlockFailures(self.failures).record(subject, e)) from e


def read_clipped(array: Array, roi: Roi) -> tuple[np.ndarray, Roi]:
    """Read the part of ``roi`` (nm) that lies inside ``array``; returns the data and that part.

    Process functions with context use it at the volume's faces, where the read ROI reaches
    outside the data; they then decide how to treat the outside (zero, reflect, "ignore").
    """
    inside = roi.intersect(array.roi)
    return array[inside], inside


#: Edge of a blockwise job's block in voxels unless the job is told otherwise
#: (`aligned_block_shape` rounds it up to whole chunks). Blockwise commands default to it.
BLOCK_EDGE = 128


def aligned_block_shape(chunk_shape: Sequence[int], edge: int = BLOCK_EDGE) -> Coordinate:
    """The block of a job whose output has ``chunk_shape`` (voxels, z, y, x): the smallest
    multiple of the chunks that is at least ``edge`` voxels along every axis, so that blocks
    write whole chunks."""
    return Coordinate(max(1, math.ceil(edge / c)) * c for c in chunk_shape)


def _spatial_chunks(output: Array) -> Coordinate:
    return Coordinate(output.chunk_shape[-output.voxel_size.dims :])


def _check_alignment(
    output: Array, total_roi: Roi, block_shape: Coordinate, voxel_size: Coordinate, name: str
) -> None:
    chunks = _spatial_chunks(output)
    if output.voxel_size != voxel_size:
        raise ValueError(
            f"{name}: output voxel size {list(output.voxel_size)} nm differs from the block grid's "
            f"{list(voxel_size)} nm"
        )
    if not block_shape.is_multiple_of(chunks):
        raise ValueError(
            f"{name}: block shape {list(block_shape)} voxels is not a multiple of the output chunk "
            f"shape {list(chunks)}; workers would race on shared chunks"
        )
    start = (total_roi.offset - output.roi.offset) / voxel_size
    if not start.is_multiple_of(chunks):
        raise ValueError(
            f"{name}: blocks start at voxel {list(start)} of the output, not on its chunk grid "
            f"{list(chunks)}"
        )


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """Make a Ctrl-C (SIGINT) during the block end it with ``KeyboardInterrupt``, always.

    daisy's compiled code calls back into Python (reading its arguments, starting workers,
    its progress bar); a ``KeyboardInterrupt`` raised in such a call came out as another error
    (a ``TypeError`` about daisy's ROI argument) or was dropped, and the job then ran to its
    end as if nobody had pressed Ctrl-C. Here each SIGINT is recorded as well as raised: an
    error that follows one becomes ``KeyboardInterrupt``, and a block that returns after one
    raises it. It does nothing outside the main thread (where no signal handler can be set)
    and where SIGINT has another handler or none (a job started in the background with SIGINT
    ignored stays deaf to it).
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    except Exception as error:
        if pressed:
            raise KeyboardInterrupt from error
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


@contextlib.contextmanager
def scheduler_stderr_to(path: Path) -> Iterator[None]:
    """Send what is written to file descriptor 2 during the block to ``path``; Python's
    ``sys.stderr`` (progress bars, log messages) keeps reaching the terminal.

    Why: daisy's scheduler (compiled code) reports every failed block with the worker's whole
    traceback straight to descriptor 2, so a full disk printed 30 traceback lines before our one
    line. The traceback belongs with the worker logs; the user gets the one line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = open(saved, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    previous = sys.stderr
    handlers = [
        h
        for h in _all_handlers()
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is previous
    ]
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    sys.stderr = terminal
    for handler in handlers:
        handler.setStream(terminal)
    try:
        yield
    finally:
        terminal.flush()
        for handler in handlers:
            handler.setStream(previous)
        sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def _log_dir(name: str, output: Array | None) -> Path:
    """A new folder for the worker logs of one run: ``<container>.logs/<name>-<time>`` beside
    the output's zarr container, where a user looks after a failure; a temporary folder when
    the output is not a zarr container on disk."""
    container = array_container(output) if output is not None else None
    if container is not None:
        logs = Path(f"{container.resolve()}.logs")
        with contextlib.suppress(OSError):
            logs.mkdir(exist_ok=True)
            return Path(
                tempfile.mkdtemp(prefix=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=logs)
            )
    return Path(tempfile.mkdtemp(prefix=f"incasem-{name}-logs-"))


def _run_task(
    task: Any,
    log_dir: Path,
    host: str = "127.0.0.1",
    progress: Any = True,
    multiprocessing: bool = True,
) -> tuple[Any, str | None]:
    """Run one daisy task with its worker logs in ``log_dir`` and the scheduler's own error
    output in ``log_dir/scheduler.err`` (see `scheduler_stderr_to`).

    The one place that starts daisy's scheduler, for `run_job`.

    Returns:
        The task's daisy state (None if daisy gave none) and, when daisy abandoned the task
        because its workers kept dying, daisy's error text (else None).
    """
    import daisy.v2 as daisy
    from daisy import logging as daisy_logging

    previous_log_dir = daisy_logging.get_log_basedir()
    daisy_logging.set_log_basedir(log_dir)
    try:
        with scheduler_stderr_to(log_dir / "scheduler.err"):
            states = daisy.run_blockwise(
                task,
                multiprocessing=multiprocessing,
                progress=progress,
                return_states=True,
                host=host,
                summary=False,
            )
        return states[task.task_id], None
    except BlockError:  # serial mode re-raises the block's own exception: the caller's to word
        raise
    except RuntimeError as e:  # daisy abandons a task whose workers keep dying
        states = getattr(e, "daisy_states", None) or {}
        return states.get(task.task_id), str(e)
    finally:
        daisy_logging.set_log_basedir(previous_log_dir)


class BlockwiseJob(BaseModel):
    """One blockwise job, described before it runs: how daisy cuts the volume into blocks and
    how it treats their workers. World units (nm), axis order z, y, x.

    Args:
        name (str): the task's name (progress bar, logs, errors).
        total_roi (Roi): what the blocks' read ROIs cover, context included.
        read_roi (Roi): the first block's read ROI (write ROI grown by the context).
        write_roi (Roi): the first block's write ROI, inside ``read_roi``.
        fit (str): ``"shrink"`` clips the last blocks to ``total_roi``; ``"overhang"`` keeps
            them whole (their writes are clipped by the worker). Default ``"shrink"``.
        num_workers (int): worker processes; 0 runs every block in this process. Default 1.
        timeout_s (float): seconds before a block's worker is presumed stuck
            (`block_timeout`).
        max_retries (int): attempts per block after the first. Default 1.
        done_markers (Path | None): daisy's block tracking folder: blocks marked done there
            by an earlier run are skipped (resume). Default None (every block runs).
        worker_command (str | None): the template block-function workers are started
            through (`incasem.launch`); None starts them as local processes. Default None.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    total_roi: Roi
    read_roi: Roi
    write_roi: Roi
    fit: Literal["shrink", "overhang"] = "shrink"
    num_workers: NonNegativeInt = 1
    timeout_s: PositiveFloat
    max_retries: NonNegativeInt = 1
    done_markers: Path | None = None
    worker_command: str | None = None

    @classmethod
    def for_volume(
        cls,
        name: str,
        total_roi: Roi,
        voxel_size: Sequence[int],
        *,
        block_shape: Sequence[int] | None = None,
        block_edge: int = BLOCK_EDGE,
        context: Sequence[int] | int = 0,
        output: Array | None = None,
        seconds_per_megavoxel: float = 10.0,
        num_workers: int = 1,
        worker_command: str | None = None,
    ) -> BlockwiseJob:
        """The job of `run_in_blocks` (see its arguments): write blocks of ``block_shape``
        voxels (default: the output's chunks by ``block_edge``, `aligned_block_shape`) from
        ``total_roi``'s offset (nm), read blocks grown by ``context`` voxels, checked against the
        output's chunk grid, and the timeout of their read volume (`block_timeout`)."""
        voxel_size = Coordinate(voxel_size)
        dims = voxel_size.dims
        if block_shape is None:
            chunks = (
                _spatial_chunks(output)
                if output is not None
                else default_chunks(total_roi.shape / voxel_size)
            )
            block_shape = aligned_block_shape(chunks, block_edge)
        block_shape = Coordinate(block_shape)
        context = Coordinate((context,) * dims if isinstance(context, int) else context)
        if output is not None:
            _check_alignment(output, total_roi, block_shape, voxel_size, name)
        context_nm = context * voxel_size
        seconds_per_voxel = seconds_per_megavoxel / 1e6
        return cls(
            name=name,
            total_roi=total_roi.grow(context_nm, context_nm),
            read_roi=Roi((0,) * dims, block_shape * voxel_size + context_nm * 2),
            write_roi=Roi(context_nm, block_shape * voxel_size),
            num_workers=num_workers,
            timeout_s=block_timeout(
                math.prod(block_shape + context * 2), seconds_per_voxel, _BLOCKS_HELD
            ),
            worker_command=worker_command,
        )


@dataclass
class JobOutcome:
    """What `run_job` reports.

    Attributes:
        state: daisy's task state (block counts, ``skipped_count``), or None when daisy gave
            none.
        error: daisy's reason, one line, when it abandoned the job (its workers kept dying),
            else None.
        failed_blocks: (block id, write ROI in nm) of every block left failed.
    """

    state: Any
    error: str | None
    failed_blocks: list[tuple[int, Roi]] = field(default_factory=list)


def run_job(
    job: BlockwiseJob,
    worker: Callable[..., None],
    log_dir: Path,
    *,
    progress: Any = True,
    host: str = "127.0.0.1",
) -> JobOutcome:
    """Run ``job`` with ``worker``: a block function (called with each daisy block; wrap it in
    `GuardedBlockFunction` to record failures) or a 0-argument `incasem.launch.ModuleWorker`
    that pulls blocks itself (prediction's).

    The one place that turns a job description into a daisy task. With worker processes a
    block function travels to them as JSON (`incasem.blockwise.worker.WorkerTask`: its import
    path and fields; `IncasemError` here, before any worker starts, if it cannot) and is served
    by the one client loop; serial jobs (``num_workers=0``) call it in this process and
    re-raise a block's `BlockError` to the caller.
    """
    import daisy.v2 as daisy

    process_function = _process_function(job, worker)
    tracking = {"tracking_path": str(job.done_markers)} if job.done_markers is not None else {}
    with ctrl_c_kept():
        task = daisy.Task(
            job.name,
            total_roi=job.total_roi,
            read_roi=job.read_roi,
            write_roi=job.write_roi,
            process_function=process_function,
            read_write_conflict=False,
            fit=job.fit,
            max_workers=max(1, job.num_workers),
            max_retries=job.max_retries,
            timeout=job.timeout_s,
            **tracking,
        )
        state, error = _run_task(task, log_dir, host, progress, multiprocessing=job.num_workers > 0)
    failed = [(int(b.block_id[1]), b.write_roi) for b in task.failed_blocks()] if tracking else []
    return JobOutcome(state, one_line(error) if error else None, failed)


def _process_function(job: BlockwiseJob, worker: Callable[..., None]) -> Callable[..., None]:
    """daisy's process function for ``worker``: itself in this process or when it is a
    `ModuleWorker`; else the `ModuleWorker` that rebuilds the block function from JSON."""
    if job.num_workers == 0 or isinstance(worker, ModuleWorker):
        return worker
    from incasem.blockwise.worker import WorkerTask, block_function_worker

    if isinstance(worker, GuardedBlockFunction):
        task = WorkerTask.describe(worker.function, worker.voxel_size, worker.failures)
    else:
        task = WorkerTask.describe(worker)
    return block_function_worker(task, job.worker_command)


def run_in_blocks(
    process_block: Callable[[Any], None],
    total_roi: Roi,
    block_shape: Sequence[int] | None,
    voxel_size: Sequence[int],
    *,
    context: Sequence[int] | int = 0,
    output: Array | None = None,
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    name: str = "incasem",
    seconds_per_megavoxel: float = 10.0,
    progress: bool = True,
    worker_command: str | None = None,
) -> None:
    """Call ``process_block(block)`` for every block of ``total_roi``; raise if any block failed.

    Args:
        process_block: the block function: an instance of a frozen dataclass (paths and
            numbers) defined at the top level of an ``incasem`` module, taking a daisy block;
            worker processes rebuild it from its import path and fields as JSON
            (`incasem.blockwise.worker`). ``block.write_roi`` is the part it must write and
            ``block.read_roi`` the part it may read (``write_roi`` grown by ``context``, clipped
            at ``total_roi`` grown by ``context``); both are world ROIs in nm, z, y, x.
            Neighbouring blocks run at the same time, so it must not read what other blocks
            write (read from one dataset, write to another).
        total_roi: the region to write, in nm (z, y, x); usually the output array's ROI. Blocks
            start at its offset; the last blocks along each axis are shrunk to fit.
        block_shape: write block shape in voxels (z, y, x); None: the output's chunks (without
            an output, `incasem.io.default_chunks` of ``total_roi``), as many as make at least
            ``block_edge`` voxels along each axis (`aligned_block_shape`).
        voxel_size: nm (z, y, x) of the grid the blocks live on.
        context: voxels (z, y, x, or one number for all axes) read on each side of a write block.
        output: the array the blocks write to. If given, the block shape and start are checked
            against its chunk grid (raises ``ValueError``, a programming error, if misaligned).
        block_edge: voxels; see ``block_shape``. Default `BLOCK_EDGE`.
        num_workers: worker processes; ``0`` runs all blocks serially in this process.
        name: task name shown in the progress bar and in errors.
        seconds_per_megavoxel: per-block timeout budget; a block is killed after
            `block_timeout` of its read voxels (``120 s + 2 × seconds_per_megavoxel × read
            megavoxels``, at least 600 s: a worker holds the next block while one computes)
            and retried.
        progress: show daisy's progress bar.
        worker_command: start each worker through this shell template (``{command}`` is
            replaced by the worker's command, e.g. ``"srun --mem=8G {command}"``; see
            `incasem.launch`); default the one set by `incasem.launch.worker_command_scope`
            (the command line's ``--worker-command``), else local processes. Ignored with
            ``num_workers=0``.

    Raises:
        IncasemError: one line naming how many blocks failed, the first failing block's write
            ROI in voxels and its error, and where the worker logs are; or, before any block
            runs, why a worker could not rebuild ``process_block`` from JSON.
    """
    template = worker_command or current_template()
    check_template(template)
    job = BlockwiseJob.for_volume(
        name, total_roi, voxel_size, block_shape=block_shape, block_edge=block_edge,
        context=context, output=output, seconds_per_megavoxel=seconds_per_megavoxel,
        num_workers=num_workers, worker_command=template,
    )  # fmt: skip
    log_dir = _log_dir(name, output)
    failures = BlockFailures(log_dir / "failures")
    worker = GuardedBlockFunction(process_block, tuple(voxel_size), str(failures.folder))
    start = time.monotonic()
    try:
        outcome = run_job(job, worker, log_dir, progress=progress)
        state, error = (None, outcome.error) if outcome.error else (outcome.state, None)
    except BlockError:  # serial mode re-raises the block's exception here
        state, error = None, failures.first()
    except IncasemError:  # the block function cannot travel to workers: nothing ran
        _remove_logs(log_dir)
        raise
    if state is not None:
        failed = state.total_block_count - state.completed_count
        if failed == 0:
            _remove_logs(log_dir)
            logger.info(
                "%s: %d blocks done in %.1f s",
                name,
                state.total_block_count,
                time.monotonic() - start,
            )
            return
        reason = failures.first() or "no error recorded"
        error = f"{failed} of {state.total_block_count} blocks failed; first: {reason}"
    raise IncasemError(f"{name}: {error} (worker logs: {log_dir})")


def run_blockwise(*args: Any, **kwargs: Any) -> None:
    """The old name of `run_in_blocks` (it was also the name of daisy's own scheduler call,
    which `run_in_blocks` uses); logs a deprecation line and runs `run_in_blocks`."""
    logger.warning("incasem.blockwise.run_blockwise is deprecated: use run_in_blocks")
    run_in_blocks(*args, **kwargs)


def _remove_logs(log_dir: Path) -> None:
    """Delete a job's log folder, and the container's ``.logs`` folder if now empty."""
    shutil.rmtree(log_dir, ignore_errors=True)
    if log_dir.parent.name.endswith(".logs"):
        with contextlib.suppress(OSError):
            log_dir.parent.rmdir()
