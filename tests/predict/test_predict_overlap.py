"""A prediction worker reads the next block and writes the previous one while a block computes.

Measured with the worker's own `BlockProcessor` and loop (`run_blocks`) on real zarr data and
real daisy blocks; only the network is a stand-in whose forward pass takes as long as the
block's read and write together (`benchmarks/predict_overlap.py`).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from incasem.blockwise.overlap import BlockStages, run_blocks
from incasem.io import open_array

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "predict_overlap.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("predict_overlap", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_next_block_is_read_and_the_last_written_while_a_block_computes() -> None:
    """Overlap shown by the order of events, not by timing: block k's compute waits until
    block k + 1's read has started and block k - 1's write has ended, which only an
    overlapped loop lets happen (a sequential one would wait for ever; here 30 s, then
    fail). The time saved is measured by `benchmarks/predict_overlap.py`."""
    count = 6
    pending = list(range(count))
    released: dict[int, BaseException | None] = {}
    read_started = [threading.Event() for _ in range(count + 1)]
    read_started[count].set()  # there is no block after the last
    written = [threading.Event() for _ in range(count)]

    def acquire() -> _Lease | None:
        return _Lease(pending.pop(0), released) if pending else None

    def read(block: int) -> int:
        read_started[block].set()
        return block

    def compute(block: int, x: int) -> int:
        assert read_started[block + 1].wait(30), f"block {block + 1} was not read ahead"
        if block > 0:
            assert written[block - 1].wait(30), f"block {block - 1} was not written behind"
        return x * 10

    def write(block: int, result: int) -> None:
        written[block].set()

    times = run_blocks(acquire, BlockStages(read, compute, write), 1, 1)
    assert released == dict.fromkeys(range(count))
    assert (times.blocks, times.failed) == (count, 0)


def test_the_overlap_benchmark_writes_every_block_right(tmp_path: Path) -> None:
    """The benchmark's worker, run by the blockwise engine, writes the stand-in network's
    probabilities p = sigmoid(3 x) everywhere (its timings are the benchmark's, not a test's)."""
    result = _benchmark().measure(tmp_path, (64, 160, 160), 132)
    per_axis = zip((64, 160, 160), result["write_shape_voxels"], strict=True)
    assert result["blocks"] == math.prod(-(-size // write) for size, write in per_axis)
    raw = open_array(tmp_path / "cell.zarr", "raw")
    x = raw[raw.roi] / 255 * 2 - 1
    expected = np.round(255 / (1 + np.exp(-3 * x)))
    probabilities = open_array(tmp_path / "cell.zarr", "prediction/cell/prob_maps/class_1")
    assert np.abs(probabilities[probabilities.roi] - expected).max() <= 1


class _Lease:
    def __init__(self, block: int, released: dict[int, BaseException | None]):
        self.block, self._released = block, released

    def release(self, error: BaseException | None) -> None:
        assert self.block not in self._released, "a block is released once"
        self._released[self.block] = error


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_failing_stage_fails_its_block_only_and_each_block_is_released_after_its_write(
    depth: int,
) -> None:
    pending = list(range(8))
    released: dict[int, BaseException | None] = {}
    written: list[int] = []

    def acquire() -> _Lease | None:
        return _Lease(pending.pop(0), released) if pending else None

    def read(block: int) -> int:
        if block == 2:
            raise OSError("chunk 2 is missing")
        return block

    def compute(block: int, x: int) -> int:
        if block == 5:
            raise RuntimeError("out of memory")
        return x * 10

    def write(block: int, result: int) -> None:
        assert block not in released, "released before its write finished"
        if block == 6:
            raise ValueError("disk full")
        written.append(result)

    times = run_blocks(acquire, BlockStages(read, compute, write), depth, depth)
    assert sorted(released) == list(range(8))
    assert {b: type(e) for b, e in released.items() if e is not None} == {
        2: OSError, 5: RuntimeError, 6: ValueError,
    }  # fmt: skip
    assert written == [0, 10, 30, 40, 70]
    assert (times.blocks, times.failed) == (5, 3)
