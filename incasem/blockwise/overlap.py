"""Overlap a worker's reading, computing and writing of consecutive blocks: the loop of every
blockwise worker (`incasem.blockwise.worker.serve`).

A worker that reads a block, runs the network, then writes the result spends the sum of the
three per block; on a GPU the network is the short part and the accelerator waits for I/O. Here
block *n + 1* is read (and normalised) by a read-ahead thread and block *n − 1* is classified,
quantised, compressed and written by a write-behind thread while block *n* is on the network,
so the time per block approaches the largest of the three instead of their sum.

The queues are bounded (``read_ahead`` blocks read before they are needed, ``write_behind``
results waiting for their write), so a worker holds at most ``read_ahead + write_behind + 1``
blocks in memory and in the scheduler's "processing" state. A block is released to the
scheduler only after its write finished, so a block counted as done is on disk, and a block
whose stage raised is reported failed (the others go on). All scheduler calls stay on the
calling thread; the worker threads only run the read and write stages. A block function (every
job but prediction) is a compute stage alone: the next block is fetched while it computes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

B = TypeVar("B")


class Lease(Protocol[B]):
    """One block handed out by a scheduler, to be released once (done or failed)."""

    block: B

    def release(self, error: BaseException | None) -> None:
        """Report the block done (``error`` None) or failed with ``error``."""


@dataclass
class StageTimes:
    """Seconds spent in each stage (summed over blocks) and the wall time of the whole loop.

    With overlap, ``wall`` approaches the largest stage total; without, their sum.
    """

    blocks: int = 0
    failed: int = 0
    read: float = 0.0
    compute: float = 0.0
    write: float = 0.0
    wall: float = 0.0

    def summary(self) -> str:
        """One line for the worker's log."""
        return (
            f"{self.blocks} blocks ({self.failed} failed) in {self.wall:.1f} s: read "
            f"{self.read:.1f} s, compute {self.compute:.1f} s, write {self.write:.1f} s"
        )


@dataclass
class BlockStages(Generic[B]):
    """The three stages of one block's work.

    Args:
        read (callable): ``read(block) -> input``; runs on the read-ahead thread.
        compute (callable): ``compute(block, input) -> result``; runs on the calling thread
            (the one that owns the GPU context).
        write (callable): ``write(block, result) -> None``; runs on the write-behind thread.
    """

    read: Callable[[B], Any]
    compute: Callable[[B, Any], Any]
    write: Callable[[B, Any], None]


def _timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def run_blocks(
    acquire: Callable[[], Lease[B] | None],
    stages: BlockStages[B],
    read_ahead: int = 1,
    write_behind: int = 1,
) -> StageTimes:
    """Process blocks from ``acquire`` until it returns None; returns the stage times.

    Args:
        acquire: the next block's lease, or None when the scheduler has no more.
        stages: read, compute and write of one block.
        read_ahead: blocks read ahead of the one being computed (0: read when needed).
        write_behind: results whose write may still run while the next block computes
            (0: write before the next block starts).

    With ``read_ahead=0`` and ``write_behind=0`` blocks run strictly one after another, each
    read, computed and written on the calling thread's schedule (the worker threads still do the
    reading and writing). A stage that raises fails that block only.
    """
    times = StageTimes()
    start = time.perf_counter()
    reads: deque[tuple[Lease[B], Future]] = deque()
    writes: deque[tuple[Lease[B], Future]] = deque()
    exhausted = False

    def top_up(depth: int) -> None:
        nonlocal exhausted
        while not exhausted and len(reads) < depth:
            lease = acquire()
            if lease is None:
                exhausted = True
                return
            reads.append((lease, reader.submit(_timed, stages.read, lease.block)))

    def finish(lease: Lease[B], outcome: Future) -> None:
        try:
            _, seconds = outcome.result()
            times.write += seconds
        except Exception as e:
            times.failed += 1
            lease.release(e)
            return
        times.blocks += 1
        lease.release(None)

    with (
        ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="write-behind") as writer,
    ):
        top_up(1)
        while reads:
            lease, pending = reads.popleft()
            top_up(read_ahead)  # the next reads run while this block computes
            try:
                data, seconds = pending.result()
                times.read += seconds
                result, seconds = _timed(stages.compute, lease.block, data)
                times.compute += seconds
            except Exception as e:
                times.failed += 1
                lease.release(e)
                top_up(1)
                continue
            writes.append((lease, writer.submit(_timed, stages.write, lease.block, result)))
            while len(writes) > write_behind:
                finish(*writes.popleft())
            top_up(1)
        while writes:
            finish(*writes.popleft())
    times.wall = time.perf_counter() - start
    return times
