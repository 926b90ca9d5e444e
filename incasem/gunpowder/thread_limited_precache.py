"""PreCache whose worker processes each compute with a fixed number of threads.

gunpowder's PreCache forks its workers from the training process, so each inherits torch's and
the BLAS library's thread pools sized for the whole machine. Sixteen workers on sixteen cores
then run 256 OpenMP threads that spin while they wait for each other, and a single worker on a
two-core CPU fights the model's own threads for both cores. Giving every worker its share of the
cores (as torch's DataLoader does with one thread per worker) keeps batch preparation from
slowing itself and the model down.

With a ``seed``, batches are reproducible: gunpowder seeds every node from the request's random
seed, and from the clock for a request without one, so each worker process gets a stream of
seeds of its own (from ``seed`` and the worker's start order), advanced once per batch. With one
worker, the same batches come in the same order in every run (`training.seed`).

The node also finishes a hand-over in flight before it stops its workers. gunpowder tears a
pipeline down from the sources towards the end, so PreCache stops before a downstream
`Prefetch` can collect the batch it asked for; gunpowder's PreCache would leave that request
waiting forever on a queue no worker fills any more.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

import gunpowder as gp
import torch
from threadpoolctl import threadpool_limits


def threads_per_worker(num_workers: int, cores: int | None = None) -> int:
    """Threads for each of ``num_workers`` batch-preparing processes: an equal share of the
    cores, with one share left for the training process, and at least one."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // (num_workers + 1))


class ThreadLimitedPreCache(gp.PreCache):
    """:class:`gunpowder.PreCache` whose workers each use at most ``num_threads`` threads for
    torch and for the BLAS/OpenMP libraries NumPy and SciPy call.

    Args:
        cache_size (``int``): How many batches to hold at most in the cache (default 50, as
            gunpowder).
        num_workers (``int``): How many processes fill the cache (default 20, as gunpowder).
        num_threads (``int``, optional): Threads per worker process; default
            :func:`threads_per_worker` of ``num_workers``.
        seed (``int``, optional): Seed of the batches' random choices; default None: from the
            clock, as gunpowder.
    """

    def __init__(
        self,
        cache_size: int = 50,
        num_workers: int = 20,
        num_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(cache_size=cache_size, num_workers=num_workers)
        self.num_threads = num_threads or threads_per_worker(num_workers)
        self.seed = seed
        self._limited_in: int | None = None
        self._started = multiprocessing.Value("i", 0)  # worker processes started, shared
        self._stream: gp.BatchRequest | None = None
        self._idle = threading.Event()
        self._idle.set()

    def provide(self, request: gp.BatchRequest) -> gp.Batch:
        self._idle.clear()
        try:
            return super().provide(request)
        finally:
            self._idle.set()

    def teardown(self) -> None:
        # The workers are alive until super().teardown(), so a request in flight completes.
        self._idle.wait()
        super().teardown()

    def _run_worker(self) -> gp.Batch:
        # Runs in the worker processes, once per batch; the limit is set once per process.
        if self._limited_in != os.getpid():
            torch.set_num_threads(self.num_threads)
            threadpool_limits(limits=self.num_threads)
            self._limited_in = os.getpid()
            self._stream = self._first_request()
        assert self._stream is not None
        request = self._stream
        self._stream = request.copy()  # gunpowder's next seed of this worker's stream
        return self.get_upstream_provider().request_batch(request)

    def _first_request(self) -> gp.BatchRequest:
        """The worker's first request: the current one, with a seed of its own given ``seed``."""
        with self._started.get_lock():
            worker = self._started.value
            self._started.value += 1
        request = self.current_request.copy()
        if self.seed is not None:  # gunpowder sets a request's seed only when it is made
            request._random_seed = hash((self.seed, worker)) % 2**32
        return request
