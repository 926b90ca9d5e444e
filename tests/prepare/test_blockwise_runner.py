"""incasem.blockwise: blocks tile the volume, carry their context, run in real worker processes,
and a failing block is reported as one line naming its ROI in voxels."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from incasem.blockwise import (
    BlockError,
    BlockFailures,
    BlockwiseJob,
    GuardedBlockFunction,
    block_timeout,
    ctrl_c_kept,
    describe_roi,
    run_in_blocks,
    run_job,
)
from incasem.errors import IncasemError
from incasem.io import create_array, open_array

VOXEL = (10, 5, 5)


@dataclass(frozen=True)
class _Record:
    """Appends each block's ROIs to a JSON-lines file and marks its write ROI in a zarr."""

    log: str
    container: str

    def __call__(self, block: Any) -> None:
        out = open_array(self.container, "out", "r+")
        out[block.write_roi] = out[block.write_roi] + 1
        with open(self.log, "a") as f:
            rois = [list(block.write_roi.offset), list(block.write_roi.shape)]
            rois += [list(block.read_roi.offset), list(block.read_roi.shape)]
            f.write(json.dumps(rois) + "\n")


@dataclass(frozen=True)
class _FailAt:
    """Writes ones, but raises on the block that starts at ``bad_offset`` (nm)."""

    container: str
    bad_offset: tuple[int, int, int]

    def __call__(self, block: Any) -> None:
        if tuple(block.write_roi.offset) == self.bad_offset:
            raise ValueError("corrupt chunk\nsecond line")
        out = open_array(self.container, "out", "r+")
        out[block.write_roi] = np.ones(block.write_roi.shape / out.voxel_size, np.uint8)


def _output(tmp_path: Path, shape=(20, 30, 40), chunks=(8, 8, 8)):
    return create_array(tmp_path / "c.zarr", "out", shape, VOXEL, (100, 50, 0), chunks=chunks)


def test_blocks_tile_the_volume_once_with_clipped_context(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _output(tmp_path)
    log = tmp_path / "blocks.jsonl"
    run_in_blocks(
        _Record(str(log), str(tmp_path / "c.zarr")),
        out.roi,
        (8, 16, 16),
        VOXEL,
        context=(1, 2, 3),
        output=out,
        num_workers=0,
        progress=False,
    )
    assert (out[out.roi] == 1).all()  # every voxel written exactly once
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 3 * 2 * 3
    grown = out.roi.grow((10, 10, 15), (10, 10, 15))
    for w_off, w_shape, r_off, r_shape in records:
        write, read = Roi(w_off, w_shape), Roi(r_off, r_shape)
        assert read == write.grow((10, 10, 15), (10, 10, 15)).intersect(grown)
        assert ((write.offset - out.roi.offset) / out.voxel_size).is_multiple_of((8, 16, 16))
    assert not (tmp_path / "daisy_logs").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failing_block_is_one_line_with_its_roi(tmp_path: Path, workers: int):
    out = _output(tmp_path, shape=(16, 16, 16))
    bad = (100 + 8 * 10, 50, 0)  # second block along z
    with pytest.raises(IncasemError) as info:
        run_in_blocks(
            _FailAt(str(tmp_path / "c.zarr"), bad),
            out.roi,
            (8, 8, 8),
            VOXEL,
            output=out,
            num_workers=workers,
            name="demo",
            progress=False,
        )
    message = str(info.value)
    assert "\n" not in message
    assert "block [18:26, 10:18, 0:8] (voxels): ValueError: corrupt chunk second line" in message
    assert message.startswith("demo: ")
    if workers:
        assert "1 of 8 blocks failed" in message
        log_dir = Path(message.rsplit("worker logs: ", 1)[1].rstrip(")"))
        assert any(log_dir.rglob("*.err"))


def test_blocks_must_align_with_the_output_chunks(tmp_path: Path):
    out = _output(tmp_path)
    with pytest.raises(ValueError, match="not a multiple of the output chunk"):
        run_in_blocks(print, out.roi, (8, 12, 8), VOXEL, output=out, num_workers=0)
    shifted = Roi(out.roi.offset + Coordinate(40, 0, 0), (80, 150, 200))
    with pytest.raises(ValueError, match="not on its chunk grid"):
        run_in_blocks(print, shifted, (8, 8, 8), VOXEL, output=out, num_workers=0)


def test_describe_roi_is_in_voxels():
    assert describe_roi(Roi((100, 50, 0), (80, 40, 40)), VOXEL) == ("[10:18, 10:18, 0:8] (voxels)")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_job_with_done_markers_resumes_where_it_failed(tmp_path: Path, workers: int):
    """The engine prediction's --resume relies on: blocks done in a failed run are not run
    again, failed ones are reported (id and write ROI) and their failure recorded as data."""
    out = _output(tmp_path, shape=(16, 16, 16))
    bad = (100 + 8 * 10, 50, 0)  # second block along z
    job = BlockwiseJob(
        name="resumable",
        total_roi=out.roi,
        read_roi=Roi((0, 0, 0), Coordinate(8, 8, 8) * Coordinate(VOXEL)),
        write_roi=Roi((0, 0, 0), Coordinate(8, 8, 8) * Coordinate(VOXEL)),
        num_workers=workers,
        timeout_s=60,
        max_retries=0,
        done_markers=tmp_path / "done",
    )
    failures = BlockFailures(tmp_path / "logs" / "failures")
    failing = GuardedBlockFunction(
        _FailAt(str(tmp_path / "c.zarr"), bad), VOXEL, str(failures.folder)
    )
    if workers:
        outcome = run_job(job, failing, tmp_path / "logs", progress=False)
        assert outcome.state.completed_count == 7
        ((block_id, write_roi),) = outcome.failed_blocks
        assert tuple(write_roi.offset) == bad
    else:
        with pytest.raises(BlockError):
            run_job(job, failing, tmp_path / "logs", progress=False)
    assert failures.first() == (
        "block [18:26, 10:18, 0:8] (voxels): ValueError: corrupt chunk second line"
    )

    log = tmp_path / "second.jsonl"
    outcome = run_job(
        job, _Record(str(log), str(tmp_path / "c.zarr")), tmp_path / "logs", progress=False
    )
    rerun = [tuple(json.loads(line)[0]) for line in log.read_text().splitlines()]
    assert (rerun == [bad]) if workers else (bad in rerun)
    assert outcome.error is None and outcome.failed_blocks == []


def test_one_timeout_rule():
    assert block_timeout(1e6, 10 / 1e6) == 600  # at least daisy's own default
    assert block_timeout(100e6, 10 / 1e6) == pytest.approx(120 + 1000)
    assert block_timeout(100e6, 10 / 1e6, blocks_held=3) == pytest.approx(120 + 3000)


def _press_ctrl_c_inside_daisy(outcome: type[BaseException] | None) -> None:
    """What daisy's compiled code did with a Ctrl-C raised in one of its Python calls: turned
    it into ``outcome`` (a TypeError about its ROI argument, seen in CI) or, with None, dropped
    it and went on."""
    try:
        signal.raise_signal(signal.SIGINT)
        sum(range(100_000))  # bytecode runs: the handler fires here
    except KeyboardInterrupt as e:
        if outcome is not None:
            raise outcome("argument 'total_roi': expected a Roi") from e


@pytest.fixture
def ctrl_c_interrupts():
    """Python's own SIGINT handler, as in a command started from a terminal (pytest-xdist's
    workers and background jobs ignore SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("outcome", [None, TypeError])
def test_a_ctrl_c_that_daisy_drops_or_rewords_still_ends_the_job(outcome, ctrl_c_interrupts):
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            _press_ctrl_c_inside_daisy(outcome)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_ctrl_c_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_kept():
            signal.raise_signal(signal.SIGINT)
            result = sum(range(100_000))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result == sum(range(100_000))


def test_without_ctrl_c_errors_and_results_pass_through_unchanged(ctrl_c_interrupts):
    with pytest.raises(TypeError, match="total_roi"):
        with ctrl_c_kept():
            raise TypeError("argument 'total_roi': expected a Roi")
    with ctrl_c_kept():
        result = sum(range(10))
    assert result == 45
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_old_name_run_blockwise_still_runs_and_says_it_is_deprecated(tmp_path: Path, caplog):
    from incasem.blockwise import run_blockwise

    out = _output(tmp_path)
    with caplog.at_level("WARNING", logger="incasem.blockwise"):
        run_blockwise(
            _FailAt(str(tmp_path / "c.zarr"), (-1, -1, -1)), out.roi, (8, 8, 8), VOXEL,
            output=out, num_workers=0, progress=False,
        )  # fmt: skip
    assert out[out.roi].min() == 1
    assert "run_blockwise is deprecated: use run_in_blocks" in caplog.text
