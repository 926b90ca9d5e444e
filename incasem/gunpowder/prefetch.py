"""Fetch the next batch in a background thread while the model trains on the current one.

PreCache prepares batches in worker processes, but handing one over still costs the training
process time: the batch (about 50 MB at 204³) is read from a pipe and unpickled in the thread
that asked for it, and only then does the model step start. While the model step runs, that
thread mostly waits with the GIL released (in torch's kernels on a CPU, in the synchronisation
with a GPU), so a second thread can take the next batch off the queue in the meantime and the
hand-over leaves the critical path.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import gunpowder as gp

logger = logging.getLogger(__name__)


def _same_specs(a: gp.BatchRequest, b: gp.BatchRequest) -> bool:
    # gunpowder's BatchRequest.__eq__ deep-copies both requests to drop their random seeds;
    # comparing the specs directly gives the same answer a hundred times faster.
    return a.array_specs == b.array_specs and a.graph_specs == b.graph_specs


class Prefetch(gp.BatchFilter):
    """Request the next batch from upstream as soon as the current one is handed downstream.

    Useful only for a series of equal requests (as in training) and only when the upstream
    node is cheap in this process's CPU time, i.e. right after
    :class:`~incasem.gunpowder.ThreadLimitedPreCache` (not gunpowder's PreCache, which can
    leave the request in flight hanging when the pipeline is torn down). A
    request that differs from the one prefetched is served directly (after the prefetch in
    flight has finished, so that upstream never sees two requests at once); the prefetched
    batch is then dropped. Upstream's random draws are unaffected: they happen in PreCache's
    worker processes, not in this thread. The node takes no arguments.

    Attributes:
        waited_s: Seconds ``provide`` has spent waiting for upstream, in all. Next to the time
            of the training steps it says whether batch preparation keeps up.
        batches: Batches handed downstream.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[gp.BatchRequest, Future] | None = None
        self.waited_s = 0.0
        self.batches = 0

    def setup(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incasem-prefetch")

    def provide(self, request: gp.BatchRequest) -> gp.Batch:
        upstream = self.get_upstream_provider()
        start = time.perf_counter()
        batch = None
        if self._pending is not None:
            pending_request, future = self._pending
            self._pending = None
            prefetched = future.result()
            if _same_specs(pending_request, request):
                batch = prefetched
            else:
                logger.debug("request changed; dropping the prefetched batch")
        if batch is None:
            batch = upstream.request_batch(request)
        self.waited_s += time.perf_counter() - start
        self.batches += 1
        # ``request`` is this node's own copy (gunpowder copies before ``provide``), and upstream
        # copies it again, drawing a new random seed, so it can be sent on as it is.
        self._pending = (request, self._executor.submit(upstream.request_batch, request))
        return batch

    def teardown(self) -> None:
        if self._pending is not None:
            # Upstream is already torn down (gunpowder goes from the sources on), so the request
            # in flight has either finished or failed; its batch is not needed.
            try:
                self._pending[1].result()
            except Exception:  # noqa: BLE001 - a failed prefetch no one asked for is not an error
                logger.debug("prefetch in flight at teardown failed", exc_info=True)
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
