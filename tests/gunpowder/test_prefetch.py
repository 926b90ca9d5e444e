"""Prefetch and ThreadLimitedPreCache: batches arrive in order, one request at a time reaches
upstream, and preparing workers compute with their share of the cores."""

from __future__ import annotations

import threading
import time

import gunpowder as gp
import numpy as np
import torch
from threadpoolctl import threadpool_info

from incasem.gunpowder import Prefetch, ThreadLimitedPreCache, threads_per_worker

KEY = gp.ArrayKey("COUNTER")
ROI = gp.Roi((0, 0, 0), (4, 4, 4))


class _Counter(gp.BatchProvider):
    """Provides KEY filled with how many requests it has seen; fails if two overlap."""

    def __init__(self, record=None):
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.record = record or (lambda: self.calls)

    def setup(self):
        self.provides(KEY, gp.ArraySpec(roi=gp.Roi((0, 0, 0), (40, 40, 40)), voxel_size=(1, 1, 1)))

    def provide(self, request):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        value = self.record()
        self.calls += 1
        spec = self.spec[KEY].copy()
        spec.roi = request[KEY].roi
        batch = gp.Batch()
        batch[KEY] = gp.Array(np.full(spec.roi.shape, value, np.int64), spec)
        with self.lock:
            self.active -= 1
        return batch


def _request(roi: gp.Roi = ROI) -> gp.BatchRequest:
    return gp.BatchRequest({KEY: gp.ArraySpec(roi=roi)})


def test_prefetch_hands_over_batches_in_order_one_upstream_request_at_a_time():
    source = _Counter()
    pipeline = source + Prefetch()
    with gp.build(pipeline):
        values = [int(pipeline.request_batch(_request())[KEY].data[0, 0, 0]) for _ in range(4)]
        # After handing over batch 4, the fifth is fetched ahead.
        deadline = time.monotonic() + 10
        while source.calls < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert source.calls == 5
    assert values == [0, 1, 2, 3]
    assert source.max_active == 1


def test_prefetch_serves_a_different_request_directly_and_drops_the_prefetched_batch():
    source = _Counter()
    pipeline = source + Prefetch()
    other = gp.Roi((8, 8, 8), (4, 4, 4))
    with gp.build(pipeline):
        first = pipeline.request_batch(_request())
        second = pipeline.request_batch(_request(other))
        third = pipeline.request_batch(_request(other))
    assert first[KEY].spec.roi == ROI
    assert second[KEY].spec.roi == other and third[KEY].spec.roi == other
    # Batch 1 was prefetched for ROI and dropped; the second request was served by call 2.
    assert int(second[KEY].data[0, 0, 0]) == 2
    assert int(third[KEY].data[0, 0, 0]) == 3


def test_threads_per_worker_shares_the_cores_and_leaves_one_share_for_training():
    assert threads_per_worker(1, cores=2) == 1
    assert threads_per_worker(3, cores=16) == 4
    assert threads_per_worker(15, cores=16) == 1
    assert threads_per_worker(40, cores=16) == 1


def _worker_threads() -> int:
    openmp = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp"]
    blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return torch.get_num_threads() * 100 + max(openmp + blas, default=1)


def test_thread_limited_precache_workers_use_the_given_thread_count():
    pipeline = _Counter(record=_worker_threads) + ThreadLimitedPreCache(
        cache_size=2, num_workers=1, num_threads=1
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(_request())
    # torch.get_num_threads() * 100 + the BLAS/OpenMP pools' size, measured in the worker.
    assert int(batch[KEY].data[0, 0, 0]) == 101


def test_teardown_after_precache_finishes_the_prefetch_in_flight():
    """gunpowder stops PreCache's workers before Prefetch is torn down; the batch being
    prefetched from slow workers must still arrive instead of waiting forever."""

    def slow():
        time.sleep(0.5)
        return 7

    pipeline = _Counter(record=slow) + ThreadLimitedPreCache(cache_size=1, num_workers=1)
    pipeline += Prefetch()
    done = threading.Event()

    def train_once():
        with gp.build(pipeline):
            assert int(pipeline.request_batch(_request())[KEY].data[0, 0, 0]) == 7
        done.set()

    thread = threading.Thread(target=train_once, daemon=True)
    thread.start()
    assert done.wait(timeout=60), "tearing down with a prefetch in flight hung"


def test_prefetch_counts_the_time_spent_waiting_for_upstream():
    def slow():
        time.sleep(0.3)
        return 1

    prefetch = Prefetch()
    pipeline = _Counter(record=slow) + prefetch
    with gp.build(pipeline):
        pipeline.request_batch(_request())  # waits for the first batch
        pipeline.request_batch(_request())  # the prefetch has just started: waits again
        after_two = prefetch.waited_s
        time.sleep(0.5)  # a model step longer than the preparation
        pipeline.request_batch(_request())  # ready: no wait
    assert prefetch.batches == 3
    assert 0.5 <= after_two < 1.5
    assert prefetch.waited_s - after_two < 0.1


def _random_draw() -> int:
    # the node's first draw after gunpowder seeded numpy from the request
    return int(np.random.randint(2**31))


def _draws(seed: int, batches: int = 4) -> list[int]:
    pipeline = _Counter(record=_random_draw) + ThreadLimitedPreCache(
        cache_size=2, num_workers=1, num_threads=1, seed=seed
    )
    with gp.build(pipeline):
        return [int(pipeline.request_batch(_request())[KEY].data[0, 0, 0]) for _ in range(batches)]


def test_thread_limited_precache_with_a_seed_repeats_its_batches():
    """Every batch of a worker gets a seed of its own, and the same ones in every run."""
    first = _draws(seed=3)
    assert len(set(first)) == len(first)
    assert _draws(seed=3) == first
    assert _draws(seed=4) != first
