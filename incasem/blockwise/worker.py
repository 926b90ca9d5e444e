"""The worker of every blockwise job: rebuilt from JSON, one client loop, one failure wording.

A worker process gets its job as JSON (`WorkerTask`): the block function by its import path
(``module:QualName``, imported only from `incasem.launch.worker_packages`) and the function's
fields, which pydantic validates back into the frozen dataclass the driver described (lists
become tuples, strings paths). No pickle crosses the process boundary: daisy serialises only the
`incasem.launch.ModuleWorker` that runs ``python -m incasem.blockwise.worker JOB_JSON``.

Every worker, prediction's included, pulls its blocks through `serve`: the next block is fetched
(and, for prediction, read) while the current one computes and the previous one is written
(`incasem.blockwise.overlap.run_blocks`). A block that raises is recorded (`BlockFailures`),
reported to the scheduler as a `BlockError` naming its ROI in voxels (daisy retries it up to the
job's ``max_retries``) and the worker goes on with the next block.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import daisy.v2 as daisy
from funlib.geometry import Roi
from pydantic import BaseModel, ConfigDict, TypeAdapter

from incasem.blockwise.failures import BlockError, BlockFailures, block_subject, one_line
from incasem.blockwise.overlap import BlockStages, StageTimes, run_blocks
from incasem.errors import IncasemError
from incasem.launch import ModuleWorker, import_named, import_path, worker_arguments

logger = logging.getLogger(__name__)

#: The module every block-function worker runs (``python -m incasem.blockwise.worker JSON``).
WORKER_MODULE = "incasem.blockwise.worker"


class WorkerTask(BaseModel):
    """What a block-function worker receives, as JSON.

    Args:
        function (str): the block function's import path, ``module:QualName`` of a frozen
            dataclass (or of a module-level function, then without ``arguments``).
        arguments (dict | None): the dataclass's fields as JSON; None for a function.
        voxel_size (tuple[int, ...] | None): nm (z, y, x), to name a failed block's ROI in
            voxels; None names it in nm.
        failures (str | None): the `BlockFailures` folder, or None to record nothing.
    """

    model_config = ConfigDict(frozen=True)

    function: str
    arguments: dict[str, Any] | None = None
    voxel_size: tuple[int, ...] | None = None
    failures: str | None = None

    @classmethod
    def describe(
        cls,
        function: Callable[[Any], None],
        voxel_size: Sequence[int] | None = None,
        failures: str | None = None,
    ) -> WorkerTask:
        """The task of ``function``; raises `IncasemError` (one line) when a worker could not
        rebuild it equal from JSON (not a frozen dataclass of JSON values, or outside the
        packages workers import from)."""
        path = import_path(function)
        arguments = None
        if dataclasses.is_dataclass(function):
            try:
                arguments = TypeAdapter(type(function)).dump_python(function, mode="json")
            except Exception as e:
                raise IncasemError(f"block function {path}: not JSON: {e}") from None
        elif import_named(path) is not function:
            raise IncasemError(
                f"block function {path}: a worker rebuilds a frozen dataclass or a module-level "
                "function, not this object"
            )
        task = cls(
            function=path,
            arguments=arguments,
            voxel_size=None if voxel_size is None else tuple(int(v) for v in voxel_size),
            failures=failures,
        )
        if arguments is not None and task.build() != function:
            raise IncasemError(
                f"block function {path}: its fields do not survive JSON (declare them with "
                "JSON types: str, numbers, tuples, nested dataclasses)"
            )
        return task

    def build(self) -> Callable[[Any], None]:
        """The block function, imported by name and validated from ``arguments``; `IncasemError`
        (one line) when it cannot be."""
        try:
            target = import_named(self.function)
            if self.arguments is None:
                return target
            return TypeAdapter(target).validate_python(self.arguments)
        except (ImportError, AttributeError, ValueError) as e:  # pydantic's errors included
            raise IncasemError(f"block function {self.function}: {one_line(str(e))}") from None

    def subject(self, roi: Roi) -> str:
        """How a failure names the block with write ROI ``roi`` (nm)."""
        if self.voxel_size is None:
            return f"block {roi}"
        return block_subject(roi, self.voxel_size)


def block_function_worker(task: WorkerTask, template: str | None) -> ModuleWorker:
    """The 0-argument worker daisy starts for a block-function job: ``python -m
    incasem.blockwise.worker JOB_JSON`` in its worker process, or through ``template``."""
    return ModuleWorker(WORKER_MODULE, (task.model_dump_json(),), template)


def function_stages(function: Callable[[Any], None]) -> BlockStages[daisy.Block]:
    """A block function as the loop's stages: it is the compute stage; there is nothing to read
    ahead or write behind, but the next block is fetched while it computes."""
    return BlockStages(_nothing, lambda block, _: function(block), _nothing)


def _nothing(*_: Any) -> None:
    return None


class _DaisyLease:
    """A block acquired through one of the pool's connections, released later and once.

    A failure is recorded (`BlockFailures`) and re-raised inside daisy's ``acquire_block``
    context manager as a `BlockError` naming the block's ROI, so the scheduler retries the
    block.
    """

    def __init__(
        self, pool: _ClientPool, client: daisy.Client, context: Any, block: daisy.Block
    ) -> None:
        self._pool, self._client, self._context = pool, client, context
        self.block = block

    def release(self, error: BaseException | None) -> None:
        try:
            if error is None:
                self._context.__exit__(None, None, None)
                return
            subject = self._pool.subject(self.block.write_roi)
            logger.error("%s failed", subject, exc_info=error)
            message = self._pool.failures.record(subject, error)
            try:
                raise BlockError(message) from None
            except BlockError as failed:
                self._context.__exit__(BlockError, failed, failed.__traceback__)
        finally:
            self._pool.idle.append(self._client)


class _ClientPool:
    """Scheduler connections for a worker that holds several blocks at a time.

    daisy's server treats a connection whose request finds no block left as finished and
    reclaims every block that connection still holds ("block lost"). A worker that reads ahead
    and writes behind asks for a block while holding others, so each request goes through a
    connection that holds nothing: one per block in flight, opened when first needed.
    """

    def __init__(
        self, context: Any, subject: Callable[[Roi], str], failures: BlockFailures
    ) -> None:
        self._context = context
        self.subject = subject
        self.failures = failures
        self.idle: list[daisy.Client] = []

    def acquire(self) -> _DaisyLease | None:
        """The next block, or None when the scheduler has none left."""
        client = self.idle.pop() if self.idle else daisy.Client(self._context)
        context = client.acquire_block()
        block = context.__enter__()
        if block is None:
            context.__exit__(None, None, None)
            self.idle.append(client)
            return None
        return _DaisyLease(self, client, context, block)


def worker_context() -> tuple[Any, int]:
    """daisy's context of this worker process (``DAISY_CONTEXT``) and its worker id; log lines
    go to standard error (the worker's ``.err`` log), marked with the id."""
    context = daisy.Context.from_env()
    worker_id = int(context["worker_id"])
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s worker {worker_id} %(levelname)s: %(message)s",
    )
    return context, worker_id


def serve(
    context: Any,
    stages: BlockStages[daisy.Block],
    subject: Callable[[Roi], str],
    failures: BlockFailures,
    depth: int = 1,
) -> StageTimes:
    """The one client loop: process blocks from the scheduler of ``context`` until none are
    left, fetching (and reading) the next block while the current one computes.

    ``subject`` names a failed block by its write ROI (nm) in the one failure wording
    (`incasem.blockwise.failures.block_subject`); ``depth`` blocks are read ahead and as many
    written behind (0: one block after another, as `benchmarks/predict_overlap.py` compares).
    Returns the stage times, also logged.
    """
    pool = _ClientPool(context, subject, failures)
    times = run_blocks(pool.acquire, stages, depth, depth)
    logger.info("%s", times.summary())
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m incasem.blockwise.worker JOB_JSON``: a block-function worker (`WorkerTask`);
    the JSON may also come in ``INCASEM_WORKER_ARGS`` (`incasem.launch.worker_arguments`)."""
    argv = worker_arguments(argv)
    if len(argv) != 1:
        print("usage: python -m incasem.blockwise.worker JOB_JSON", file=sys.stderr)
        return 2
    task = WorkerTask.model_validate_json(argv[0])
    failures = BlockFailures(task.failures)
    try:
        function = task.build()
    except IncasemError as e:  # recorded for the driver's one line; one line here too
        print(f"incasem worker: {failures.record('worker', e)}", file=sys.stderr)
        return 2
    context, _ = worker_context()
    serve(context, function_stages(function), task.subject, failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
